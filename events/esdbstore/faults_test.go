package esdbstore_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/esdbstore"
	"github.com/icpservice/icp/events/esdbstore/esdbtest"
)

// These tests inject faults into the in-process server (esdbtest) and drive
// the adapter through the unmodified client over gRPC.

func TestReconnectsAfterServerWasDownOverGRPC(t *testing.T) {
	srv := esdbtest.Start(t)
	s := openStore(t, srv.ConnString(), esdbstore.Options{})
	stream := newStream()
	first := mustAppend(t, s, stream, events.NoStream, newEvent(1))

	if err := srv.SetDown(true); err != nil {
		t.Fatal(err)
	}
	ev := newEvent(2)
	_, err := s.Append(testCtx(t), stream, 1, []events.Proposed{ev})
	if !errors.Is(err, events.ErrUnavailable) || errors.Is(err, events.ErrConflict) {
		t.Fatalf("append while the server is down: %v, want an error matching events.ErrUnavailable only", err)
	}
	if err := s.Ping(testCtx(t)); !errors.Is(err, events.ErrUnavailable) {
		t.Fatalf("Ping while the server is down: %v, want an error matching events.ErrUnavailable", err)
	}
	if _, err := s.ReadStream(testCtx(t), stream, 0); !errors.Is(err, events.ErrUnavailable) {
		t.Fatalf("ReadStream while the server is down: %v, want an error matching events.ErrUnavailable", err)
	}

	if err := srv.SetDown(false); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Ping answers once the server is back", func() bool { return s.Ping(testCtx(t)) == nil })
	// The caller retries the same append: it lands once.
	second := mustAppend(t, s, stream, 1, ev)
	again := mustAppend(t, s, stream, 1, ev)
	if !samePositions(again.Positions, second.Positions) {
		t.Fatalf("retry answered %v, want the original %v", again.Positions, second.Positions)
	}
	recs, err := s.ReadStream(testCtx(t), stream, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Position != first.Positions[0] || recs[1].ID != ev.ID {
		t.Fatalf("stream after the outage holds %d events (%v), want the two appended", len(recs), positions(recs))
	}
}

func TestOpenSucceedsWhileServerIsDownAndPingWaitsForItOverGRPC(t *testing.T) {
	srv := esdbtest.Start(t)
	if err := srv.SetDown(true); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, srv.ConnString(), esdbstore.Options{})
	err := s.Ping(testCtx(t))
	if !errors.Is(err, events.ErrUnavailable) {
		t.Fatalf("Ping of an unreachable server: %v, want an error matching events.ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), srv.Addr()) {
		t.Fatalf("Ping error %q does not name the server %s", err, srv.Addr())
	}
	// Each Ping tries again, with a new client: the first one is dead.
	if err := s.Ping(testCtx(t)); !errors.Is(err, events.ErrUnavailable) {
		t.Fatalf("second Ping of an unreachable server: %v", err)
	}
	if err := srv.SetDown(false); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Ping answers once the server is up", func() bool { return s.Ping(testCtx(t)) == nil })
	mustAppend(t, s, newStream(), events.NoStream, newEvent(1))
}

func TestOperationsHonourTheirContextWhileServerIsDownOverGRPC(t *testing.T) {
	srv := esdbtest.Start(t)
	if err := srv.SetDown(true); err != nil {
		t.Fatal(err)
	}
	// 50 discovery attempts 100ms apart: the client gives up after 5s.
	s := openStore(t, srv.ConnString()+"&maxDiscoverAttempts=50", esdbstore.Options{})
	ctx, cancel := context.WithTimeout(testCtx(t), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Append(ctx, newStream(), events.NoStream, []events.Proposed{newEvent(1)})
	if !errors.Is(err, events.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("append at its deadline: %v, want events.ErrUnavailable and context.DeadlineExceeded", err)
	}
	// The caller must not wait for the client's discovery attempts.
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("append returned %s after its 50ms deadline", d)
	}
}

func TestFollowResubscribesAfterDropsWithoutGapOrDuplicateOverGRPC(t *testing.T) {
	srv := esdbtest.Start(t)
	s := openStore(t, srv.ConnString(), fastOptions)
	head, err := s.Head(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	stored := mustAppend(t, s, newStream(), events.NoStream, newEvent(0), newEvent(1), newEvent(2))
	f := startFollow(t, s, head, 2)
	if got := f.next(t, 3); !samePositions(positions(got), stored.Positions) {
		t.Fatalf("stored events delivered at %v, want %v", positions(got), stored.Positions)
	}

	// Drop the subscription again and again while a writer appends: every
	// event arrives once, in order.
	var want []uint64
	var mu sync.Mutex
	stop := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		stream := newStream()
		for v := uint64(0); ; v++ {
			select {
			case <-stop:
				writerDone <- nil
				return
			default:
			}
			res, err := s.Append(testCtx(t), stream, v, []events.Proposed{newEvent(int(v))})
			if err != nil {
				writerDone <- err
				return
			}
			mu.Lock()
			want = append(want, res.Positions...)
			mu.Unlock()
		}
	}()
	for range 5 {
		eventually(t, "Follow subscribed", func() bool { return srv.Subscriptions() == 1 })
		n := 0
		eventually(t, "a subscription dropped", func() bool { n += srv.DropSubscriptions(); return n > 0 })
	}
	close(stop)
	if err := <-writerDone; err != nil {
		t.Fatalf("writer: %v", err)
	}
	sentinel := mustAppend(t, s, newStream(), events.NoStream, newEvent(99))
	mu.Lock()
	defer mu.Unlock()
	if len(want) == 0 {
		t.Fatal("the writer appended nothing during the drops")
	}
	f.exactly(t, want, sentinel.Positions[0])
}

func TestFollowCarriesOnAfterServerWasDownOverGRPC(t *testing.T) {
	srv := esdbtest.Start(t)
	s := openStore(t, srv.ConnString(), fastOptions)
	head, err := s.Head(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	f := startFollow(t, s, head, 10)
	stream := newStream()
	before := mustAppend(t, s, stream, events.NoStream, newEvent(0), newEvent(1))
	if got := f.next(t, 2); !samePositions(positions(got), before.Positions) {
		t.Fatalf("delivered %v, want %v", positions(got), before.Positions)
	}

	if err := srv.SetDown(true); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the subscription ended with the server", func() bool { return srv.Subscriptions() == 0 })
	if err := srv.SetDown(false); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Follow subscribed again", func() bool { return srv.Subscriptions() == 1 })
	after := mustAppend(t, s, stream, 2, newEvent(2), newEvent(3))
	sentinel := mustAppend(t, s, newStream(), events.NoStream, newEvent(99))
	f.exactly(t, after.Positions, sentinel.Positions[0])
}

func TestCloseEndsFollowOverGRPC(t *testing.T) {
	srv := esdbtest.Start(t)
	s := openStore(t, srv.ConnString(), esdbstore.Options{})
	done := make(chan error, 1)
	go func() {
		done <- s.Follow(context.Background(), 0, 10, func([]events.Recorded) error { return nil })
	}()
	eventually(t, "Follow subscribed", func() bool { return srv.Subscriptions() == 1 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, esdbstore.ErrClosed) || !errors.Is(err, events.ErrUnavailable) {
			t.Fatalf("Follow returned %v after Close, want esdbstore.ErrClosed", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Follow did not return after Close")
	}
}
