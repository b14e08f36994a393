package esdbstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/cenkalti/backoff/v5"

	"github.com/icpservice/icp/events"
)

// Follow delivers, in global order and in batches of at most batchSize,
// every event of this service's streams with Position > after: first those
// stored, then new ones as they are committed. It runs a catch-up
// subscription to $all, filtered by the server on the stream name prefix,
// starting after the position (start positions are exclusive). Each
// subscription first reads Head: up to it the events are stored, and
// batches are filled; after it each batch holds what has arrived.
//
// When the subscription drops or the server is unreachable, Follow
// resubscribes after the last event fn accepted, with exponential backoff
// (Options.ResubscribeMin..Max) for as long as the server stays
// unreachable: fn sees no gap and no event twice. Events received but not
// yet handed to fn are dropped and received again.
//
// It returns ctx.Err() when ctx ends, fn's error when fn fails, ErrClosed
// when the store closes, and any other error (an event it cannot decode, a
// refused subscription) as it is. A batch is delivered only after fn
// returned for the previous one.
func (s *Store) Follow(ctx context.Context, after uint64, batchSize int, fn func([]events.Recorded) error) error {
	return s.FollowReporting(ctx, after, batchSize, fn, nil)
}

// FollowReporting is Follow that hands each foreign event it passes over
// to foreign (nil: passes over them silently), as events.ForeignFollower
// describes. Within one call each foreign event is handed over once, as
// each event is to fn; a new call after the same position hands it over
// again.
func (s *Store) FollowReporting(ctx context.Context, after uint64, batchSize int, fn func([]events.Recorded) error, foreign func(events.Foreign) error) error {
	if batchSize <= 0 {
		return fmt.Errorf("esdbstore: follow: batch size %d, want > 0", batchSize)
	}
	if fn == nil {
		return errors.New("esdbstore: follow: nil fn")
	}
	// fctx ends with ctx or when the store closes.
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-fctx.Done():
		}
	}()
	end := func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return ErrClosed
	}

	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = s.opts.ResubscribeMin, s.opts.ResubscribeMax
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	last := after
	for {
		delivered, err := s.subscribe(fctx, &last, batchSize, fn, foreign)
		var fe fnError
		switch {
		case errors.As(err, &fe):
			return fe.err
		case fctx.Err() != nil:
			return end()
		case !transient(err) && (!errors.Is(err, events.ErrUnavailable) || errors.Is(err, ErrClosed)):
			return s.failed(fctx, fmt.Sprintf("follow after %d", last), err)
		}
		if delivered {
			b.Reset()
		}
		wait := b.NextBackOff()
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-fctx.Done():
			return end()
		case <-timer.C:
		}
	}
}

// fnError carries the error of Follow's fn.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

// item is what the receiving goroutine hands to subscribe: an event, the
// news that the subscription caught up with the stored events, or the error
// that ended the subscription.
type item struct {
	rec      events.Recorded
	foreign  *events.Foreign
	caughtUp bool
	err      error
}

// catchUpLinger bounds how long a batch waits to fill while catching up. It
// is a safety net: catching up ends at the head read before subscribing, or
// at the server's caught-up message, whichever comes first; only a head
// event that vanished meanwhile (scavenged) leaves it to the linger.
const catchUpLinger = time.Second

