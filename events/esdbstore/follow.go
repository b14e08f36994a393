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
	b := &batcher{
		ctx: ctx, items: items, batchSize: batchSize, fn: fn, onForeign: onForeign,
		last: last, head: head, live: head <= *last, linger: time.NewTimer(catchUpLinger),
	}
	defer b.linger.Stop()
	err = b.run()
	return b.delivered, err
}

// batcher turns one subscription's items into the batches subscribe delivers.
type batcher struct {
	ctx       context.Context
	items     <-chan item
	batchSize int
	fn        func([]events.Recorded) error
	onForeign func(events.Foreign) error
	last      *uint64 // advanced past every batch fn accepted
	head      uint64  // this service's head when subscribing
	live      bool    // caught up: batches are not filled any more
	delivered bool
	linger    *time.Timer
}

// run delivers batches until the subscription or ctx ends, and returns the
// error that ended it; fn's and onForeign's errors come as fnError.
func (b *batcher) run() error {
	for {
		var it item
		select {
		case it = <-b.items:
		case <-b.ctx.Done():
			return b.ctx.Err()
		}
		if it.err != nil {
			return it.err
		}
		batch, err := b.take(it, nil)
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			continue
		}
		batch, pending, err := b.fill(batch)
		if err != nil {
			return err
		}
		if len(batch) > 0 {
			if err := b.deliver(batch); err != nil {
				return err
			}
		}
		if pending != nil {
			return pending
		}
	}
}

// fill adds received items to batch up to batchSize: while catching up it
// waits for them up to the linger, once live it takes only what has
// arrived. pending is the error that ended the subscription after the
// items taken; err is one that ends the delivery at once (fn's, onForeign's
// or ctx's), with batch dropped.
func (b *batcher) fill(batch []events.Recorded) (_ []events.Recorded, pending, err error) {
	b.linger.Reset(catchUpLinger)
	for len(batch) < b.batchSize {
		var it item
		if b.live {
			select {
			case it = <-b.items:
			default:
				return batch, nil, nil
			}
		} else {
			select {
			case it = <-b.items:
			case <-b.linger.C:
				return batch, nil, nil
			case <-b.ctx.Done():
				return nil, nil, b.ctx.Err()
			}
		}
		if it.err != nil {
			return batch, it.err, nil
		}
		if batch, err = b.take(it, batch); err != nil {
			return nil, nil, err
		}
	}
	return batch, nil, nil
}

// take applies a received item: an event joins the batch; a foreign
// event is reported after the batch before it was delivered.
func (b *batcher) take(it item, batch []events.Recorded) ([]events.Recorded, error) {
	if it.foreign != nil {
		if b.onForeign == nil {
			return batch, nil
		}
		if len(batch) > 0 {
			if err := b.deliver(batch); err != nil {
				return nil, err
			}
			batch = nil
		}
		if err := b.onForeign(*it.foreign); err != nil {
			return nil, fnError{err}
		}
		// Everything before it was handed over: a resubscription
		// starts after it.
		*b.last = it.foreign.Position
		return batch, nil
	}
	if it.caughtUp {
		b.live = true
		return batch, nil
	}
	if it.rec.Position >= b.head {
		b.live = true
	}
	return append(batch, it.rec), nil
}

// deliver hands a non-empty batch to fn and, once fn accepted it, advances
// last past it.
func (b *batcher) deliver(batch []events.Recorded) error {
	if err := b.fn(batch); err != nil {
		return fnError{err}
	}
	*b.last = batch[len(batch)-1].Position
	b.delivered = true
	return nil
}

// receive subscribes to $all after position after and sends every event of
// this service's streams to out, in order, until the subscription ends; it
// sends and returns the error that ended it.
func (s *Store) receive(ctx context.Context, c *esdb.Client, after uint64, out chan<- item) error {
	sub, err := c.SubscribeToAll(ctx, esdb.SubscribeToAllOptions{
		From:   allPosition(after),
		Filter: &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{s.opts.StreamPrefix}},
	})
	if err != nil {
		send(ctx, out, item{err: err})
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
				if !send(ctx, out, item{foreign: &f}) {
					return ctx.Err()
				}
				continue
			}
			r, err := recorded(e)
			if err != nil {
				send(ctx, out, item{err: err})
				return err
			}
			after = r.Position
			if !send(ctx, out, item{rec: r}) {
				return ctx.Err()
			}
		case ev.SubscriptionDropped != nil:
			err := ev.SubscriptionDropped.Error
			if err == nil {
				err = errors.New("subscription dropped")
			}
			send(ctx, out, item{err: err})
			return err
		case ev.CaughtUp != nil:
			if !send(ctx, out, item{caughtUp: true}) {
				return ctx.Err()
			}
		default:
			// Checkpoints and fell-behind carry nothing to deliver:
			// resuming from the last delivered event is exact.
		}
	}
}

// send hands it to out; it reports false when ctx ended first.
func send(ctx context.Context, out chan<- item, it item) bool {
	select {
	case out <- it:
		return true
	case <-ctx.Done():
		return false
	}
}
