package commands

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/google/uuid"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
)

// Handler executes commands: it loads an ICP's stream, decides with the pure
// domain.Decide* functions, and appends the resulting events with the stream's
// version as the expected version, so two concurrent commands on one ICP never
// both succeed on the same version. Safe for concurrent use.
type Handler struct {
	store       events.Store
	now         func() time.Time
	maxAttempts int
	unavailable uint         // tries of an append the store could not confirm
	busLimit    func() int64 // WithBusLimit; nil: no bound
	maxDoc      int          // WithMaxDocBytes; 0: no bound
	// observeAppend is WithAppendObserver's; nil: none.
	observeAppend func(time.Duration, error)
}

// Option configures a Handler.
type Option func(*Handler)

// WithClock sets the clock that stamps createdAt/updatedAt (default time.Now).
func WithClock(now func() time.Time) Option { return func(h *Handler) { h.now = now } }

// WithMaxAttempts bounds the load-decide-append attempts of one command when
// the stream changes in between (default 5); attempts after the first wait a
// short random pause (see conflictBackOff). Past it the command fails with
// domain.ErrConflict.
func WithMaxAttempts(n int) Option {
	return func(h *Handler) {
		if n > 0 {
			h.maxAttempts = n
		}
	}
}

// WithAppendObserver has observe called after every call of the store's
// append (each retry of one included) with how long it took, group-commit
// queueing included, and its error (nil: recorded). The handler is the
// service's one writer of events, so this is where append latency and
// failures are counted; the store itself is passed on undecorated, with
// every optional capability it has (events.Snapshotter above all).
func WithAppendObserver(observe func(time.Duration, error)) Option {
	return func(h *Handler) { h.observeAppend = observe }
}

// NewHandler returns a Handler that records events in store.
func NewHandler(store events.Store, opts ...Option) *Handler {
	if store == nil {
		panic("commands: NewHandler needs a store")
	}
	h := &Handler{store: store, now: time.Now, maxAttempts: 5, unavailable: 3}
	for _, o := range opts {
		o(h)
	}
	return h
}

// RequestMeta is what the transport knows about a request and the events keep
// for tracing.
type RequestMeta struct {
	CorrelationID string
	TraceParent   string
	TraceState    string
}

// Result is the outcome of a command that succeeded.
type Result struct {
	// State is the ICP after the command as recorded, with its version and
	// the position of its creation. For a replayed create it is the ICP as
	// it was first created, whatever happened to it since.
	State *domain.State
	// Position is the global position of the last event the command
	// recorded (for a replay: of the original ICPCreated event).
	Position uint64
	// Replayed: an Idempotency-Key retry of a create that had already
	// succeeded; nothing new was recorded.
	Replayed bool
	// Doc, for a create recorded by this call, is the ICP's JSON as the
	// event holds it: the bytes the read model will hold and a read will
	// answer. Nil otherwise (encode State.ICP).
	Doc []byte
}

// newICPID returns a version 7 UUID: unique like a random one, but ordered
// by creation time, so the stores' indexes keyed by the ICP's id (the event
// store's (stream, version), the read model's primary key) grow at their
// right edge. A group commit of many creates then rewrites a few index pages
// instead of one page per create. The time it carries is already public as
// createdAt.
func newICPID() string {
	id, err := uuid.NewV7()
	if err != nil { // the system's random source failed
		return uuid.NewString()
	}
	return id.String()
}

// idNamespace is the UUID namespace of ICP ids derived from an
// Idempotency-Key. Never change it: a retry after an upgrade must derive the
// same id as the first attempt.
var idNamespace = uuid.MustParse("6f1d9a62-3c47-4b0e-9d55-2a8e1f7c4b90")

// ICPIDForKey returns the id of the ICP created by tenant's user with an
// Idempotency-Key: a name-based UUID (version 5), so that every retry targets
// the same stream and the store's "stream must not exist" check catches it.
func ICPIDForKey(tenant, user, key string) string {
	name := strconv.Itoa(len(tenant)) + ":" + tenant + strconv.Itoa(len(user)) + ":" + user + key
	return uuid.NewSHA1(idNamespace, []byte(name)).String()
}

