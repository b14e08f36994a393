package groupcommit_test

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/icpservice/icp/platform/groupcommit"
)

// fixture runs a queue whose writer records each batch on writes and then
// holds it until the test sends the batch's fate on release, so a test
// decides what is queued while a batch is being written. An item's result
// is the item times ten.
type fixture struct {
	q         groupcommit.Queue[int, int]
	closed    chan struct{}
	closeOnce sync.Once
	writes    chan []int
	release   chan error
	took      atomic.Int64

	mu        sync.Mutex
	committed [][]int // items of each committed batch, then their results
}

func start(t *testing.T, maxBatch int) *fixture {
	t.Helper()
	return startLingering(t, maxBatch, 0)
}

// startLingering is start with Writer.Linger set.
func startLingering(t *testing.T, maxBatch int, linger time.Duration) *fixture {
	t.Helper()
	f := &fixture{closed: make(chan struct{}), writes: make(chan []int), release: make(chan error)}
	exited := make(chan struct{})
	f.q = groupcommit.Queue[int, int]{Requests: make(chan *groupcommit.Request[int, int], 64), Closed: f.closed, Exited: exited}
	w := groupcommit.Writer[int, int]{
		MaxBatch: maxBatch,
		Write: func(items []int) ([]int, error) {
			f.writes <- slices.Clone(items)
			if err := <-f.release; err != nil {
				return nil, err
			}
			out := make([]int, len(items))
			for i, it := range items {
				out[i] = it * 10
			}
			return out, nil
		},
		Committed: func(items, results []int) {
			f.mu.Lock()
			f.committed = append(f.committed, slices.Clone(items), slices.Clone(results))
			f.mu.Unlock()
		},
		Took:   func(calls int) { f.took.Add(int64(calls)) },
		Linger: linger,
	}
	go func() {
		defer close(exited)
		f.q.Serve(w)
	}()
	t.Cleanup(func() {
		f.close()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case <-f.writes:
				f.release <- nil
			case <-exited:
				return
			case <-timeout:
				t.Error("the writer did not exit after Close")
				return
			}
		}
	})
	return f
}

func (f *fixture) close() { f.closeOnce.Do(func() { close(f.closed) }) }

// nextWrite returns the items of the batch the writer is now writing.
func (f *fixture) nextWrite(t *testing.T) []int {
	t.Helper()
	select {
	case items := <-f.writes:
		return items
	case <-time.After(10 * time.Second):
		t.Fatal("no write started")
		return nil
	}
}

// waitQueued returns once n calls wait in the queue.
func (f *fixture) waitQueued(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(f.q.Requests) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued, want %d", len(f.q.Requests), n)
		}
		runtime.Gosched()
	}
}

type answer struct {
	out []int
	err error
}

// call runs Call on its own goroutine; its answer comes on the channel.
func (f *fixture) call(ctx context.Context, items ...int) <-chan answer {
	ch := make(chan answer, 1)
	go func() {
		out, err := f.q.Call(ctx, items)
		ch <- answer{out, err}
	}()
	return ch
}

func get(t *testing.T, ch <-chan answer) answer {
	t.Helper()
	select {
	case a := <-ch:
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("call not answered")
		return answer{}
	}
}

func times10(items ...int) []int {
	out := make([]int, len(items))
	for i, it := range items {
		out[i] = it * 10
	}
	return out
}

// Calls that arrive while a batch is written go together into the next
// batch, up to MaxBatch items.
func TestCallsQueuedDuringAWriteShareTheNextOne(t *testing.T) {
	f := start(t, 20)
	first := f.call(context.Background(), 0)
	if got := f.nextWrite(t); !slices.Equal(got, []int{0}) {
		t.Fatalf("first batch = %v", got)
	}
	const callers = 30
	answers := make([]<-chan answer, callers)
	for i := range callers {
		answers[i] = f.call(context.Background(), i+1)
	}
	f.waitQueued(t, callers)
	f.release <- nil

	var sizes []int
	for written := 0; written < callers; {
		batch := f.nextWrite(t)
		sizes = append(sizes, len(batch))
		written += len(batch)
		f.release <- nil
	}
	if !slices.Equal(sizes, []int{20, 10}) {
		t.Fatalf("batches of %v items after the first, want [20 10]: %d calls, MaxBatch 20", sizes, callers)
	}
	if a := get(t, first); a.err != nil || !slices.Equal(a.out, []int{0}) {
		t.Fatalf("first call = %v, %v", a.out, a.err)
	}
	for _, ch := range answers {
		if a := get(t, ch); a.err != nil || len(a.out) != 1 {
			t.Fatalf("call = %v, %v", a.out, a.err)
		}
	}
	if n := f.took.Load(); n != callers+1 {
		t.Fatalf("Took counted %d calls, want %d", n, callers+1)
	}
}

