// Package relay publishes the event store's global log to NATS JetStream: the
// store is the outbox, the relay drains it onto the bus.
//
// Guarantees:
//   - Every stored event reaches ICP_EVENTS, in store order, on subject
//     icp.events.<Type> with the CloudEvents headers of events.Headers and
//     Nats-Msg-Id = event id. No event is ever skipped: a failing publish is
//     retried (with backoff) until it succeeds.
//   - The resume point is read from the bus itself: the ce-icpposition header
//     of the last message on ICP_EVENTS that carries this service's event
//     identity (events.IdentityFromHeaders); messages anyone else published
//     there (strays) are passed over. It is re-read at the start of every
//     session: at start, after any publish error (a stray makes the next
//     publish fail its expected sequence), after a NATS reconnect, after
//     regaining the lease. A tail that JetStream lost in a crash (its file
//     store fsyncs lazily) is therefore published again, in order, with no
//     hole.
//   - That last event must be the store's event at that position (same id,
//     stream and version). If it is not, or the bus holds a position beyond
//     the store's head, the bus and the store disagree (an event store
//     restored from an older copy, or the wrong store): the relay publishes
//     nothing, reports ErrDiverged through Health, and keeps checking; the
//     operator realigns them with RealignCommand. It never skips over the
//     disagreement.
//   - Stored events it cannot publish are passed over with a record on
//     ICP_RELAY_DLQ, a counter and a log line, never silently and never
//     retried forever: events this service did not write
//     (events.ForeignFollower) and events larger than the bus's
//     max_payload. An event of this service that no longer decodes
//     (events.ErrCorrupt) stops the relay instead, reported through Health.
//   - Every publish expects the stream sequence it follows
//     (Nats-Expected-Last-Sequence), so a message is stored only directly on
//     top of the one the relay last saw: no reordering even if two relays
//     ever publish at once, and a lost tail is noticed by the next publish.
//   - One relay is active at a time, by a lease in NATS KV (see lease); the
//     others wait as spares and take over when the lease expires.
//
// Within its Duplicates window JetStream drops a re-published event; after
// it, a re-published event is stored again. Consumers therefore stay
// idempotent by event id and version.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/events"
)

// ErrConnClosed is returned by Run when the NATS connection was closed: the
// relay cannot publish any more.
var ErrConnClosed = errors.New("relay: NATS connection closed")

// ErrBusAhead is wrapped by the error of a session that found the bus holding
// a position beyond the store's head: the bus carries events this store does
// not have (a store restored from an older copy, or the wrong store). The
// relay refuses to publish, since new events would be hidden behind that
// position, and keeps checking.
var ErrBusAhead = errors.New("the bus is ahead of the event store")

// ErrDiverged is wrapped by the error of a session that found the bus and
// the event store disagreeing: the bus's last event of this service is not
// the store's event at that position, or the bus is ahead of the store
// (ErrBusAhead). The relay publishes nothing until they agree again.
var ErrDiverged = errors.New("the bus and the event store disagree")

// RealignCommand is the command that realigns the bus with the event store
// after ErrDiverged (see docs/operations.md, "When the bus and the store
// disagree").
const RealignCommand = "icpctl realign"

// errReconnected ends a session after the connection to NATS was
// re-established: the server may have restarted and lost a tail.
var errReconnected = errors.New("NATS connection re-established")

// connCheckInterval is how often an active session looks at the
// connection's reconnect count. Polling the count, rather than installing a
// reconnect handler, leaves the connection's handlers to its owner (nats.go
// has a single handler slot).
const connCheckInterval = 100 * time.Millisecond

// State is what a relay is doing.
type State string

// The states of a relay.
const (
	StateStopped  State = "stopped"  // Run is not running
	StateStarting State = "starting" // Run started, lease not yet checked
	StateActive   State = "active"   // holds the lease and publishes
	StateSpare    State = "spare"    // another relay holds the lease; waiting
	StateRetrying State = "retrying" // the last attempt failed; retrying with backoff
	StateHalted   State = "halted"   // refuses to publish: bus and store disagree, or a stored event is corrupt; re-checking
)

