package api

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/semaphore"

	"github.com/icpservice/icp/commands"
)

// writeSlots bounds the writes (create, update, delete) that are in the
// command handler at once, and how long a write waits for its turn.
//
// This is the write path's only queue the API controls, and it is where the
// bounded wait belongs: a command holds its slot from before it reads the
// stream until the store answered its append, and a command has at most one
// append in the store at a time, so with MaxInflightWrites no larger than the
// event store's own queue (sqlitestore: Options.QueueSize, 4096 by default)
// an admitted append never waits for room there. A write that does not get a
// slot within WriteQueueWait is answered 503 UNAVAILABLE with Retry-After
// before anything was handed to the store: nothing was recorded, and a retry
// cannot create anything twice.
//
// An admitted append is never given up on a timer. Cancelling it after the
// store took it would leave its outcome unknown (the store may commit it
// anyway) and turn a slow commit into a 503 for a change that is durable,
// which the contract forbids. It ends with the store's answer, or when the
// caller goes away (then nobody reads the answer).
//
// The writes waiting for a slot are bounded too (MaxWaitingWrites): each holds
// a goroutine, its parsed command and a place in the semaphore's queue, so a
// flood of writes while the store is slow would otherwise grow the queue
// without limit. A write that finds the queue full is refused at once.
type writeSlots struct {
	sem        *semaphore.Weighted
	wait       time.Duration
	waiting    atomic.Int64
	maxWaiting int64
}

func newWriteSlots(slots, maxWaiting int, wait time.Duration) *writeSlots {
	return &writeSlots{sem: semaphore.NewWeighted(int64(slots)), wait: wait, maxWaiting: int64(maxWaiting)}
}

var errWriteQueueFull = errors.New("api: no write slot within the wait")

// run runs do in a write slot: at once when one is free, else after waiting
// at most wait for one, unless maxWaiting writes are waiting already.
// Without a slot it returns errWriteQueueFull (or ctx's error when the caller
// went away first) and do never ran.
func (w *writeSlots) run(ctx context.Context, do func(context.Context) (commands.Result, error)) (commands.Result, error) {
	if !w.sem.TryAcquire(1) {
		if w.waiting.Add(1) > w.maxWaiting {
			w.waiting.Add(-1)
			return commands.Result{}, errWriteQueueFull
		}
		wctx, cancel := context.WithTimeout(ctx, w.wait)
		err := w.sem.Acquire(wctx, 1)
		cancel()
		w.waiting.Add(-1)
		if err != nil {
			if ctx.Err() != nil {
				return commands.Result{}, ctx.Err()
			}
			return commands.Result{}, errWriteQueueFull
		}
	}
	defer w.sem.Release(1)
	return do(ctx)
}

// write runs a command through the write slots; a write refused for want of
// a slot is answered 503 with Retry-After.
func (a *api) write(c *gin.Context, do func(context.Context) (commands.Result, error)) (commands.Result, error) {
	res, err := a.writes.run(c.Request.Context(), do)
	if errors.Is(err, errWriteQueueFull) {
		a.logger(c).Warn("write refused: every write slot stayed busy", "max_inflight_writes", a.cfg.MaxInflightWrites,
			"max_waiting_writes", a.cfg.MaxWaitingWrites, "wait", a.cfg.WriteQueueWait)
		return res, a.unavailable("too many changes are in progress; nothing was recorded; retry later")
	}
	return res, err
}
