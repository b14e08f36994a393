package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/events"
)

// Defaults of StreamConfig.
const (
	// DefaultDuplicates is ICP_EVENTS's deduplication window. The relay
	// does not rely on it: every publish expects the stream's last sequence,
	// and its resume point is read from the bus. The window only drops a
	// publisher's resend after a lost acknowledgement, which comes within
	// seconds. JetStream keeps every message id of the window in memory,
	// about 130 bytes each and all of them scanned by the garbage collector:
	// the window holds the rate times its length, so at the rate the relay
	// sustains (BenchmarkRelayPublish) a 2-minute window held hundreds of
	// thousands of ids, and under sustained writes cost a quarter of the rate.
	DefaultDuplicates = 10 * time.Second
	DefaultReplicas   = 1
	// DefaultMaxBytes bounds ICP_EVENTS's size on disk. The event store
	// is the record and keeps every event; the bus is a transport, and
	// without a bound it would keep a third full copy of the history (after
	// the store and the read model) forever. A size bound, unlike an age,
	// never empties the stream: JetStream drops the oldest messages first
	// (DiscardOld), so the newest one, the relay's resume point, stays
	// however quiet the service has been. What it holds in events:
	// docs/performance.md, "Disk per create".
	DefaultMaxBytes int64 = 4 << 30
	// MinMaxBytes is the smallest MaxBytes accepted: a stream must hold far
	// more than the largest event the bus carries.
	MinMaxBytes int64 = 1 << 20
	// NoMaxBytes as MaxBytes keeps ICP_EVENTS unbounded in size.
	NoMaxBytes int64 = -1
)

// perSubjectLimit is ICP_EVENTS's per-subject message limit. No subject
// (one per event type) will ever hold 2^40 messages, so it limits nothing;
// it is set because a stream with a per-subject limit is created with 4 MiB
// message blocks instead of 8 MiB, and JetStream has no other setting for
// the block size. A block's write buffer grows by copying and is freshly
// allocated for every block, and JetStream keeps the blocks written in the
// last 10 seconds in memory: under sustained writes the smaller blocks
// halve that churn, which shows as fewer garbage collections and a lower
// tail latency of creates. An existing stream keeps the block size it was
// created with.
const perSubjectLimit = 1 << 40

// StreamConfig configures the bus streams. Zero values select the defaults.
type StreamConfig struct {
	// Duplicates is the window in which JetStream drops a message on
	// ICP_EVENTS whose Nats-Msg-Id (the event id) it already stored
	// (default DefaultDuplicates). Consumers stay idempotent by event id and
	// version regardless.
	Duplicates time.Duration
	// MaxAge is how long ICP_EVENTS keeps a message (0: forever). Should the
	// stream ever age out completely, the relay finds no resume point on the
	// bus and re-publishes the store from its start; consumers skip what they
	// already applied.
	MaxAge time.Duration
	// MaxBytes bounds ICP_EVENTS's size (0: DefaultMaxBytes, NoMaxBytes:
	// no bound, otherwise at least MinMaxBytes); the oldest messages go
	// first. Consumers that fall behind the oldest message kept catch up
	// from the event store (or icpctl republish).
	MaxBytes int64
	// Replicas is the replica count of both streams on a NATS cluster
	// (default 1).
	Replicas int
}

// Validate reports every problem of the configuration at once.
func (c StreamConfig) Validate() error {
	var errs []error
	if c.Duplicates < 0 {
		errs = append(errs, fmt.Errorf("Duplicates must be > 0 (0: default %s), got %s", DefaultDuplicates, c.Duplicates))
	}
	if c.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("MaxAge must be >= 0 (0: unlimited), got %s", c.MaxAge))
	}
	if c.MaxBytes != 0 && c.MaxBytes != NoMaxBytes && c.MaxBytes < MinMaxBytes {
		errs = append(errs, fmt.Errorf("MaxBytes must be at least %d (0: default %d, %d: no limit), got %d", MinMaxBytes, DefaultMaxBytes, NoMaxBytes, c.MaxBytes))
	}
	if d := c.withDefaults().Duplicates; c.MaxAge > 0 && d > c.MaxAge {
		errs = append(errs, fmt.Errorf("Duplicates (%s) must not exceed MaxAge (%s)", d, c.MaxAge))
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("Replicas must be between 1 and 5 (0: default %d), got %d", DefaultReplicas, c.Replicas))
	}
	if len(errs) > 0 {
		return fmt.Errorf("relay: invalid stream config: %w", errors.Join(errs...))
	}
	return nil
}