// Calls are written in arrival order, each one's items in slice order, and
// each caller gets only its own results.
func TestOrderAndOwnResults(t *testing.T) {
	f := start(t, 100)
	first := f.call(context.Background(), 0)
	f.nextWrite(t)
	a := f.call(context.Background(), 1, 2, 3)
	f.waitQueued(t, 1)
	b := f.call(context.Background(), 4, 5)
	f.waitQueued(t, 2)
	c := f.call(context.Background(), 6)
	f.waitQueued(t, 3)
	f.release <- nil
	if got := f.nextWrite(t); !slices.Equal(got, []int{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("batch = %v, want calls in arrival order", got)
	}
	f.release <- nil
	get(t, first)

	ra, rb, rc := get(t, a), get(t, b), get(t, c)
	for _, x := range []struct {
		got  answer
		want []int
	}{{ra, times10(1, 2, 3)}, {rb, times10(4, 5)}, {rc, times10(6)}} {
		if x.got.err != nil || !slices.Equal(x.got.out, x.want) {
			t.Fatalf("answer = %v, %v; want %v", x.got.out, x.got.err, x.want)
		}
	}
	// Appending to one caller's results must not write into the next's.
	_ = append(ra.out, -1)
	if !slices.Equal(rb.out, times10(4, 5)) {
		t.Fatalf("appending to the first caller's results changed the second's to %v", rb.out)
	}

	// Committed saw each successful batch, before its callers were answered.
	f.mu.Lock()
	defer f.mu.Unlock()
	want := [][]int{{0}, {0}, {1, 2, 3, 4, 5, 6}, times10(1, 2, 3, 4, 5, 6)}
	if !slices.EqualFunc(f.committed, want, slices.Equal) {
		t.Fatalf("committed = %v, want %v", f.committed, want)
	}
}

// A call whose ctx ended while it was queued is answered ctx.Err() and is
// not written; the others of its batch are.
func TestCallWhoseContextEndedBeforeItWasTakenIsNotWritten(t *testing.T) {
	f := start(t, 100)
	first := f.call(context.Background(), 0)
	f.nextWrite(t)
	ctx, cancel := context.WithCancel(context.Background())
	gone := f.call(ctx, 1, 2)
	f.waitQueued(t, 1)
	kept := f.call(context.Background(), 3)
	f.waitQueued(t, 2)
	cancel()
	if a := get(t, gone); !errors.Is(a.err, context.Canceled) {
		t.Fatalf("cancelled call = %v, %v; want context.Canceled", a.out, a.err)
	}
	f.release <- nil
	if got := f.nextWrite(t); !slices.Equal(got, []int{3}) {
		t.Fatalf("batch = %v, want only the live call's items", got)
	}
	f.release <- nil
	get(t, first)
	if a := get(t, kept); a.err != nil || !slices.Equal(a.out, times10(3)) {
		t.Fatalf("live call = %v, %v", a.out, a.err)
	}
}

// A caller that leaves while its batch is written returns at once; the
// batch is still written for the others.
func TestCallerLeavingDuringItsWriteDoesNotStopIt(t *testing.T) {
	f := start(t, 100)
	ctx, cancel := context.WithCancel(context.Background())
	leaving := f.call(ctx, 1)
	if got := f.nextWrite(t); !slices.Equal(got, []int{1}) {
		t.Fatalf("batch = %v", got)
	}
	cancel()
	if a := get(t, leaving); !errors.Is(a.err, context.Canceled) {
		t.Fatalf("leaving call = %v, %v; want context.Canceled while its write is held", a.out, a.err)
	}
	f.release <- nil
	after := f.call(context.Background(), 2)
	f.nextWrite(t)
	f.release <- nil
	get(t, after)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.committed) < 2 || !slices.Equal(f.committed[0], []int{1}) {
		t.Fatalf("committed = %v, want the left caller's batch written", f.committed)
	}
}