// Create records a new ICP from cmd for a.
//
// With an Idempotency-Key (key != ""), the ICP's id is derived from the
// tenant, the user and the key: a retry with a command of the same Hash
// returns the ICP as it was first created (Replayed set); a different command
// fails with ErrIdempotencyKeyReused. Without a key every call creates a new
// ICP with a fresh time-ordered id (newICPID).
//
// Errors: *ValidationError never (cmd is already valid); ErrIdempotencyKeyReused;
// an error wrapping events.ErrUnavailable when the store could not be reached
// or could not confirm the append (nothing may have been recorded, or the ICP
// may have been: retrying with the same key is safe). On success the event is
// durable.
func (h *Handler) Create(ctx context.Context, a domain.Actor, cmd domain.CreateICP, key string, meta RequestMeta) (Result, error) {
	if a.UserID == "" {
		return Result{}, errors.New("commands: create needs an authenticated caller")
	}
	// The hash is only ever compared on an Idempotency-Key retry; a create
	// without a key cannot be retried, so it skips the cost.
	var id, hash string
	if key != "" {
		id, hash = ICPIDForKey(a.Tenant, a.UserID, key), HashCreate(cmd)
	} else {
		id = newICPID()
	}
	md := h.metadata(a, meta)
	md.CommandHash, md.IdempotencyKey = hash, key
	return h.run(ctx, id, true, h.loadFirst, nil, md, func(cur *current) (decision, error) {
		if cur.first == nil {
			ev, err := domain.DecideCreate(nil, id, a, cmd, h.now())
			return decision{payloads: []any{ev}}, err
		}
		// The stream exists: a retry of a create with the same key.
		return replayCreate(*cur.first, key, hash)
	})
}

// Update applies cmd to ICP id for a. ifMatch nil: no precondition; else the
// ICP must be at one of the listed versions (If-Match). An update that changes
// nothing records nothing and returns the ICP as it is.
//
// Without ifMatch, when the ICP changes between load and append, the handler
// loads and decides again on the new version (bounded by WithMaxAttempts, with
// a short random pause before each new attempt), so concurrent updates are
// serialised. With ifMatch it never retries: the
// version the precondition matched is gone, so the answer is
// domain.ErrPreconditionFailed at once.
//
// Errors: domain.ErrNotFound, domain.ErrForbidden,
// domain.ErrPreconditionFailed, domain.ErrConflict (still conflicting after
// the retries; nothing recorded), or an error wrapping
// events.ErrUnavailable. On success the event is durable.
func (h *Handler) Update(ctx context.Context, a domain.Actor, id string, cmd domain.UpdateICP, ifMatch []uint64, meta RequestMeta) (Result, error) {
	return h.run(ctx, id, false, h.loadState, conflictUnder(ifMatch), h.metadata(a, meta), func(cur *current) (decision, error) {
		s := cur.state
		ev, ok, err := domain.DecideUpdate(s, a, cmd, ifMatch, h.now())
		switch {
		case err != nil:
			return decision{}, err
		case !ok:
			return decision{done: &Result{State: s, Position: cur.lastPosition}}, nil
		}
		return decision{payloads: []any{ev}}, nil
	})
}

// Delete deletes ICP id for a (ifMatch as for Update). The ICP's history
// stays in the store; the service no longer serves it. A second delete is
// domain.ErrNotFound. Other errors as for Update.
func (h *Handler) Delete(ctx context.Context, a domain.Actor, id string, ifMatch []uint64, meta RequestMeta) (Result, error) {
	return h.run(ctx, id, false, h.loadState, conflictUnder(ifMatch), h.metadata(a, meta), func(cur *current) (decision, error) {
		ev, err := domain.DecideDelete(cur.state, a, ifMatch, h.now())
		if err != nil {
			return decision{}, err
		}
		return decision{payloads: []any{ev}}, nil
	})
}

// conflictUnder is what a command under the precondition ifMatch answers
// when its append meets a moved stream: nil (no precondition) means load and
// decide again; with If-Match the matched version is gone, so
// domain.ErrPreconditionFailed without another attempt.
func conflictUnder(ifMatch []uint64) error {
	if ifMatch == nil {
		return nil
	}
	return domain.ErrPreconditionFailed
}

// replayCreate answers an Idempotency-Key retry from the stream's first event.
func replayCreate(first events.Recorded, key, hash string) (decision, error) {
	md, err := events.DecodeMetadata(first.Metadata)
	if err != nil {
		return decision{}, fmt.Errorf("commands: metadata of %s: %w", first.StreamID, err)
	}
	if key == "" {
		// A fresh id that is taken: cannot happen short of a broken
		// random source; refuse rather than answer with someone else's ICP.
		return decision{}, domain.ErrConflict
	}
	if md.IdempotencyKey != key || md.CommandHash != hash {
		return decision{}, ErrIdempotencyKeyReused
	}
	s, err := events.EvolveRecorded(nil, first)
	if err != nil {
		return decision{}, fmt.Errorf("commands: replay %s: %w", first.StreamID, err)
	}
	return decision{done: &Result{State: s, Position: first.Position, Replayed: true}}, nil
}