func (c StreamConfig) withDefaults() StreamConfig {
	if c.Duplicates == 0 {
		c.Duplicates = DefaultDuplicates
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	return c
}

// EnsureStreams creates the event stream ICP_EVENTS (subjects icp.events.>),
// the dead-letter stream ICP_DLQ (subjects icp.dlq.>) and the relay's
// bounded record of events it passed over, ICP_RELAY_DLQ (subject
// icp.relay.dlq), or updates them to
// cfg when they exist, in place: an existing ICP_EVENTS keeps its messages
// and takes the new limits (a smaller MaxBytes drops its oldest messages at
// once). All are file-backed, limits-based streams. It is
// idempotent: every part of the service may call it at start. It fails when
// the existing streams cannot be updated to cfg (e.g. a different storage
// type).
//
// It uses nats.go's JetStream management API: watermill-nats can only create
// a stream named after a topic, with no storage, limits or dedup settings.
func EnsureStreams(ctx context.Context, nc *nats.Conn, cfg StreamConfig) error {
	if nc == nil {
		return errors.New("relay: EnsureStreams: nil connection")
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("relay: jetstream: %w", err)
	}
	streams := []jetstream.StreamConfig{{
		Name:        events.BusStream,
		Description: "ICP events, published by the relay in event store order",
		Subjects:    []string{events.BusSubjects},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Duplicates:  cfg.Duplicates,
		MaxAge:      cfg.MaxAge,
		MaxBytes:    cfg.MaxBytes,
		Replicas:    cfg.Replicas,

		MaxMsgsPerSubject: perSubjectLimit,
	}, {
		Name:        events.DLQStream,
		Description: "ICP events that a consumer could never apply, with the reason",
		Subjects:    []string{events.DLQSubjects},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Duplicates:  events.DLQDuplicates,
		MaxAge:      events.DLQMaxAge,
		MaxBytes:    events.DLQMaxBytes,
		Replicas:    cfg.Replicas,
	}, {
		Name:        events.RelayDLQStream,
		Description: "Stored events the relay passed over without publishing them, with the reason (records, no bodies)",
		Subjects:    []string{events.RelayDLQSubject},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Duplicates:  events.DLQDuplicates,
		MaxAge:      events.RelayDLQMaxAge,
		MaxBytes:    events.RelayDLQMaxBytes,
		Replicas:    cfg.Replicas,
	}}
	for _, sc := range streams {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("relay: ensure stream %s: %w", sc.Name, err)
		}
	}
	return nil
}

// MaxStrayWalk bounds how many messages at the end of ICP_EVENTS the relay
// looks back through to find its own last event. Messages published there
// by anyone else (strays) are passed over; a tail of more strays than this
// is refused with ErrTooManyStrays until fewer remain (or the operator
// removes them), since finding the resume point would otherwise cost a read
// per stray.
const MaxStrayWalk = 1024

// ErrTooManyStrays is wrapped by the error of a bus tail whose last
// MaxStrayWalk messages are none of this service's events.
var ErrTooManyStrays = errors.New("no event of this service among the last messages on the bus")

// tail is the state of ICP_EVENTS a relay session starts from.
type tail struct {
	// Position is the event store position of this service's last event
	// the stream holds (0 when it holds none): the resume point.
	Position uint64
	// Identity is that event's identity as the message states it (zero
	// when Position is 0).
	Identity events.Identity
	// LastSeq is the stream's last sequence number. It can be above the
	// last own message's sequence when strays follow it or messages at the
	// end were deleted; the next publish must expect exactly this value.
	LastSeq uint64
	// Strays counts the messages passed over to find the last own one.
	Strays int
	// Generation is that event's events.HeaderGeneration ("" when it has
	// none: published before generations, or from a store without them).
	Generation string
}

