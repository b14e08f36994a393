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
	var ls *lease
	for {
		if ctx.Err() != nil {
			r.release(ls)
			return nil
		}
		if r.nc.IsClosed() {
			return ErrConnClosed
		}
		var wait time.Duration
		ls, wait = r.turn(ctx, ls, bo)
		if wait > 0 {
			sleep(ctx, wait)
		}
	}
}

// turn is one attempt of Run: open the lease bucket (once), take or renew
// the lease, and either wait as a spare or publish for one session. It
// returns the lease and how long to wait before the next attempt.
func (r *Relay) turn(ctx context.Context, ls *lease, bo *backoff.ExponentialBackOff) (*lease, time.Duration) {
	if ls == nil {
		l, err := openLease(ctx, r.js, r.cfg.LeaseBucket, r.cfg.InstanceID, r.cfg.LeaseTTL, r.cfg.PublishTimeout, r.cfg.Streams.WithDefaults().Replicas)
		if err != nil {
			r.failed("open lease bucket", err)
			return nil, bo.NextBackOff()
		}
		ls = l
	}
	held, err := ls.acquire(ctx)
	if err != nil {
		r.failed("take lease", err)
		return ls, bo.NextBackOff()
	}
	if !held {
		if r.state.Swap(StateSpare) != StateSpare {
			r.log.Info("relay: another relay holds the lease; waiting as a spare")
		}
		r.lastErr.Store("")
		return ls, min(r.cfg.LeaseTTL/4, time.Second)
	}
	if prev := r.state.Swap(StateActive); prev == StateStarting || prev == StateSpare {
		r.log.Info("relay: holding the lease; publishing")
	}
	progressed, err := r.session(ctx, ls)
	if progressed {
		bo.Reset()
	}
	return ls, r.ended(ctx, err, progressed, bo)
}

// ended records why a session ended and returns how long to wait before the
// next attempt (0: at once).
func (r *Relay) ended(ctx context.Context, err error, progressed bool, bo *backoff.ExponentialBackOff) time.Duration {
	switch {
	case ctx.Err() != nil:
		// stopping: Run releases the lease
	case errors.Is(err, errLeaseLost):
		r.log.Warn("relay: lease lost; stopped publishing", "err", err)
		r.state.Store(StateSpare)
	case errors.Is(err, errReconnected):
		r.log.Info("relay: reconnected to NATS; re-reading the bus tail")
	case errors.Is(err, errTailMoved):
		// Another publisher moved the tail: a stray message, a second
		// relay, a lost tail. The next session finds the tail again; the
		// relay stays active meanwhile.
		r.log.Warn("relay: re-reading the bus tail", "err", err)
		if !progressed {
			return bo.NextBackOff()
		}
	case errors.Is(err, ErrDiverged):
		r.halt(&r.diverged, err, "relay: the bus and the event store disagree; publishing nothing until they are realigned. Stop every icpd, run `"+RealignCommand+"` (rebuilds the embedded read model, gives the store a new generation and purges "+events.BusStream+"; the relay then publishes the store again from its start); see docs/operations.md")
		return bo.NextBackOff()
	case errors.Is(err, events.ErrCorrupt):
		r.halt(&r.corrupt, err, "relay: an event of this service in the event store does not decode; publishing nothing after it. Restore the event store from a backup that holds it intact; see docs/operations.md")
		return bo.NextBackOff()
	default:
		r.failed("publish", err)
		return bo.NextBackOff()
	}
	return 0
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
