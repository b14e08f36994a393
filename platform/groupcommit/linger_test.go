package groupcommit_test

import (
	"context"
	"slices"
	"testing"
	"time"
)

// lingerForever is a Linger no test reaches: a batch that lingers is
// written only once it is full or the queue is closed.
const lingerForever = time.Hour

// concurrentBatch makes the writer write a batch of two calls, so that the
// next batch lingers, and leaves that write held: the caller queues what
// the next batch takes at once, then releases it with finish.
func concurrentBatch(t *testing.T, f *fixture) (finish func()) {
	t.Helper()
	lone := f.call(context.Background(), 1)
	if got := f.nextWrite(t); !slices.Equal(got, []int{1}) {
		t.Fatalf("a lone call's batch = %v, want it written at once", got)
	}
	a, b := f.call(context.Background(), 2), f.call(context.Background(), 3)
	f.waitQueued(t, 2)
	f.release <- nil
	get(t, lone)
	if got := f.nextWrite(t); len(got) != 2 {
		t.Fatalf("batch = %v, want the two queued calls", got)
	}
	return func() {
		f.release <- nil
		get(t, a)
		get(t, b)
	}
}

// After a batch of several calls, the next batch waits for more calls until
// it is full, and takes nothing past MaxBatch; a lone caller is never held
// (the first write of concurrentBatch would hang).
func TestUnderLoadABatchLingersUntilFull(t *testing.T) {
	f := startLingering(t, 3, lingerForever)
	finish := concurrentBatch(t, f)
	first := f.call(context.Background(), 4)
	f.waitQueued(t, 1)
	finish()
	second := f.call(context.Background(), 5)
	third := f.call(context.Background(), 6)
	more := []<-chan answer{f.call(context.Background(), 7), f.call(context.Background(), 8), f.call(context.Background(), 9)}
	got := f.nextWrite(t)
	if len(got) != 3 || got[0] != 4 {
		t.Fatalf("batch = %v, want the queued call and two that arrived while it lingered", got)
	}
	f.release <- nil
	// The calls the full batch left are the next batch (lingering too, as
	// the last batch took several calls, until it is full).
	rest := f.nextWrite(t)
	f.release <- nil
	if all := slices.Sorted(slices.Values(append(got, rest...))); !slices.Equal(all, []int{4, 5, 6, 7, 8, 9}) || len(rest) != 3 {
		t.Fatalf("batches %v then %v, want every call written once, in batches of MaxBatch", got, rest)
	}
	for _, ch := range append([]<-chan answer{first, second, third}, more...) {
		if a := get(t, ch); a.err != nil || len(a.out) != 1 {
			t.Fatalf("call = %v, %v", a.out, a.err)
		}
	}
}

// Closing the queue ends a linger: what was taken is written and answered.
func TestCloseEndsALinger(t *testing.T) {
	f := startLingering(t, 3, lingerForever)
	finish := concurrentBatch(t, f)
	held := f.call(context.Background(), 7)
	f.waitQueued(t, 1)
	f.close()
	finish()
	if got := f.nextWrite(t); !slices.Equal(got, []int{7}) {
		t.Fatalf("batch after Close = %v, want the held call", got)
	}
	f.release <- nil
	if a := get(t, held); a.err != nil || !slices.Equal(a.out, []int{70}) {
		t.Fatalf("held call = %v, %v, want [70]", a.out, a.err)
	}
}
