package esdbtest_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/icpservice/icp/events/esdbstore/esdbtest"
)

// These tests drive the server with the unmodified client, as the adapter
// does, and pin the rules the adapter relies on.

const waitLimit = 10 * time.Second

func client(t *testing.T, srv *esdbtest.Server) *esdb.Client {
	t.Helper()
	cfg, err := esdb.ParseConnectionString(srv.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = esdb.NoopLogging()
	c, err := esdb.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return c
}

func event(typ string) esdb.EventData {
	return esdb.EventData{EventID: uuid.New(), EventType: typ, ContentType: esdb.ContentTypeJson, Data: []byte(`{"a":1}`), Metadata: []byte(`{"m":2}`)}
}

func appendTo(t *testing.T, c *esdb.Client, stream string, rev esdb.ExpectedRevision, evs ...esdb.EventData) *esdb.WriteResult {
	t.Helper()
	wr, err := c.AppendToStream(ctx(t), stream, esdb.AppendToStreamOptions{ExpectedRevision: rev}, evs...)
	if err != nil {
		t.Fatalf("append to %s: %v", stream, err)
	}
	return wr
}

func readStream(t *testing.T, c *esdb.Client, stream string) ([]*esdb.RecordedEvent, error) {
	t.Helper()
	rs, err := c.ReadStream(ctx(t), stream, esdb.ReadStreamOptions{}, 1000)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []*esdb.RecordedEvent
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, ev.Event)
	}
}

func TestServerVersionIsNumericAndDotted(t *testing.T) {
	srv := esdbtest.Start(t)
	v, err := client(t, srv).GetServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.Major != 24 || v.Minor != 10 || v.Patch != 0 {
		t.Fatalf("server version %+v, want 24.10.0", *v)
	}
}

func TestWrongExpectedVersionIsAnAppendResponse(t *testing.T) {
	srv := esdbtest.Start(t)
	c := client(t, srv)
	appendTo(t, c, "s-1", esdb.NoStream{}, event("A"), event("B"))
	for _, rev := range []esdb.ExpectedRevision{esdb.NoStream{}, esdb.Revision(0), esdb.Revision(7)} {
		_, err := c.AppendToStream(ctx(t), "s-1", esdb.AppendToStreamOptions{ExpectedRevision: rev}, event("C"))
		var e *esdb.Error
		if !errors.As(err, &e) || e.Code() != esdb.ErrorCodeWrongExpectedVersion {
			t.Fatalf("append expecting %#v: %v, want a wrong expected version", rev, err)
		}
		if !strings.Contains(err.Error(), "but got '1'") {
			t.Fatalf("wrong expected version %q does not report the current revision 1", err)
		}
	}
	_, err := c.AppendToStream(ctx(t), "missing", esdb.AppendToStreamOptions{ExpectedRevision: esdb.Revision(3)}, event("C"))
	if err == nil || !strings.Contains(err.Error(), "but got 'no_stream'") {
		t.Fatalf("append to a missing stream at revision 3: %v, want a wrong expected version with no_stream", err)
	}
}

func TestAppendsAreIdempotentByEventIDAtTheSamePositionOnly(t *testing.T) {
	srv := esdbtest.Start(t)
	c := client(t, srv)
	a, b := event("A"), event("B")
	first := appendTo(t, c, "s-1", esdb.NoStream{}, a, b)
	again := appendTo(t, c, "s-1", esdb.NoStream{}, a, b)
	if again.NextExpectedVersion != first.NextExpectedVersion || again.CommitPosition != first.CommitPosition {
		t.Fatalf("retry answered %+v, want the original %+v", *again, *first)
	}
	// The same id at another position, or in another stream, is new.
	appendTo(t, c, "s-1", esdb.Revision(1), a)
	appendTo(t, c, "s-2", esdb.NoStream{}, a)
	recs, err := readStream(t, c, "s-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs[2].EventID != a.EventID {
		t.Fatalf("s-1 holds %d events, want 3 with the repeated id last", len(recs))
	}
	// A partial match is a conflict.
	if _, err := c.AppendToStream(ctx(t), "s-1", esdb.AppendToStreamOptions{ExpectedRevision: esdb.NoStream{}}, a, event("X")); err == nil {
		t.Fatal("a retry whose second id differs was accepted")
	}
}

func TestMissingStreamIsAStreamNotFoundReadMessage(t *testing.T) {
	srv := esdbtest.Start(t)
	c := client(t, srv)
	rs, err := c.ReadStream(ctx(t), "missing", esdb.ReadStreamOptions{}, 10)
	if err != nil {
		t.Fatalf("ReadStream of a missing stream failed before the first Recv: %v", err)
	}
	defer rs.Close()
	_, err = rs.Recv()
	var e *esdb.Error
	if !errors.As(err, &e) || e.Code() != esdb.ErrorCodeResourceNotFound {
		t.Fatalf("first Recv of a missing stream: %v, want ResourceNotFound", err)
	}
}

