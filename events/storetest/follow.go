package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/icpservice/icp/events"
)

// follower runs Follow in the background and hands over what it delivers.
type follower struct {
	batches chan []events.Recorded
	done    chan error
	cancel  context.CancelFunc
}

func startFollow(t *testing.T, s events.Store, after uint64, batchSize int) *follower {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &follower{batches: make(chan []events.Recorded, 1000), done: make(chan error, 1), cancel: cancel}
	go func() {
		f.done <- s.Follow(ctx, after, batchSize, func(b []events.Recorded) error {
			// Copy: an adapter may reuse the slice after fn returns.
			f.batches <- append([]events.Recorded(nil), b...)
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

// next collects delivered events until it has n of them, and checks every
// batch against batchSize.
func (f *follower) next(t *testing.T, n, batchSize int) []events.Recorded {
	t.Helper()
	var got []events.Recorded
	deadline := time.After(waitLimit)
	for len(got) < n {
		select {
		case b := <-f.batches:
			if len(b) == 0 || len(b) > batchSize {
				t.Fatalf("Follow delivered a batch of %d events, want 1..%d", len(b), batchSize)
			}
			got = append(got, b...)
		case err := <-f.done:
			t.Fatalf("Follow returned early: %v", err)
		case <-deadline:
			t.Fatalf("Follow delivered %d of %d events within %s", len(got), n, waitLimit)
		}
	}
	return got
}

func wantPositions(t *testing.T, got []events.Recorded, want []uint64) {
	t.Helper()
	if ps := positionsOf(got); !equalPositions(ps, want) {
		t.Fatalf("delivered positions %v, want %v", ps, want)
	}
}

func runFollow(t *testing.T, open func(t *testing.T) events.Store) {
	runCases(t, open, []storeCase{
		{"StoredThenLiveInOrder", followStoredThenLiveInOrder},
		{"BatchesNoLargerThanBatchSize", followBatchesNoLargerThanBatchSize},
		{"ResumesExclusivelyAfterThePosition", followResumesExclusivelyAfterThePosition},
		{"NextBatchOnlyAfterFnReturned", followNextBatchOnlyAfterFnReturned},
		{"ReturnsFnError", followReturnsFnError},
		{"ReturnsContextErrorWhenCancelled", followReturnsContextErrorWhenCancelled},
		{"InvalidBatchSizeIsRefused", followInvalidBatchSizeIsRefused},
	})
}

func followStoredThenLiveInOrder(t *testing.T, open func(t *testing.T) events.Store) {
	s := open(t)
	head := mustHead(t, s)
	stored := mustAppend(t, s, newStream(), events.NoStream, newEvents(3)...)
	f := startFollow(t, s, head, 100)
	wantPositions(t, f.next(t, 3, 100), stored.Positions)

	stream := newStream()
	var live []uint64
	for i := range 4 {
		live = append(live, mustAppend(t, s, stream, uint64(i), newEvent(i)).Positions...)
	}
	got := f.next(t, 4, 100)
	wantPositions(t, got, live)
	for i, r := range got {
		if r.StreamID != stream || r.Version != uint64(i+1) {
			t.Fatalf("live event %d: %s v%d, want %s v%d", i, r.StreamID, r.Version, stream, i+1)
		}
	}
}

func followBatchesNoLargerThanBatchSize(t *testing.T, open func(t *testing.T) events.Store) {
	s := open(t)
	head := mustHead(t, s)
	res := mustAppend(t, s, newStream(), events.NoStream, newEvents(10)...)
	f := startFollow(t, s, head, 3)
	wantPositions(t, f.next(t, 10, 3), res.Positions)
}

func followResumesExclusivelyAfterThePosition(t *testing.T, open func(t *testing.T) events.Store) {
	s := open(t)
	res := mustAppend(t, s, newStream(), events.NoStream, newEvents(5)...)
	f := startFollow(t, s, res.Positions[1], 2)
	wantPositions(t, f.next(t, 3, 2), res.Positions[2:])
}

func followNextBatchOnlyAfterFnReturned(t *testing.T, open func(t *testing.T) events.Store) {
	s := open(t)
	head := mustHead(t, s)
	res := mustAppend(t, s, newStream(), events.NoStream, newEvents(6)...)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	inFn := make(chan int, 10)
	release := make(chan struct{})
	done := make(chan error, 1)
	var got []uint64
	go func() {
		done <- s.Follow(ctx, head, 2, func(b []events.Recorded) error {
			inFn <- len(b)
			<-release
			got = append(got, positionsOf(b)...) // only this goroutine writes got
			if len(got) >= len(res.Positions) {
				return errStop
			}
			return nil
		})
	}()
	for range 3 {
		select {
		case <-inFn:
		case <-time.After(waitLimit):
			t.Fatal("Follow did not call fn")
		}
		select {
		case n := <-inFn:
			t.Fatalf("fn called again (batch of %d) while the previous call had not returned", n)
		default:
		}
		release <- struct{}{}
	}
	if err := <-done; !errors.Is(err, errStop) {
		t.Fatalf("Follow returned %v, want fn's error", err)
	}
	if !equalPositions(got, res.Positions) {
		t.Fatalf("delivered positions %v, want %v", got, res.Positions)
	}
}

func followReturnsFnError(t *testing.T, open func(t *testing.T) events.Store) {
	s := open(t)
	head := mustHead(t, s)
	mustAppend(t, s, newStream(), events.NoStream, newEvents(3)...)
	calls := 0
	err := s.Follow(testCtx(t), head, 1, func([]events.Recorded) error {
		calls++
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("Follow returned %v, want fn's error", err)
	}
	if calls != 1 {
		t.Fatalf("fn called %d times after it failed once", calls)
	}
}

func followReturnsContextErrorWhenCancelled(t *testing.T, open func(t *testing.T) events.Store) {
	s := open(t)
	head := mustHead(t, s)
	ctx, cancel := context.WithCancel(testCtx(t))
	done := make(chan error, 1)
	called := make(chan struct{}, 1)
	go func() {
		done <- s.Follow(ctx, head, 10, func([]events.Recorded) error {
			called <- struct{}{}
			return nil
		})
	}()
	// Cancel once Follow has caught up and waits for live events.
	mustAppend(t, s, newStream(), events.NoStream, newEvent(1))
	select {
	case <-called:
	case <-time.After(waitLimit):
		t.Fatal("Follow did not deliver the stored event")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Follow returned %v after cancel, want context.Canceled", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Follow did not return after its context was cancelled")
	}

	ctx, cancel = context.WithTimeout(testCtx(t), 50*time.Millisecond)
	defer cancel()
	if err := s.Follow(ctx, mustHead(t, s), 10, func([]events.Recorded) error { return nil }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Follow returned %v at its deadline, want context.DeadlineExceeded", err)
	}
}

func followInvalidBatchSizeIsRefused(t *testing.T, open func(t *testing.T) events.Store) {
	s := open(t)
	ctx, cancel := context.WithTimeout(testCtx(t), waitLimit)
	defer cancel()
	for _, n := range []int{0, -1} {
		err := s.Follow(ctx, 0, n, func([]events.Recorded) error { return nil })
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Follow with batch size %d: %v, want an immediate error", n, err)
		}
	}
}

var errStop = errors.New("storetest: stop following")