// Close lets the writer finish the calls already queued; later calls are
// refused with ErrClosed and nothing of them is written.
func TestCloseFinishesQueuedCallsAndRefusesLaterOnes(t *testing.T) {
	f := start(t, 100)
	first := f.call(context.Background(), 0)
	f.nextWrite(t)
	a := f.call(context.Background(), 1)
	f.waitQueued(t, 1)
	b := f.call(context.Background(), 2)
	f.waitQueued(t, 2)
	f.close()
	if _, err := f.q.Call(context.Background(), []int{9}); !errors.Is(err, groupcommit.ErrClosed) {
		t.Fatalf("call after Close = %v, want ErrClosed", err)
	}
	f.release <- nil
	if got := f.nextWrite(t); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("batch after Close = %v, want the queued calls", got)
	}
	f.release <- nil
	for _, ch := range []<-chan answer{first, a, b} {
		if a := get(t, ch); a.err != nil || len(a.out) != 1 {
			t.Fatalf("queued call = %v, %v; want written", a.out, a.err)
		}
	}
	select {
	case <-f.q.Exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer did not exit after the queue was drained")
	}
	if _, err := f.q.Call(context.Background(), []int{9}); !errors.Is(err, groupcommit.ErrClosed) {
		t.Fatalf("call after the writer exited = %v, want ErrClosed", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, items := range f.committed {
		if slices.Contains(items, 9) {
			t.Fatalf("a refused call was written: %v", f.committed)
		}
	}
}

// A failed write answers every call of its batch with the error, and the
// writer goes on with the next batch.
func TestFailedWriteAnswersEveryCallerOfTheBatch(t *testing.T) {
	f := start(t, 100)
	first := f.call(context.Background(), 0)
	f.nextWrite(t)
	boom := errors.New("disk full")
	var failing []<-chan answer
	for i := range 3 {
		failing = append(failing, f.call(context.Background(), i+1))
		f.waitQueued(t, i+1)
	}
	f.release <- nil
	if got := f.nextWrite(t); len(got) != 3 {
		t.Fatalf("batch = %v", got)
	}
	f.release <- boom
	for _, ch := range failing {
		if a := get(t, ch); !errors.Is(a.err, boom) || a.out != nil {
			t.Fatalf("call of the failed batch = %v, %v; want %v", a.out, a.err, boom)
		}
	}
	get(t, first)
	next := f.call(context.Background(), 7)
	f.nextWrite(t)
	f.release <- nil
	if a := get(t, next); a.err != nil || !slices.Equal(a.out, times10(7)) {
		t.Fatalf("call after a failed batch = %v, %v", a.out, a.err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.committed) != 4 {
		t.Fatalf("committed = %v, want only the two successful batches", f.committed)
	}
}

// A write that returns a result count other than its item count fails its
// batch rather than hand callers someone else's results.
func TestWriteWithWrongResultCountFailsTheBatch(t *testing.T) {
	closed, exited := make(chan struct{}), make(chan struct{})
	q := groupcommit.Queue[int, int]{Requests: make(chan *groupcommit.Request[int, int], 1), Closed: closed, Exited: exited}
	go func() {
		defer close(exited)
		q.Serve(groupcommit.Writer[int, int]{
			MaxBatch: 10,
			Write:    func(items []int) ([]int, error) { return make([]int, len(items)-1), nil },
		})
	}()
	defer func() { close(closed); <-exited }()
	if out, err := q.Call(context.Background(), []int{1, 2}); err == nil {
		t.Fatalf("call = %v, nil; want an error", out)
	}
	if out, err := q.Call(context.Background(), nil); err != nil || out == nil || len(out) != 0 {
		t.Fatalf("call without items = %#v, %v; want an empty result", out, err)
	}
}