func TestRecordedEventsCarryTypeContentTypeAndCreated(t *testing.T) {
	srv := esdbtest.Start(t)
	c := client(t, srv)
	before := time.Now()
	ev := event("Created")
	appendTo(t, c, "s-1", esdb.NoStream{}, ev)
	recs, err := readStream(t, c, "s-1")
	if err != nil {
		t.Fatal(err)
	}
	r := recs[0]
	if r.EventID != ev.EventID || r.EventType != "Created" || r.ContentType != "application/json" ||
		string(r.Data) != string(ev.Data) || string(r.UserMetadata) != string(ev.Metadata) {
		t.Fatalf("read back %+v", *r)
	}
	if r.CreatedDate.Before(before.Add(-time.Second)) || r.CreatedDate.After(time.Now().Add(time.Second)) {
		t.Fatalf("created %v, not the time of the append (%v)", r.CreatedDate, before)
	}
	if r.Position.Commit == 0 || r.Position.Commit != r.Position.Prepare {
		t.Fatalf("position %+v, want a commit position > 0 equal to the prepare position", r.Position)
	}
}

func TestFilteredSubscriptionConfirmsCheckpointsAndCatchesUp(t *testing.T) {
	srv := esdbtest.Start(t)
	c := client(t, srv)
	var mine []uint64
	var start uint64
	for i := range 6 {
		appendTo(t, c, "other-"+uuid.NewString(), esdb.NoStream{}, event("B"))
		wr := appendTo(t, c, "mine-"+uuid.NewString(), esdb.NoStream{}, event("A"))
		if i == 1 {
			start = wr.CommitPosition
		} else if i > 1 {
			mine = append(mine, wr.CommitPosition)
		}
	}
	sub, err := c.SubscribeToAll(ctx(t), esdb.SubscribeToAllOptions{
		From:            esdb.Position{Commit: start, Prepare: start},
		Filter:          &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{"mine-"}},
		MaxSearchWindow: 2,
	})
	if err != nil {
		t.Fatalf("subscribe (the client requires the confirmation first): %v", err)
	}
	defer sub.Close()
	var got []uint64
	checkpoints := 0
	live := func() uint64 { // appends a live event to a "mine-" stream
		return appendTo(t, c, "mine-"+uuid.NewString(), esdb.NoStream{}, event("A")).CommitPosition
	}
	for {
		ev := sub.Recv()
		switch {
		case ev.EventAppeared != nil:
			got = append(got, ev.EventAppeared.Event.Position.Commit)
		case ev.CheckPointReached != nil:
			checkpoints++
		case ev.CaughtUp != nil:
			if checkpoints == 0 {
				t.Fatal("caught up without a checkpoint during a filtered catch-up over 9 events")
			}
			if len(got) != len(mine) {
				t.Fatalf("caught up after %v, want the stored events after the start %v", got, mine)
			}
			mine = append(mine, live())
		case ev.SubscriptionDropped != nil:
			t.Fatalf("dropped: %v", ev.SubscriptionDropped.Error)
		}
		if len(got) == len(mine) && len(got) > 4 {
			break
		}
	}
	for i := range mine {
		if got[i] != mine[i] {
			t.Fatalf("delivered %v, want %v (the start position excluded, other streams filtered out)", got, mine)
		}
	}
}

func TestDropSubscriptionsEndsThemWithAnError(t *testing.T) {
	srv := esdbtest.Start(t)
	c := client(t, srv)
	sub, err := c.SubscribeToAll(ctx(t), esdb.SubscribeToAllOptions{From: esdb.Start{}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if ev := sub.Recv(); ev.CaughtUp == nil {
		t.Fatalf("first message of a subscription to an empty log: %+v, want caught up", ev)
	}
	if n := srv.DropSubscriptions(); n != 1 {
		t.Fatalf("dropped %d subscriptions, want 1", n)
	}
	if ev := sub.Recv(); ev.SubscriptionDropped == nil || ev.SubscriptionDropped.Error == nil {
		t.Fatalf("after a drop: %+v, want the subscription dropped with an error", ev)
	}
}

func readBackwards(t *testing.T, c *esdb.Client, stream string, count uint64) []*esdb.RecordedEvent {
	t.Helper()
	rs, err := c.ReadStream(ctx(t), stream, esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}}, count)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []*esdb.RecordedEvent
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("read %s backwards: %v", stream, err)
		}
		out = append(out, ev.Event)
	}
}

func revisions(evs []*esdb.RecordedEvent) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.EventNumber
	}
	return out
}

