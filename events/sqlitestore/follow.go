package sqlitestore

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/icpservice/icp/events"
)

// Follow delivers every event with Position > after in global order, in
// batches of at most batchSize: first those stored, then new ones as they are
// committed (those of this process's commits from memory, see tail).
// Appends of this process wake it at once; appends of another
// process sharing the file are seen within PollInterval. It returns ctx.Err()
// when ctx ends, fn's error when fn fails, ErrClosed when the store closes,
// and an error wrapping events.ErrUnavailable when the file cannot be read.
func (s *Store) Follow(ctx context.Context, after uint64, batchSize int, fn func([]events.Recorded) error) error {
	if batchSize <= 0 {
		return errors.New("sqlitestore: follow: batch size must be > 0")
	}
	if fn == nil {
		return errors.New("sqlitestore: follow: nil fn")
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	// caughtUp: the last read returned less than a batch. If this
	// process's writer has committed nothing beyond it since, the next read
	// would find nothing: skip it and wait.
	caughtUp := false
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Take the wake-up channel before reading, so a commit that lands
		// after the read still wakes this loop.
		wake := s.note.wait()
		if !caughtUp || after < s.head.Load() {
			recs, err := s.next(ctx, after, batchSize)
			if err != nil {
				return err
			}
			if len(recs) > 0 {
				if err := fn(recs); err != nil {
					return err
				}
				after = recs[len(recs)-1].Position
				caughtUp = len(recs) < batchSize
				continue
			}
		}
		caughtUp = false
		if timer == nil {
			timer = time.NewTimer(s.opts.PollInterval)
		} else {
			timer.Reset(s.opts.PollInterval)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closing:
			return ErrClosed
		case <-wake:
		case <-timer.C:
		}
	}
}

// next reads up to batchSize events after position after, from the tail in
// memory when it holds them. A read that fails once ctx has ended returns
// ctx.Err().
func (s *Store) next(ctx context.Context, after uint64, batchSize int) ([]events.Recorded, error) {
	if recs, ok := s.tail.after(after, batchSize); ok {
		return recs, nil
	}
	recs, err := s.ReadAll(ctx, after, batchSize)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, err
	}
	return recs, nil
}

// notifier wakes every waiter at once: each commit closes the current channel
// and replaces it. (A sync.Cond cannot be selected on together with ctx.)
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func newNotifier() notifier { return notifier{ch: make(chan struct{})} }

// wait returns a channel that is closed at the next broadcast.
func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

func (n *notifier) broadcast() {
	n.mu.Lock()
	defer n.mu.Unlock()
	close(n.ch)
	n.ch = make(chan struct{})
}
