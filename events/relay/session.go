package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/bus"
	"github.com/icpservice/icp/events"
)

// session resumes after the bus tail and publishes until ctx ends, the lease
// is lost, NATS reconnects, or something fails; it always returns an error
// saying which (ErrDiverged and events.ErrCorrupt among them: Run halts on
// those). It reports whether at least one batch was fully published and
// confirmed. Events are published in store order, each only directly on top
// of the one before it on the bus (see tailWriter).
func (r *Relay) session(ctx context.Context, ls *lease) (progressed bool, err error) {
	r.sessions.Add(1)
	reconnects := r.nc.Stats().Reconnects
	t, generation, err := r.resume(ctx)
	if err != nil {
		return false, err
	}
	sctx, stop := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.watch(sctx, stop, ls, reconnects)
	}()
	defer func() {
		stop(nil)
		wg.Wait()
	}()

	p := &publisher{r: r, ctx: sctx, ls: ls, last: t.Position,
		w: &tailWriter{js: r.js, timeout: r.cfg.PublishTimeout, lastSeq: t.LastSeq, generation: generation}}
	err = r.follow(sctx)(sctx, t.Position, r.cfg.BatchSize, p.batch)
	if ctx.Err() == nil && sctx.Err() != nil {
		if c := context.Cause(sctx); c != nil {
			err = c
		}
	}
	if err == nil {
		err = errors.New("event store: Follow returned without an error")
	}
	return p.progressed, err
}

// resume reads where a session starts: the bus tail (recreating the streams
// when the bus lost them), checked against the store (an error wrapping
// ErrDiverged when they disagree), and the store's generation.
func (r *Relay) resume(ctx context.Context) (tail, string, error) {
	t, err := r.readTailRecreating(ctx)
	if err != nil {
		return tail{}, "", fmt.Errorf("read bus tail: %w", err)
	}
	head, err := r.store.Head(ctx)
	if err != nil {
		return tail{}, "", fmt.Errorf("event store head: %w", err)
	}
	if err := checkTail(ctx, r.store, t, head); err != nil {
		return tail{}, "", err
	}
	r.diverged.Store("")
	// Read once per session: only restore and realign change it, and both
	// run with no relay publishing.
	var generation string
	if gs, ok := r.store.(events.Generations); ok {
		if generation, err = gs.Generation(ctx); err != nil {
			return tail{}, "", fmt.Errorf("event store generation: %w", err)
		}
	}
	if t.Strays > 0 {
		r.log.Warn("relay: passed over messages at the end of the bus that are not this service's events",
			"stream", events.BusStream, "count", t.Strays, "stream_last_seq", t.LastSeq, "resume_after", t.Position)
	}
	if t.Position == 0 && t.LastSeq > 0 {
		r.log.Warn("relay: the bus holds no event although it held some (retention or a purge); publishing the store again from its start",
			"stream", events.BusStream, "stream_last_seq", t.LastSeq)
	}
	r.lastPos.Store(t.Position)
	r.log.Debug("relay: session started", "resume_after", t.Position, "stream_last_seq", t.LastSeq, "store_head", head)
	return t, generation, nil
}

// readTailRecreating reads the bus tail; a bus that lost its streams (e.g.
// its storage was wiped) gets them again, and the empty stream then resumes
// from the store's start.
func (r *Relay) readTailRecreating(ctx context.Context) (tail, error) {
	rctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
	defer cancel()
	t, err := readTail(rctx, r.js)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		r.log.Warn("relay: stream missing on the bus; creating it", "stream", events.BusStream)
		if err = bus.EnsureStreams(rctx, r.nc, r.cfg.Streams); err == nil {
			t, err = readTail(rctx, r.js)
		}
	}
	return t, err
}

// follow is the store's Follow, reporting foreign events to passForeign
// when the store can tell them apart.
func (r *Relay) follow(ctx context.Context) func(context.Context, uint64, int, func([]events.Recorded) error) error {
	ff, ok := r.store.(events.ForeignFollower)
	if !ok {
		return r.store.Follow
	}
	return func(fctx context.Context, after uint64, n int, fn func([]events.Recorded) error) error {
		return ff.FollowReporting(fctx, after, n, fn, func(f events.Foreign) error { return r.passForeign(ctx, f) })
	}
}