// Stats is a snapshot of a relay's progress.
type Stats struct {
	State State
	// Active is true while this relay holds the lease and publishes.
	Active bool
	// LastPosition is the store position of the last event on the bus, as
	// this relay last knew it: read at the start of its latest session, or
	// acknowledged by JetStream since. Store head minus LastPosition is the
	// active relay's lag.
	LastPosition uint64
	// Published counts events JetStream acknowledged to this relay.
	Published uint64
	// Sessions counts the times this relay (re)read the bus tail and resumed.
	Sessions uint64
	// LastError is the last failure, cleared by the next success.
	LastError string
	// Diverged is why the relay found the bus and the store disagreeing
	// (ErrDiverged), empty when they agree. While set, nothing is published.
	Diverged string
	// Corrupt names the stored event of this service that no longer
	// decodes, empty when none stopped the relay.
	Corrupt string
	// PassedForeign and PassedOversized count stored events passed over
	// with a record on ICP_RELAY_DLQ (see PassedForeign, PassedOversized).
	// A session that starts again before later events were published may
	// pass over the same event again.
	PassedForeign   uint64
	PassedOversized uint64
}

// Relay publishes the event store's global log to JetStream. Create it with
// New and start it with Run.
type Relay struct {
	cfg   Config
	store events.Store
	nc    *nats.Conn
	js    jetstream.JetStream
	log   *slog.Logger

	running   atomic.Bool
	state     atomic.Value // State
	lastPos   atomic.Uint64
	published atomic.Uint64
	sessions  atomic.Uint64
	lastErr   atomic.Value // string
	diverged  atomic.Value // string
	corrupt   atomic.Value // string

	passedForeign   atomic.Uint64
	passedOversized atomic.Uint64
}

// New validates cfg and builds a relay. It does no I/O.
func New(cfg Config) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	// nats.go's JetStream API throughout: the lease in KV, reading the
	// stream's tail, and pipelined publishing (see tailWriter for why not
	// watermill's publisher).
	js, err := jetstream.New(cfg.Conn,
		jetstream.WithDefaultTimeout(cfg.PublishTimeout),
		jetstream.WithPublishAsyncMaxPending(max(cfg.BatchSize*2, 256)),
		jetstream.WithPublishAsyncTimeout(cfg.PublishTimeout))
	if err != nil {
		return nil, fmt.Errorf("relay: jetstream: %w", err)
	}
	r := &Relay{cfg: cfg, store: cfg.Store, nc: cfg.Conn, js: js, log: cfg.Logger.With("instance", cfg.InstanceID)}
	r.state.Store(StateStopped)
	r.lastErr.Store("")
	r.diverged.Store("")
	r.corrupt.Store("")
	return r, nil
}