// readTail reads the resume point from the bus itself, never from a
// checkpoint kept elsewhere (which could run ahead of what JetStream really
// kept after a crash): the last message of ICP_EVENTS that carries this
// service's event identity (events.IdentityFromHeaders), looking back past
// others' messages by sequence, at most MaxStrayWalk of them.
//
// It uses nats.go's JetStream API directly: watermill has no way to read a
// stream's state or a message by sequence.
func readTail(ctx context.Context, js jetstream.JetStream) (tail, error) {
	s, err := js.Stream(ctx, events.BusStream)
	if err != nil {
		return tail{}, fmt.Errorf("stream %s: %w", events.BusStream, err)
	}
	st := s.CachedInfo().State
	t := tail{LastSeq: st.LastSeq}
	if st.Msgs == 0 {
		return t, nil
	}
	for seq := st.LastSeq; seq >= st.FirstSeq && seq > 0; seq-- {
		if int(st.LastSeq-seq) >= MaxStrayWalk {
			return tail{}, fmt.Errorf("%w (%d messages up to sequence %d)", ErrTooManyStrays, MaxStrayWalk, st.LastSeq)
		}
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // deleted, or aged out while walking
		}
		if err != nil {
			return tail{}, fmt.Errorf("message %d of %s: %w", seq, events.BusStream, err)
		}
		id, err := events.IdentityFromHeaders(m.Header.Get)
		if err != nil {
			t.Strays++
			continue
		}
		t.Position, t.Identity = id.Position, id
		t.Generation = m.Header.Get(events.HeaderGeneration)
		return t, nil
	}
	return t, nil
}

// BusPosition returns the event store position of the last event of this
// service the bus holds (0 when it holds none): how far the relay has
// published, whichever relay is active. Compared with the store's Head it
// gives the relay's lag.
func BusPosition(ctx context.Context, nc *nats.Conn) (uint64, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, fmt.Errorf("relay: jetstream: %w", err)
	}
	t, err := readTail(ctx, js)
	if err != nil {
		return 0, fmt.Errorf("relay: %w", err)
	}
	return t.Position, nil
}

// CheckAgreement reads the bus tail and the event store as a relay session
// does and returns nil when the bus's last event of this service is the
// store's event at that position (or the bus holds none), an error wrapping
// ErrDiverged when they disagree, and any other error when either could not
// be read.
func CheckAgreement(ctx context.Context, nc *nats.Conn, store events.Store) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("relay: jetstream: %w", err)
	}
	t, err := readTail(ctx, js)
	if err != nil {
		return fmt.Errorf("relay: bus tail: %w", err)
	}
	head, err := store.Head(ctx)
	if err != nil {
		return fmt.Errorf("relay: event store head: %w", err)
	}
	return checkTail(ctx, store, t, head)
}

// Realign purges every message of ICP_EVENTS, for an operator who found the
// bus and the event store disagreeing (ErrDiverged): the relay then finds
// no event of this service on the bus and publishes the store again from
// its start. It returns how many messages were purged. The stream keeps
// its sequence numbers (the next message follows the last purged one), so
// durable consumers go on from where they were and receive every stored
// event again; they skip what they already applied by event id and version.
// Run it with no relay running: a relay that publishes meanwhile would
// only be refused and re-read the tail, but the purge would then also
// remove what it published.
func Realign(ctx context.Context, nc *nats.Conn) (uint64, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, fmt.Errorf("relay: jetstream: %w", err)
	}
	s, err := js.Stream(ctx, events.BusStream)
	if err != nil {
		return 0, fmt.Errorf("relay: stream %s: %w", events.BusStream, err)
	}
	n := s.CachedInfo().State.Msgs
	if err := s.Purge(ctx); err != nil {
		return 0, fmt.Errorf("relay: purge %s: %w", events.BusStream, err)
	}
	return n, nil
}