func (h *Handler) metadata(a domain.Actor, meta RequestMeta) events.Metadata {
	return events.Metadata{
		Tenant:        a.Tenant,
		UserID:        a.UserID,
		CorrelationID: meta.CorrelationID,
		TraceParent:   meta.TraceParent,
		TraceState:    meta.TraceState,
	}
}

// current is a stream as loaded for a decision.
type current struct {
	state        *domain.State    // the fold of the stream; nil: no stream (or not folded, see loadFirst)
	version      uint64           // the stream's version; events.NoStream: none
	lastPosition uint64           // position of the event at version
	first        *events.Recorded // loadFirst only: the stream's first event
}

// decision is what a command decided on the current stream: payloads to
// append (values of the domain.ICP*V1 types), or a result to answer without
// appending anything.
type decision struct {
	payloads []any
	done     *Result
}

// run is the one path of every command: load the stream of ICP id, decide,
// append with the loaded version as the expected version; when the stream
// moved in between (a *ConflictError), load again and decide again, at most
// maxAttempts times, then domain.ErrConflict. onConflict, when not nil, is returned
// at the first conflict instead (a precondition that no longer holds).
// assumeNew skips the first load and decides on an empty stream (a create: a
// conflict means the stream exists). load reads what the decision needs:
// loadState for an update or a delete, loadFirst for a create's retry.
func (h *Handler) run(ctx context.Context, id string, assumeNew bool, load loader, onConflict error, md events.Metadata, decide func(*current) (decision, error)) (Result, error) {
	stream := events.StreamID(id)
	cur := &current{}
	var pause *backoff.ExponentialBackOff
	for attempt := 1; ; attempt++ {
		if !assumeNew || attempt > 1 {
			var err error
			if cur, err = load(ctx, stream); err != nil {
				return Result{}, err
			}
		}
		d, err := decide(cur)
		if err != nil {
			return Result{}, err
		}
		if d.done != nil {
			return *d.done, nil
		}
		if len(d.payloads) == 0 {
			return Result{}, errors.New("commands: a decision without events")
		}
		r, conflict, err := h.apply(ctx, stream, cur, d.payloads, md)
		if !conflict {
			return r, err
		}
		if onConflict != nil {
			return Result{}, onConflict
		}
		if attempt >= h.maxAttempts {
			return Result{}, domain.ErrConflict
		}
		if pause == nil {
			pause = conflictBackOff()
		}
		if err := sleep(ctx, pause.NextBackOff()); err != nil {
			return Result{}, err
		}
	}
}

// apply encodes the decided payloads, checks them against the limits and
// appends them to stream with cur's version as the expected version, and
// returns the result. conflict means the stream moved since cur was loaded
// (err then wraps events.ErrConflict) and nothing was appended.
func (h *Handler) apply(ctx context.Context, stream string, cur *current, payloads []any, md events.Metadata) (_ Result, conflict bool, _ error) {
	p, err := h.prepare(stream, cur, payloads, md)
	if err != nil {
		return Result{}, false, err
	}
	res, err := h.append(ctx, stream, cur.version, p.proposed, p.snap)
	if err != nil {
		return Result{}, errors.Is(err, events.ErrConflict), err
	}
	r, err := result(cur.state, payloads, cur.version, res)
	r.Doc = p.doc
	return r, false, err
}

// prepared is an append as prepare made it.
type prepared struct {
	proposed []events.Proposed
	doc      []byte // the created ICP's document: for a single create, else nil
	snap     []byte // the snapshot to keep with the events, or nil
}

// prepare encodes the decided payloads as the events to append to stream
// after cur, refuses them when they break the limits (checkLimits), and
// makes the snapshot to keep with them. Nothing is written.
func (h *Handler) prepare(stream string, cur *current, payloads []any, md events.Metadata) (prepared, error) {
	state, expected := cur.state, cur.version
	proposed, doc, err := encodeAll(payloads, md)
	if err != nil {
		return prepared{}, err
	}
	if h.busLimit != nil || h.maxDoc > 0 {
		// A create's document is doc: the fold after it is only needed
		// to size the document of an update.
		var next *domain.State
		if doc == nil && h.maxDoc > 0 {
			r, err := result(state, payloads, expected, events.AppendResult{Positions: make([]uint64, len(payloads))})
			if err != nil {
				return prepared{}, err
			}
			next = r.State
		}
		if err := h.checkLimits(stream, expected, proposed, next, doc); err != nil {
			return prepared{}, err
		}
	}
	snap, err := h.snapshotOf(state, expected, proposed)
	if err != nil {
		return prepared{}, err
	}
	return prepared{proposed: proposed, doc: doc, snap: snap}, nil
}