func TestMaxCountLeavesOnlyTheLastEventsToStreamReads(t *testing.T) {
	srv := esdbtest.Start(t)
	c := client(t, srv)
	appendTo(t, c, "s-1", esdb.NoStream{}, event("A"), event("B"), event("C"))
	var md esdb.StreamMetadata
	md.SetMaxCount(2)
	if _, err := c.SetStreamMetadata(ctx(t), "s-1", esdb.AppendToStreamOptions{}, md); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetStreamMetadata(ctx(t), "s-1", esdb.ReadStreamOptions{})
	if err != nil || got.MaxCount() == nil || *got.MaxCount() != 2 {
		t.Fatalf("metadata read back: %+v %v, want $maxCount 2", got, err)
	}
	recs, err := readStream(t, c, "s-1")
	if err != nil {
		t.Fatal(err)
	}
	if r := revisions(recs); len(r) != 2 || r[0] != 1 || r[1] != 2 {
		t.Fatalf("forward read sees revisions %v, want [1 2]", r)
	}
	appendTo(t, c, "s-1", esdb.Revision(2), event("D"))
	if r := revisions(readBackwards(t, c, "s-1", 10)); len(r) != 2 || r[0] != 3 || r[1] != 2 {
		t.Fatalf("backward read sees revisions %v, want [3 2]", r)
	}
	if r := revisions(readBackwards(t, c, "s-1", 1)); len(r) != 1 || r[0] != 3 {
		t.Fatalf("backward read of 1 sees revisions %v, want [3]", r)
	}
	// $all still holds every event (until a scavenge, not modelled).
	rs, err := c.ReadAll(ctx(t), esdb.ReadAllOptions{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	n := 0
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ev.Event.StreamID == "s-1" {
			n++
		}
	}
	if n != 4 {
		t.Fatalf("$all holds %d events of s-1, want 4", n)
	}
}

func TestNewMetadataReplacesTheOldAndASoftDeleteKeepsMaxCount(t *testing.T) {
	srv := esdbtest.Start(t)
	c := client(t, srv)
	appendTo(t, c, "s-1", esdb.NoStream{}, event("A"), event("B"), event("C"))
	var md esdb.StreamMetadata
	md.SetMaxCount(1)
	if _, err := c.SetStreamMetadata(ctx(t), "s-1", esdb.AppendToStreamOptions{}, md); err != nil {
		t.Fatal(err)
	}
	if err := srv.DeleteStream("s-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := readStream(t, c, "s-1"); !isNotFound(err) {
		t.Fatalf("read of a soft-deleted stream: %v, want not found", err)
	}
	appendTo(t, c, "s-1", esdb.Revision(2), event("D"), event("E"))
	if r := revisions(readBackwards(t, c, "s-1", 10)); len(r) != 1 || r[0] != 4 {
		t.Fatalf("after the delete and two appends reads see %v, want [4] ($maxCount 1 kept)", r)
	}
	// Metadata without $maxCount replaces it: every event since $tb shows.
	var tb esdb.StreamMetadata
	tb.SetTruncateBefore(3)
	if _, err := c.SetStreamMetadata(ctx(t), "s-1", esdb.AppendToStreamOptions{}, tb); err != nil {
		t.Fatal(err)
	}
	if r := revisions(readBackwards(t, c, "s-1", 10)); len(r) != 2 || r[0] != 4 || r[1] != 3 {
		t.Fatalf("with $tb 3 alone reads see %v, want [4 3]", r)
	}
	// A metadata stream shows its last event only.
	if r := revisions(readBackwards(t, c, "$$s-1", 10)); len(r) != 1 {
		t.Fatalf("the metadata stream shows revisions %v, want its last one", r)
	}
}

func TestEventsServedCountsEveryEventSentToClients(t *testing.T) {
	srv := esdbtest.Start(t)
	c := client(t, srv)
	appendTo(t, c, "s-1", esdb.NoStream{}, event("A"), event("B"), event("C"))
	appendTo(t, c, "s-2", esdb.NoStream{}, event("A"))
	if n := srv.EventsServedTotal(); n != 0 {
		t.Fatalf("%d events served before any read", n)
	}
	readBackwards(t, c, "s-1", 2)
	if n, total := srv.EventsServed("s-1"), srv.EventsServedTotal(); n != 2 || total != 2 {
		t.Fatalf("after reading 2 events of s-1: %d served of s-1, %d in all; want 2 and 2", n, total)
	}
	if _, err := readStream(t, c, "s-2"); err != nil {
		t.Fatal(err)
	}
	if n, total := srv.EventsServed("s-2"), srv.EventsServedTotal(); n != 1 || total != 3 {
		t.Fatalf("after reading s-2: %d served of s-2, %d in all; want 1 and 3", n, total)
	}
}

func isNotFound(err error) bool {
	var e *esdb.Error
	return errors.As(err, &e) && e.Code() == esdb.ErrorCodeResourceNotFound
}

func TestAHardDeletedStreamRefusesAppendsAndReads(t *testing.T) {
	srv := esdbtest.Start(t)
	c := client(t, srv)
	appendTo(t, c, "s-1", esdb.NoStream{}, event("A"))
	if _, err := srv.HardDeleteStream("s-1"); err != nil {
		t.Fatal(err)
	}
	_, err := c.AppendToStream(ctx(t), "s-1", esdb.AppendToStreamOptions{ExpectedRevision: esdb.Any{}}, event("B"))
	var e *esdb.Error
	if !errors.As(err, &e) || e.Code() != esdb.ErrorCodeStreamDeleted {
		t.Fatalf("append to a hard-deleted stream: %v, want ErrorCodeStreamDeleted", err)
	}
	_, err = readStream(t, c, "s-1")
	if !errors.As(err, &e) || e.Code() != esdb.ErrorCodeStreamDeleted {
		t.Fatalf("read of a hard-deleted stream: %v, want ErrorCodeStreamDeleted", err)
	}
}
