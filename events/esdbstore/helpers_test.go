package esdbstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/esdbstore"
)

// waitLimit bounds every wait for something asynchronous.
const waitLimit = 20 * time.Second

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitLimit)
	t.Cleanup(cancel)
	return ctx
}

func newStream() string { return events.StreamID(uuid.NewString()) }

func newEvent(n int) events.Proposed {
	return events.Proposed{
		ID:            uuid.NewString(),
		Type:          "TestEvent",
		SchemaVersion: 1,
		Data:          fmt.Appendf(nil, `{"n":%d}`, n),
		Metadata:      []byte(`{"tenant":"t1","userId":"u1"}`),
	}
}

// fastOptions resubscribe quickly, for tests that drop subscriptions.
var fastOptions = esdbstore.Options{ResubscribeMin: 10 * time.Millisecond, ResubscribeMax: 200 * time.Millisecond}

func mustAppend(t testing.TB, s events.Store, stream string, expected uint64, evs ...events.Proposed) events.AppendResult {
	t.Helper()
	res, err := s.Append(testCtx(t), stream, expected, evs)
	if err != nil {
		t.Fatalf("Append(%s, expected %d): %v", stream, expected, err)
	}
	return res
}

// eventually polls cond until it holds or waitLimit passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(waitLimit)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("%s: not within %s", what, waitLimit)
		case <-tick.C:
		}
	}
}

// follower runs Follow in the background and collects what it delivers.
type follower struct {
	got  chan events.Recorded
	done chan error
}

func startFollow(t testing.TB, s events.Store, after uint64, batchSize int) *follower {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &follower{got: make(chan events.Recorded, 10_000), done: make(chan error, 1)}
	go func() {
		f.done <- s.Follow(ctx, after, batchSize, func(b []events.Recorded) error {
			for _, r := range b {
				f.got <- r
			}
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-f.done:
		case <-time.After(waitLimit):
			t.Errorf("Follow did not return after its context was cancelled")
		}
	})
	return f
}

// next returns the next n delivered events.
func (f *follower) next(t testing.TB, n int) []events.Recorded {
	t.Helper()
	var out []events.Recorded
	deadline := time.After(waitLimit)
	for len(out) < n {
		select {
		case r := <-f.got:
			out = append(out, r)
		case err := <-f.done:
			t.Fatalf("Follow returned early after %d of %d events: %v", len(out), n, err)
		case <-deadline:
			t.Fatalf("Follow delivered %d of %d events within %s", len(out), n, waitLimit)
		}
	}
	return out
}

// exactly checks that the next delivered events are those at want, in
// order, and then that the event appended at sentinel comes right after: a
// duplicate or an out-of-order event would come before it.
func (f *follower) exactly(t testing.TB, want []uint64, sentinel uint64) {
	t.Helper()
	want = append(append([]uint64(nil), want...), sentinel)
	got := positions(f.next(t, len(want)))
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delivered event %d of %d at position %d, want %d (the sentinel is %d; a duplicate or a gap comes before it)",
				i, len(want), got[i], want[i], sentinel)
		}
	}
}

func positions(recs []events.Recorded) []uint64 {
	ps := make([]uint64, len(recs))
	for i, r := range recs {
		ps[i] = r.Position
	}
	return ps
}

func samePositions(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