// subscribe runs one subscription after *last and delivers its events until
// it ends, advancing *last past every batch fn accepted. It reports whether
// it delivered anything. While catching up (up to this service's head as it
// was when subscribing) it fills each batch, since those events are stored
// and come at once; once live it hands over what has arrived.
func (s *Store) subscribe(ctx context.Context, last *uint64, batchSize int, fn func([]events.Recorded) error, onForeign func(events.Foreign) error) (delivered bool, err error) {
	head, err := s.Head(ctx)
	if err != nil {
		return false, err
	}
	g, err := s.acquire(ctx)
	if err != nil {
		return false, err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the receiving goroutine, which releases g
	items := make(chan item, batchSize)
	go func() {
		err := s.receive(sctx, g.client, *last, items)
		s.release(g, err)
	}()
	live := head <= *last
	linger := time.NewTimer(catchUpLinger)
	defer linger.Stop()
	// take applies a received item: an event joins the batch; a foreign
	// event is reported after the batch before it was delivered.
	take := func(it item, batch []events.Recorded) ([]events.Recorded, error) {
		if it.foreign != nil {
			if onForeign == nil {
				return batch, nil
			}
			if len(batch) > 0 {
				if err := fn(batch); err != nil {
					return nil, fnError{err}
				}
				*last = batch[len(batch)-1].Position
				delivered = true
				batch = nil
			}
			if err := onForeign(*it.foreign); err != nil {
				return nil, fnError{err}
			}
			// Everything before it was handed over: a resubscription
			// starts after it.
			*last = it.foreign.Position
			return batch, nil
		}
		if it.caughtUp {
			live = true
			return batch, nil
		}
		if it.rec.Position >= head {
			live = true
		}
		return append(batch, it.rec), nil
	}
	for {
		var it item
		select {
		case it = <-items:
		case <-ctx.Done():
			return delivered, ctx.Err()
		}
		if it.err != nil {
			return delivered, it.err
		}
		batch, err := take(it, nil)
		if err != nil {
			return delivered, err
		}
		if len(batch) == 0 {
			continue
		}
		var pending error
		linger.Reset(catchUpLinger)
	fill:
		for len(batch) < batchSize {
			if live {
				select {
				case it = <-items:
				default:
					break fill
				}
			} else {
				select {
				case it = <-items:
				case <-linger.C:
					break fill
				case <-ctx.Done():
					return delivered, ctx.Err()
				}
			}
			if it.err != nil {
				pending = it.err
				break
			}
			if batch, err = take(it, batch); err != nil {
				return delivered, err
			}
		}
		if len(batch) == 0 {
			if pending != nil {
				return delivered, pending
			}
			continue
		}
		if err := fn(batch); err != nil {
			return delivered, fnError{err}
		}
		*last = batch[len(batch)-1].Position
		delivered = true
		if pending != nil {
			return delivered, pending
		}
	}
}

// receive subscribes to $all after position after and sends every event of
// this service's streams to out, in order, until the subscription ends; it
// sends and returns the error that ended it.
func (s *Store) receive(ctx context.Context, c *esdb.Client, after uint64, out chan<- item) error {
	send := func(it item) bool {
		select {
		case out <- it:
			return true
		case <-ctx.Done():
			return false
		}
	}
	sub, err := c.SubscribeToAll(ctx, esdb.SubscribeToAllOptions{
		From:   allPosition(after),
		Filter: &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{s.opts.StreamPrefix}},
	})
	if err != nil {
		send(item{err: err})
		return err
	}
	defer sub.Close()
	for {
		ev := sub.Recv()
		switch {
		case ev.EventAppeared != nil:
			e := ev.EventAppeared.OriginalEvent()
			// The server excludes the start position and filters by
			// prefix; checking again keeps a server that did not from
			// making us deliver an event twice or another stream's.
			if e == nil || e.Position.Commit <= after || !s.ours(e.StreamID) {
				continue
			}
			if f, ok := foreign(e); ok {
				after = f.Position
				if !send(item{foreign: &f}) {
					return ctx.Err()
				}
				continue
			}
			r, err := recorded(e)
			if err != nil {
				send(item{err: err})
				return err
			}
			after = r.Position
			if !send(item{rec: r}) {
				return ctx.Err()
			}
		case ev.SubscriptionDropped != nil:
			err := ev.SubscriptionDropped.Error
			if err == nil {
				err = errors.New("subscription dropped")
			}
			send(item{err: err})
			return err
		case ev.CaughtUp != nil:
			if !send(item{caughtUp: true}) {
				return ctx.Err()
			}
		default:
			// Checkpoints and fell-behind carry nothing to deliver:
			// resuming from the last delivered event is exact.
		}
	}
}
