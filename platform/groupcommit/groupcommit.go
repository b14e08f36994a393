// Package groupcommit coalesces concurrent write calls into batches that one
// writer goroutine writes together (group commit: one transaction, one fsync
// or one bulk write serves every call queued while the previous batch was
// being written).
//
// A Queue joins any number of callers (Queue.Call) to one writer goroutine
// (Queue.Serve). Its owner makes the three channels and so keeps the
// lifecycle in its own hands: it runs Serve on a goroutine of its own and
// closes Exited after Serve returns; to close, it closes Closed and waits
// for Exited.
//
// The contract:
//   - Ordering: calls are written in the order the writer takes them off
//     Requests (arrival order), and each call's items in slice order, all
//     flattened into one slice per batch.
//   - A call whose ctx has ended when its batch is taken is answered
//     ctx.Err() and none of its items are written.
//   - A call whose ctx ends while its batch is being written returns
//     ctx.Err() at once; the write still happens, for all of the batch.
//   - After Closed is closed, Serve still writes every call already queued;
//     later calls are answered ErrClosed. A call that is answered ErrClosed
//     was not written.
//   - A failed write answers every call of that batch with its error.
//   - Each caller gets exactly its own results, in the order of its items,
//     in a slice whose capacity ends with them: appending to it can never
//     write into another caller's results.
//   - With Writer.Linger, a batch taken when the previous one held more
//     than one call waits up to Linger for more calls (up to MaxBatch
//     items) before it is written; a lone caller never waits.
//
// Hand-written because neither database/sql nor the MongoDB driver coalesces
// calls; the event store's and the read models' writers share this one
// implementation.
package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrClosed answers a call made after the queue's Closed channel was closed
// (or that the writer had not taken when it exited). Nothing of it was
// written.
var ErrClosed = errors.New("groupcommit: closed")

// Request is one call waiting in a queue. Only Call makes them.
type Request[T, R any] struct {
	ctx   context.Context
	items []T
	out   []R
	err   error
	done  chan struct{}
}

// Queue is the channels that join callers to one writer. It is a small
// value: copies share the channels.
type Queue[T, R any] struct {
	// Requests carries calls to the writer. Buffered: its capacity is how
	// many calls can wait while a batch is written before Call blocks.
	Requests chan *Request[T, R]
	// Closed is closed by the owner to close the queue.
	Closed <-chan struct{}
	// Exited is closed by the owner after Serve has returned.
	Exited <-chan struct{}
}

// Writer is what Serve does with a batch.
type Writer[T, R any] struct {
	// MaxBatch caps a batch: a batch always takes one call, and takes
	// more queued calls while it has fewer than MaxBatch items.
	MaxBatch int
	// Write writes the items of every live call of a batch, flattened in
	// order, and returns one result per item. An error fails the whole
	// batch: every one of its callers gets it, and nothing may be assumed
	// written. Write must neither keep nor change items after it returns.
	Write func(items []T) ([]R, error)
	// Committed, if set, runs after a successful Write with the same
	// items and its results, before the batch's callers are answered (a
	// caller that got its results sees what Committed did).
	Committed func(items []T, results []R)
	// Took, if set, is told how many calls each batch took off the queue
	// (calls whose ctx had ended included), before they are written.
	Took func(calls int)
	// Linger (0: none) is how long a batch waits for more calls to join
	// it when the previous batch took more than one call (concurrent
	// callers): fewer, larger writes, for up to Linger more latency. A
	// write's cost is mostly per batch (a transaction, an fsync), so
	// under load this leaves more of the machine to the rest of the
	// pipeline. A batch of MaxBatch items, or a closed queue, ends the
	// wait.
	Linger time.Duration
}