// Run publishes while this relay holds the lease, and waits as a spare while
// another relay does, until ctx ends. Then it finishes the batch it is
// publishing, releases the lease so a spare takes over at once, and returns
// nil. Failures of NATS or the store are retried with backoff, never
// returned; Run returns an error only when it cannot go on: the NATS
// connection was closed (ErrConnClosed), or Run is already running.
func (r *Relay) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("relay: Run is already running")
	}
	defer r.running.Store(false)
	defer r.state.Store(StateStopped)
	r.state.Store(StateStarting)

	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 50 * time.Millisecond
	bo.MaxInterval = r.cfg.RetryMax
	spareWait := min(r.cfg.LeaseTTL/4, time.Second)

	var ls *lease
	for {
		if ctx.Err() != nil {
			r.release(ls)
			return nil
		}
		if r.nc.IsClosed() {
			return ErrConnClosed
		}
		if ls == nil {
			l, err := openLease(ctx, r.js, r.cfg.LeaseBucket, r.cfg.InstanceID, r.cfg.LeaseTTL, r.cfg.PublishTimeout, r.cfg.Streams.withDefaults().Replicas)
			if err != nil {
				r.failed("open lease bucket", err)
				sleep(ctx, bo.NextBackOff())
				continue
			}
			ls = l
		}
		held, err := ls.acquire(ctx)
		if err != nil {
			r.failed("take lease", err)
			sleep(ctx, bo.NextBackOff())
			continue
		}
		if !held {
			if r.state.Swap(StateSpare) != StateSpare {
				r.log.Info("relay: another relay holds the lease; waiting as a spare")
			}
			r.lastErr.Store("")
			sleep(ctx, spareWait)
			continue
		}
		if prev := r.state.Swap(StateActive); prev == StateStarting || prev == StateSpare {
			r.log.Info("relay: holding the lease; publishing")
		}
		progressed, err := r.session(ctx, ls)
		if progressed {
			bo.Reset()
		}
		switch {
		case ctx.Err() != nil:
			// stopping: the loop head releases the lease
		case errors.Is(err, errLeaseLost):
			r.log.Warn("relay: lease lost; stopped publishing", "err", err)
			r.state.Store(StateSpare)
		case errors.Is(err, errReconnected):
			r.log.Info("relay: reconnected to NATS; re-reading the bus tail")
		case errors.Is(err, errTailMoved):
			// Another publisher moved the tail: a stray message, a
			// second relay, a lost tail. The next session finds the
			// tail again; the relay stays active meanwhile.
			r.log.Warn("relay: re-reading the bus tail", "err", err)
			if !progressed {
				sleep(ctx, bo.NextBackOff())
			}
		case errors.Is(err, ErrDiverged):
			r.halt(&r.diverged, err, "relay: the bus and the event store disagree; publishing nothing until they are realigned. Stop every icpd, run `"+RealignCommand+"` (rebuilds the embedded read model, gives the store a new generation and purges "+events.BusStream+"; the relay then publishes the store again from its start); see docs/operations.md")
			sleep(ctx, bo.NextBackOff())
		case errors.Is(err, events.ErrCorrupt):
			r.halt(&r.corrupt, err, "relay: an event of this service in the event store does not decode; publishing nothing after it. Restore the event store from a backup that holds it intact; see docs/operations.md")
			sleep(ctx, bo.NextBackOff())
		default:
			r.failed("publish", err)
			sleep(ctx, bo.NextBackOff())
		}
	}
}

