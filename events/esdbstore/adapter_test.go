package esdbstore_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/esdbstore"
	"github.com/icpservice/icp/events/esdbstore/esdbtest"
)

func TestConcurrentNoStreamAppendsToOneStreamOneWinsOverGRPC(t *testing.T) {
	const writers = 16
	srv := esdbtest.Start(t)
	s := openStore(t, srv.ConnString(), esdbstore.Options{})
	for range 5 {
		stream := newStream()
		evs := make([]events.Proposed, writers)
		errs := make([]error, writers)
		results := make([]events.AppendResult, writers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for w := range writers {
			evs[w] = newEvent(w)
			wg.Go(func() {
				<-start
				results[w], errs[w] = s.Append(testCtx(t), stream, events.NoStream, []events.Proposed{evs[w]})
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for w, err := range errs {
			var ce *events.ConflictError
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("%s: writers %d and %d both created the stream", stream, winner, w)
			case err == nil:
				winner = w
			case !errors.As(err, &ce) || ce.Expected != events.NoStream || ce.Actual != 1 || ce.Stream != stream:
				t.Fatalf("%s: losing writer %d got %v, want a conflict at version 1", stream, w, err)
			}
		}
		if winner < 0 {
			t.Fatalf("%s: no writer created the stream", stream)
		}
		recs, err := s.ReadStream(testCtx(t), stream, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1 || recs[0].ID != evs[winner].ID || recs[0].Position != results[winner].Positions[0] {
			t.Fatalf("%s holds %d events, want the winner's alone", stream, len(recs))
		}
	}
}

func TestReadAllHeadAndFollowSeeOnlyThisServicesStreamsOverGRPC(t *testing.T) {
	srv := esdbtest.Start(t)
	s := openStore(t, srv.ConnString(), esdbstore.Options{})
	srv.WriteEvent("$settings", "$settings", []byte(`{}`))
	mine1 := mustAppend(t, s, newStream(), events.NoStream, newEvent(1))
	srv.WriteEvent("other-service-1", "Other", []byte(`{}`))
	srv.WriteEvent("icp", "Other", []byte(`{}`)) // the prefix is "icp-", not "icp"
	mine2 := mustAppend(t, s, newStream(), events.NoStream, newEvent(2), newEvent(3))
	deleted := newStream()
	mine3 := mustAppend(t, s, deleted, events.NoStream, newEvent(4))
	if err := srv.DeleteStream(deleted); err != nil { // writes to "$$icp-..."
		t.Fatal(err)
	}
	srv.WriteEvent("other-service-2", "Other", []byte(`{}`))
	want := append(append(append([]uint64(nil), mine1.Positions...), mine2.Positions...), mine3.Positions...)

	all, err := s.ReadAll(testCtx(t), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !samePositions(positions(all), want) {
		t.Fatalf("ReadAll returned %v, want this service's events %v", positions(all), want)
	}
	page, err := s.ReadAll(testCtx(t), want[0], 2)
	if err != nil {
		t.Fatal(err)
	}
	if !samePositions(positions(page), want[1:3]) {
		t.Fatalf("ReadAll after %d limit 2 returned %v, want %v", want[0], positions(page), want[1:3])
	}
	head, err := s.Head(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if head != want[len(want)-1] {
		t.Fatalf("Head %d, want this service's last event %d (other streams' events come after it)", head, want[len(want)-1])
	}
	f := startFollow(t, s, 0, 100)
	sentinel := mustAppend(t, s, newStream(), events.NoStream, newEvent(99))
	f.exactly(t, want, sentinel.Positions[0])
}

func TestDeletedStreamReadsAsNotFoundOverGRPC(t *testing.T) {
	srv := esdbtest.Start(t)
	s := openStore(t, srv.ConnString(), esdbstore.Options{})
	stream := newStream()
	mustAppend(t, s, stream, events.NoStream, newEvent(1), newEvent(2))
	if err := srv.DeleteStream(stream); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadStream(testCtx(t), stream, 0); !errors.Is(err, events.ErrStreamNotFound) {
		t.Fatalf("ReadStream of a deleted stream: %v, want events.ErrStreamNotFound", err)
	}
}

func TestForeignEventsArePassedOverAndReportedOverGRPC(t *testing.T) {
	srv := esdbtest.Start(t)
	s := openStore(t, srv.ConnString(), esdbstore.Options{})
	ctx := testCtx(t)
	deleted, stream := newStream(), newStream()
	mustAppend(t, s, deleted, events.NoStream, newEvent(1))
	handWritten := srv.WriteEvent(stream, "WrittenByAnotherTool", []byte(`{}`))
	tombstone, err := srv.HardDeleteStream(deleted)
	if err != nil {
		t.Fatal(err)
	}
	ours := mustAppend(t, s, newStream(), events.NoStream, newEvent(2)).Positions[0]
	srv.WriteEventWithMetadata(newStream(), "Other", []byte(`{}`), []byte(`{"by":"someone else"}`))

	// A stream read still refuses an event it cannot fold.
	if _, err := s.ReadStream(ctx, stream, 0); !errors.Is(err, events.ErrCorrupt) {
		t.Fatalf("ReadStream of an event without our envelope: %v, want events.ErrCorrupt", err)
	}
	all, err := s.ReadAll(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := positions(all); len(got) != 2 || got[1] != ours {
		t.Fatalf("ReadAll positions %v, want our two events, the last at %d", got, ours)
	}
	if head, err := s.Head(ctx); err != nil || head != ours {
		t.Fatalf("Head %d (%v), want %d: foreign events after it do not count", head, err, ours)
	}

	// Everything comes in log order: ours, two foreign, ours, foreign.
	var seen []string
	var reported []events.Foreign
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- s.FollowReporting(fctx, 0, 10, func(b []events.Recorded) error {
			for range b {
				seen = append(seen, "ours")
			}
			return nil
		}, func(f events.Foreign) error {
			seen = append(seen, "foreign")
			if reported = append(reported, f); len(reported) == 3 {
				cancel()
			}
			return nil
		})
	}()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("FollowReporting returned %v", err)
	}
	if got := strings.Join(seen, ","); got != "ours,foreign,foreign,ours,foreign" {
		t.Errorf("delivered and reported in the order %s", got)
	}
	if len(reported) != 3 || reported[0].Position != handWritten || reported[1].Position != tombstone ||
		reported[0].StreamID != stream || reported[1].Type != "$streamDeleted" || reported[0].Reason == "" {
		t.Fatalf("reported %+v, want the hand-written event at %d and the tombstone at %d first", reported, handWritten, tombstone)
	}
}

func TestEventWithABrokenEnvelopeIsCorruptNotPassedOverGRPC(t *testing.T) {
	srv := esdbtest.Start(t)
	s := openStore(t, srv.ConnString(), esdbstore.Options{})
	srv.WriteEventWithMetadata(newStream(), "ICPCreated", []byte(`{}`), []byte(`{"schemaVersion":"one"}`))
	if _, err := s.ReadAll(testCtx(t), 0, 10); !errors.Is(err, events.ErrCorrupt) {
		t.Fatalf("ReadAll over an event with a broken envelope: %v, want events.ErrCorrupt", err)
	}
	err := s.FollowReporting(testCtx(t), 0, 10, func([]events.Recorded) error {
		t.Error("Follow delivered an event it cannot decode")
		return nil
	}, func(f events.Foreign) error {
		t.Errorf("an event with our broken envelope reported as foreign: %+v", f)
		return nil
	})
	if !errors.Is(err, events.ErrCorrupt) {
		t.Fatalf("Follow over an event with a broken envelope returned %v, want events.ErrCorrupt", err)
	}
}

func TestInvalidAppendsNameEveryProblemOverGRPC(t *testing.T) {
	srv := esdbtest.Start(t)
	s := openStore(t, srv.ConnString(), esdbstore.Options{})
	bad := newEvent(1)
	bad.ID = "00000000-0000-0000-0000-000000000000"
	bad.Type = "$system"
	bad.Data = []byte(`{not json`)
	bad.Metadata = []byte(`not json`)
	_, err := s.Append(testCtx(t), "$system-stream", events.NoStream, []events.Proposed{bad})
	if !errors.Is(err, esdbstore.ErrInvalidAppend) || errors.Is(err, events.ErrUnavailable) {
		t.Fatalf("invalid append: %v, want esdbstore.ErrInvalidAppend", err)
	}
	for _, want := range []string{"system streams", "non-nil UUID", "types starting with $", "data is not JSON", "metadata is not JSON"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestOpenRefusesBadConfiguration(t *testing.T) {
	cases := []struct {
		name, conn string
		opts       esdbstore.Options
		hidden     string // must not appear in the error
	}{
		{name: "not a connection string", conn: "http://[::1"},
		{name: "credentials without TLS", conn: "esdb://admin:s3cret@localhost:2113?tls=false", hidden: "s3cret"},
		{name: "unknown setting value", conn: "esdb://admin:s3cret@localhost:2113?tls=maybe", hidden: "s3cret"},
		{name: "system stream prefix", conn: "esdb://localhost:2113?tls=false", opts: esdbstore.Options{StreamPrefix: "$ce-"}},
		{name: "prefix of the snapshot streams", conn: "esdb://localhost:2113?tls=false", opts: esdbstore.Options{StreamPrefix: "snap"}},
		{name: "prefix within the snapshot streams", conn: "esdb://localhost:2113?tls=false", opts: esdbstore.Options{StreamPrefix: "snapshot-icp-"}},
		{name: "backoff bounds reversed", conn: "esdb://localhost:2113?tls=false", opts: esdbstore.Options{ResubscribeMin: 2e9, ResubscribeMax: 1e9}},
	}
	for _, c := range cases {
		s, err := esdbstore.Open(context.Background(), c.conn, c.opts)
		if err == nil {
			_ = s.Close()
			t.Errorf("%s: Open accepted %q", c.name, c.conn)
			continue
		}
		if errors.Is(err, events.ErrUnavailable) {
			t.Errorf("%s: %v; a configuration error is not worth a retry", c.name, err)
		}
		if c.hidden != "" && strings.Contains(err.Error(), c.hidden) {
			t.Errorf("%s: error %q shows the password", c.name, err)
		}
	}
}