// Call queues items for the writer and waits for their results: one per
// item, in order. It returns ctx.Err() when ctx ends first (the items may
// still be written if the writer had taken them), ErrClosed after the
// queue was closed, or the error of the batch's write. A call without
// items returns an empty result at once.
//
// The writer reads items until their batch is written, which may be after
// Call returned ctx.Err(): the caller must not change them after such a
// return.
func (q Queue[T, R]) Call(ctx context.Context, items []T) ([]R, error) {
	if len(items) == 0 {
		return []R{}, nil
	}
	select {
	case <-q.Closed:
		return nil, ErrClosed
	default:
	}
	r := &Request[T, R]{ctx: ctx, items: items, done: make(chan struct{})}
	select {
	case q.Requests <- r:
	case <-q.Closed:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-q.Exited:
		// The writer exited; it may have answered r just before.
		select {
		case <-r.done:
		default:
			return nil, ErrClosed
		}
	}
	return r.out, r.err
}

// Serve is the writer: it takes the calls queued while the previous batch
// was written (see Writer.MaxBatch) and writes them as one batch, until
// Closed is closed; then it writes what is still queued and returns. Run it
// on one goroutine per queue.
func (q Queue[T, R]) Serve(w Writer[T, R]) {
	s := server[T, R]{q: q, w: w}
	for {
		select {
		case first := <-q.Requests:
			s.commit(s.collect(first))
		case <-q.Closed:
			for {
				select {
				case first := <-q.Requests:
					s.commit(s.collect(first))
				default:
					return
				}
			}
		}
	}
}

// server is Serve's state; its buffers are reused from batch to batch.
type server[T, R any] struct {
	q     Queue[T, R]
	w     Writer[T, R]
	batch []*Request[T, R]
	items []T
	// last is the number of calls the previous batch took.
	last   int
	linger *time.Timer // stopped and drained between uses
}

func (s *server[T, R]) collect(first *Request[T, R]) []*Request[T, R] {
	batch := append(s.batch[:0], first)
	n := len(first.items)
more:
	for n < s.w.MaxBatch {
		select {
		case r := <-s.q.Requests:
			batch = append(batch, r)
			n += len(r.items)
		default:
			break more
		}
	}
	if s.last > 1 && s.w.Linger > 0 && n < s.w.MaxBatch {
		batch = s.lingerFor(batch, n)
	}
	s.batch, s.last = batch, len(batch)
	if s.w.Took != nil {
		s.w.Took(len(batch))
	}
	return batch
}

// lingerFor adds to batch (of n items) the calls that arrive within
// Writer.Linger, until it holds MaxBatch items or the queue is closed.
func (s *server[T, R]) lingerFor(batch []*Request[T, R], n int) []*Request[T, R] {
	if s.linger == nil {
		s.linger = time.NewTimer(s.w.Linger)
	} else {
		s.linger.Reset(s.w.Linger)
	}
	defer s.linger.Stop()
	for n < s.w.MaxBatch {
		select {
		case r := <-s.q.Requests:
			batch = append(batch, r)
			n += len(r.items)
		case <-s.linger.C:
			return batch
		case <-s.q.Closed:
			return batch
		}
	}
	return batch
}

func (s *server[T, R]) commit(batch []*Request[T, R]) {
	live := batch[:0]
	n := 0
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			close(r.done)
			continue
		}
		live = append(live, r)
		n += len(r.items)
	}
	defer clear(batch) // the reused buffer keeps no caller's request alive
	if len(live) == 0 {
		return
	}
	items := live[0].items
	if len(live) > 1 {
		items = s.items[:0]
		for _, r := range live {
			items = append(items, r.items...)
		}
		s.items = items
		defer clear(items)
	}
	out, err := s.w.Write(items)
	if err == nil && len(out) != n {
		err = fmt.Errorf("groupcommit: write returned %d results for %d items", len(out), n)
	}
	if err == nil && s.w.Committed != nil {
		s.w.Committed(items, out)
	}
	off := 0
	for _, r := range live {
		if err != nil {
			r.err = err
		} else {
			end := off + len(r.items)
			r.out = out[off:end:end]
			off = end
		}
		close(r.done)
	}
}
