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
// it is full; a lone caller is never held (the first write above would hang).
func TestUnderLoadABatchLingersUntilFull(t *testing.T) {
	f := startLingering(t, 3, lingerForever)
	finish := concurrentBatch(t, f)
	first := f.call(context.Background(), 4)
	f.waitQueued(t, 1)
	finish()
	second := f.call(context.Background(), 5)
	third := f.call(context.Background(), 6)
	got := f.nextWrite(t)
	if got[0] != 4 || !slices.Equal(slices.Sorted(slices.Values(got)), []int{4, 5, 6}) {
		t.Fatalf("batch = %v, want the queued call and the two that arrived while it lingered", got)
	}
	f.release <- nil
	for _, ch := range []<-chan answer{first, second, third} {
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