// session resumes after the bus tail and publishes until ctx ends, the lease
// is lost, NATS reconnects, or something fails. It reports whether at least
// one batch was fully published and confirmed.
func (r *Relay) session(ctx context.Context, ls *lease) (progressed bool, err error) {
	r.sessions.Add(1)
	reconnects := r.nc.Stats().Reconnects
	rctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
	t, err := readTail(rctx, r.js)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		// The bus lost its streams (e.g. its storage was wiped): recreate
		// them; the empty stream then resumes from the store's start.
		r.log.Warn("relay: stream missing on the bus; creating it", "stream", events.BusStream)
		if err = EnsureStreams(rctx, r.nc, r.cfg.Streams); err == nil {
			t, err = readTail(rctx, r.js)
		}
	}
	cancel()
	if err != nil {
		return false, fmt.Errorf("read bus tail: %w", err)
	}
	head, err := r.store.Head(ctx)
	if err != nil {
		return false, fmt.Errorf("event store head: %w", err)
	}
	if err := checkTail(ctx, r.store, t, head); err != nil {
		return false, err
	}
	r.diverged.Store("")
	// Read once per session: only restore and realign change it, and both
	// run with no relay publishing.
	var generation string
	if gs, ok := r.store.(events.Generations); ok {
		if generation, err = gs.Generation(ctx); err != nil {
			return false, fmt.Errorf("event store generation: %w", err)
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

	w := &tailWriter{js: r.js, timeout: r.cfg.PublishTimeout, lastSeq: t.LastSeq, generation: generation}
	last := t.Position
	follow := r.store.Follow
	if ff, ok := r.store.(events.ForeignFollower); ok {
		follow = func(ctx context.Context, after uint64, n int, fn func([]events.Recorded) error) error {
			return ff.FollowReporting(ctx, after, n, fn, func(f events.Foreign) error { return r.passForeign(sctx, f) })
		}
	}
	err = follow(sctx, t.Position, r.cfg.BatchSize, func(batch []events.Recorded) error {
		// A batch is started only while the session is valid; once started
		// it is finished even if ctx ends (graceful stop), but abandoned at
		// once if the lease is lost or NATS reconnected.
		if sctx.Err() != nil {
			return context.Cause(sctx)
		}
		if err := ls.ensure(sctx); err != nil {
			return err
		}
		if c := context.Cause(sctx); errors.Is(c, errLeaseLost) || errors.Is(c, errReconnected) {
			return c
		}
		prev := last
		for _, ev := range batch {
			if ev.Position <= prev {
				return fmt.Errorf("event store delivered position %d after %d: refusing to publish out of order", ev.Position, prev)
			}
			if err := checkSubject(ev.Type); err != nil {
				return fmt.Errorf("event %s of %s at position %d: %w: %w", ev.ID, ev.StreamID, ev.Position, events.ErrCorrupt, err)
			}
			prev = ev.Position
		}
		// Events the bus cannot take are recorded and passed over before
		// any event after them is published, so none is passed over
		// without its record.
		maxPayload := r.nc.MaxPayload()
		start := 0
		publish := func(end int) error {
			if end <= start {
				return nil
			}
			seg := batch[start:end]
			start = end
			n, later, err := w.publishBatch(sctx, seg)
			if n > 0 {
				last = seg[n-1].Position
				r.lastPos.Store(last)
			}
			r.published.Add(uint64(n + later))
			return err
		}
		for i, ev := range batch {
			size, ok := fits(ev, maxPayload)
			if ok {
				continue
			}
			if err := publish(i); err != nil {
				return err
			}
			if err := r.passOversized(sctx, ev, size, maxPayload); err != nil {
				return err
			}
			start = i + 1
		}
		if err := publish(len(batch)); err != nil {
			return err
		}
		progressed = true
		r.state.Store(StateActive)
		r.lastErr.Store("")
		r.corrupt.Store("")
		return nil
	})
	if ctx.Err() == nil && sctx.Err() != nil {
		if c := context.Cause(sctx); c != nil {
			err = c
		}
	}
	if err == nil {
		err = errors.New("event store: Follow returned without an error")
	}
	return progressed, err
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

// release gives up the lease on a graceful stop.
func (r *Relay) release(ls *lease) {
	if ls == nil {
		return
	}
	if err := ls.release(context.Background()); err != nil {
		r.log.Warn("relay: could not release the lease; a spare takes over when it expires", "err", err)
	}
}

// checkTail verifies that the bus's last event of this service is the
// store's event at that position: the same id, in the same stream at the
// same version. Comparing positions alone would miss an event store
// restored from an older copy once new events pass the bus's position
// again: those positions then hold other events. The event is looked up by
// its stream and version, which every store answers exactly (positions of
// EventStoreDB cannot be read from one less than an event's). For a store
// with generations (events.Generations), the message's generation must
// also be the store's, when the message carries one.
//
// It returns an error wrapping ErrDiverged when they disagree (also when
// the tail is beyond the store's head), any other error when the store
// could not answer.
func checkTail(ctx context.Context, store events.Store, t tail, head uint64) error {
	if t.Position > head {
		return fmt.Errorf("%w: %w: bus at position %d, store head at %d", ErrDiverged, ErrBusAhead, t.Position, head)
	}
	if t.Position == 0 {
		return nil
	}
	id := t.Identity
	recs, err := store.ReadStream(ctx, id.StreamID, id.Version)
	if errors.Is(err, events.ErrStreamNotFound) {
		return fmt.Errorf("%w: the bus's last event %s (stream %s, version %d, position %d) is not in the event store: it has no stream %s",
			ErrDiverged, id.ID, id.StreamID, id.Version, id.Position, id.StreamID)
	}
	if err != nil {
		return fmt.Errorf("event store: read %s to check the bus tail: %w", id.StreamID, err)
	}
	if len(recs) == 0 || recs[0].Version != id.Version {
		return fmt.Errorf("%w: the bus's last event %s (stream %s, version %d, position %d) is not in the event store: the stream ends before that version",
			ErrDiverged, id.ID, id.StreamID, id.Version, id.Position)
	}
	if got := recs[0]; got.ID != id.ID || got.Position != id.Position {
		return fmt.Errorf("%w: the bus's last event is %s at position %d, the event store holds %s at position %d for stream %s version %d",
			ErrDiverged, id.ID, id.Position, got.ID, got.Position, id.StreamID, id.Version)
	}
	// The same event under another generation: the store was restored or
	// realigned since it was published, and the bus was not purged (a
	// realign that stopped half-way). Its history may differ before the
	// tail.
	if gs, ok := store.(events.Generations); ok && t.Generation != "" {
		gen, err := gs.Generation(ctx)
		if err != nil {
			return fmt.Errorf("event store: %w", err)
		}
		if gen != t.Generation {
			return fmt.Errorf("%w: the bus's last event %s was published under generation %.64q, the event store is now generation %s (restored or realigned since)",
				ErrDiverged, id.ID, t.Generation, gen)
		}
	}
	return nil
}

// halt records why the relay refuses to publish in reason and logs it
// with what to do, once per distinct reason.
func (r *Relay) halt(reason *atomic.Value, err error, msg string) {
	r.state.Store(StateHalted)
	r.lastErr.Store(err.Error())
	if reason.Swap(err.Error()) != err.Error() {
		r.log.Error(msg, "err", err)
	}
}

func (r *Relay) failed(what string, err error) {
	r.state.Store(StateRetrying)
	r.lastErr.Store(what + ": " + err.Error())
	r.log.Error("relay: "+what+" failed; retrying", "err", err)
}

// Ready reports whether the relay is connected to NATS and either publishing
// or waiting as a healthy spare: Health() == nil.
func (r *Relay) Ready() bool { return r.Health() == nil }

// Health returns nil while the relay is connected to NATS and either
// publishing or waiting as a healthy spare, and otherwise an error saying
// why not: ErrDiverged (naming RealignCommand) or events.ErrCorrupt when it
// refuses to publish, the last failure while it retries.
func (r *Relay) Health() error {
	if d := r.diverged.Load().(string); d != "" {
		return fmt.Errorf("publishing nothing until realigned with `%s`: %s", RealignCommand, d)
	}
	if c := r.corrupt.Load().(string); c != "" {
		return fmt.Errorf("publishing nothing after a corrupt stored event: %s", c)
	}
	if !r.nc.IsConnected() {
		return errors.New("not connected to NATS")
	}
	switch s := r.state.Load().(State); s {
	case StateActive, StateSpare:
		return nil
	case StateRetrying:
		return fmt.Errorf("retrying: %s", r.lastErr.Load().(string))
	default:
		return fmt.Errorf("%s", s)
	}
}

// Lag reports how far the bus is behind the event store, from both of them
// rather than from what this relay believes: the store's head position
// minus the position of the last event of this service on the bus, and the
// age of the oldest stored event after that one. A relay that publishes
// nothing (halted, or stuck retrying) therefore shows a lag that grows with
// every append. It reads the bus and the store whichever relay is active.
// An event passed over at the very end of the log counts as lag until a
// later event is published.
func (r *Relay) Lag(ctx context.Context) (positions uint64, age time.Duration, err error) {
	t, err := readTail(ctx, r.js)
	if err != nil {
		return 0, 0, fmt.Errorf("relay: bus tail: %w", err)
	}
	head, err := r.store.Head(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("relay: event store head: %w", err)
	}
	if head <= t.Position {
		return 0, 0, nil
	}
	next, err := r.store.ReadAll(ctx, t.Position, 1)
	if err != nil || len(next) == 0 {
		return head - t.Position, 0, err
	}
	return head - t.Position, time.Since(next[0].Time), nil
}

// Stats returns a snapshot of the relay's progress. Safe for concurrent use.
func (r *Relay) Stats() Stats {
	s := r.state.Load().(State)
	return Stats{
		State:        s,
		Active:       s == StateActive,
		LastPosition: r.lastPos.Load(),
		Published:    r.published.Load(),
		Sessions:     r.sessions.Load(),
		LastError:    r.lastErr.Load().(string),
		Diverged:     r.diverged.Load().(string),
		Corrupt:      r.corrupt.Load().(string),

		PassedForeign:   r.passedForeign.Load(),
		PassedOversized: r.passedOversized.Load(),
	}
}

// checkSubject refuses event types that would not make one valid NATS
// subject token sequence under icp.events.
func checkSubject(eventType string) error {
	if eventType == "" || strings.ContainsAny(eventType, " \t\r\n*>") ||
		strings.HasPrefix(eventType, ".") || strings.HasSuffix(eventType, ".") || strings.Contains(eventType, "..") {
		return fmt.Errorf("event type %q cannot be a NATS subject", eventType)
	}
	return nil
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