// publisher is one session's publishing: the writer on the bus tail, and the
// position of the last event JetStream confirmed.
type publisher struct {
	r *Relay
	// ctx is the session's: it ends with Run's, and with a lost lease or a
	// reconnect (its cause).
	ctx        context.Context
	ls         *lease
	w          *tailWriter
	last       uint64
	progressed bool
}

// batch publishes one batch the store delivered. A batch is started only
// while the session is valid; once started it is finished even if Run's ctx
// ends (graceful stop), but abandoned at once if the lease is lost or NATS
// reconnected.
func (p *publisher) batch(batch []events.Recorded) error {
	if p.ctx.Err() != nil {
		return context.Cause(p.ctx)
	}
	if err := p.ls.ensure(p.ctx); err != nil {
		return err
	}
	if c := context.Cause(p.ctx); errors.Is(c, errLeaseLost) || errors.Is(c, errReconnected) {
		return c
	}
	if err := checkBatch(batch, p.last); err != nil {
		return err
	}
	if err := p.publishFitting(batch); err != nil {
		return err
	}
	p.progressed = true
	p.r.state.Store(StateActive)
	p.r.lastErr.Store("")
	p.r.corrupt.Store("")
	return nil
}

// checkBatch refuses a batch out of store order after position prev, and
// an event type that cannot be a subject (events.ErrCorrupt).
func checkBatch(batch []events.Recorded, prev uint64) error {
	for _, ev := range batch {
		if ev.Position <= prev {
			return fmt.Errorf("event store delivered position %d after %d: refusing to publish out of order", ev.Position, prev)
		}
		if err := checkSubject(ev.Type); err != nil {
			return fmt.Errorf("event %s of %s at position %d: %w: %w", ev.ID, ev.StreamID, ev.Position, events.ErrCorrupt, err)
		}
		prev = ev.Position
	}
	return nil
}

// publishFitting publishes batch in order. Events the bus cannot take are
// recorded and passed over before any event after them is published, so
// none is passed over without its record.
func (p *publisher) publishFitting(batch []events.Recorded) error {
	maxPayload := p.r.nc.MaxPayload()
	start := 0
	for i, ev := range batch {
		size, ok := fits(ev, maxPayload)
		if ok {
			continue
		}
		if err := p.publish(batch[start:i]); err != nil {
			return err
		}
		if err := p.r.passOversized(p.ctx, ev, size, maxPayload); err != nil {
			return err
		}
		start = i + 1
	}
	return p.publish(batch[start:])
}

// publish publishes seg and records how far JetStream confirmed it.
func (p *publisher) publish(seg []events.Recorded) error {
	if len(seg) == 0 {
		return nil
	}
	n, later, err := p.w.publishBatch(p.ctx, seg)
	if n > 0 {
		p.last = seg[n-1].Position
		p.r.lastPos.Store(p.last)
	}
	p.r.published.Add(uint64(n + later))
	return err
}

// watch keeps an active session's lease renewed while it is idle, and ends
// the session (through stop) when the lease is lost or the connection to
// NATS was re-established.
func (r *Relay) watch(ctx context.Context, stop context.CancelCauseFunc, ls *lease, reconnects uint64) {
	renew := time.NewTicker(r.cfg.LeaseTTL / 6)
	defer renew.Stop()
	conn := time.NewTicker(connCheckInterval)
	defer conn.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-conn.C:
			if r.nc.Stats().Reconnects != reconnects {
				stop(errReconnected)
				return
			}
		case <-renew.C:
			err := ls.ensure(ctx)
			if errors.Is(err, errLeaseLost) {
				stop(err)
				return
			}
			if err != nil && ctx.Err() == nil {
				r.log.Warn("relay: renewing the lease failed; retrying", "err", err)
			}
		}
	}
}