// encodeAll encodes payloads as events with new ids and metadata md. doc is
// the created ICP's document when payloads is a single create, else nil.
func encodeAll(payloads []any, md events.Metadata) (proposed []events.Proposed, doc []byte, err error) {
	proposed = make([]events.Proposed, len(payloads))
	for i, pl := range payloads {
		if c, ok := pl.(domain.ICPCreatedV1); ok && len(payloads) == 1 {
			proposed[i], doc, err = events.EncodeCreated(uuid.NewString(), c, md)
		} else {
			proposed[i], err = events.Encode(uuid.NewString(), pl, md)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	return proposed, doc, nil
}

// conflictBackOff spaces the attempts of commands that keep meeting each other
// on one stream: each waits a random, growing pause (about 10, 20, 40, 80 ms,
// each anywhere from 0 to twice that) before it loads again, so that they stop
// arriving in the same group commit, where only one of them can win. Measured
// with 50 concurrent updates of one ICP on the SQLite store and the default 5
// attempts: 11 succeeded on average with immediate retries, 15 with pauses
// from 1 ms, 37 with these.
func conflictBackOff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 10 * time.Millisecond
	b.RandomizationFactor = 1
	b.Multiplier = 2
	b.MaxInterval = 100 * time.Millisecond
	b.Reset()
	return b
}

// sleep waits d, or returns ctx's error when it ends first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// result folds the appended payloads onto state.
func result(state *domain.State, payloads []any, expected uint64, res events.AppendResult) (Result, error) {
	if len(res.Positions) != len(payloads) {
		return Result{}, fmt.Errorf("commands: store returned %d positions for %d events", len(res.Positions), len(payloads))
	}
	s := state
	for i, pl := range payloads {
		var err error
		if s, err = domain.Evolve(s, pl, expected+uint64(i)+1, res.Positions[i]); err != nil {
			return Result{}, fmt.Errorf("commands: fold appended events: %w", err)
		}
	}
	return Result{State: s, Position: res.Positions[len(res.Positions)-1]}, nil
}

// appendOnce is one attempt at the store's append: with snap kept beside
// the events when the store keeps snapshots and snap is not nil, and
// observed (WithAppendObserver). A method rather than a closure made per
// append: it runs once for every create.
func (h *Handler) appendOnce(ctx context.Context, stream string, expected uint64, evs []events.Proposed, snap []byte) (res events.AppendResult, err error) {
	start := time.Now()
	if ss, ok := h.store.(events.Snapshotter); ok && snap != nil {
		res, err = ss.AppendWithSnapshot(ctx, stream, expected, evs, domain.FoldVersion, snap)
	} else {
		res, err = h.store.Append(ctx, stream, expected, evs)
	}
	if h.observeAppend != nil {
		h.observeAppend(time.Since(start), err)
	}
	return res, err
}

// append appends proposed and, when the store could not confirm it, tries the
// very same events again a few times: the store deduplicates a repeated
// append of the same event ids at the same expected version, so a retry either
// records the events once or reports the original result. Giving up returns
// the store's unavailable error.
func (h *Handler) append(ctx context.Context, stream string, expected uint64, proposed []events.Proposed, snap []byte) (events.AppendResult, error) {
	res, err := h.appendOnce(ctx, stream, expected, proposed, snap)
	if err == nil || !errors.Is(err, events.ErrUnavailable) || h.unavailable <= 1 {
		return res, err
	}
	// The first attempt's outcome is unknown (the store may hold it): retry
	// the same event ids, which the store treats as the same append, on a
	// context the caller's end cannot cut short, so that a durable append is
	// answered as recorded rather than as an error that would invite a second
	// create.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 20 * time.Millisecond
	b.MaxInterval = 200 * time.Millisecond
	res, err = backoff.Retry(rctx, func() (events.AppendResult, error) {
		res, err := h.appendOnce(rctx, stream, expected, proposed, snap)
		if err != nil && !errors.Is(err, events.ErrUnavailable) {
			return res, backoff.Permanent(err)
		}
		return res, err
	}, backoff.WithBackOff(b), backoff.WithMaxTries(h.unavailable-1), backoff.WithMaxElapsedTime(2*time.Second))
	var perm *backoff.PermanentError
	if errors.As(err, &perm) {
		err = perm.Unwrap()
	}
	return res, err
}
