package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/events"
)

// Defaults and bounds of StreamConfig.
const (
	// DefaultDuplicates is ICP_EVENTS's deduplication window. The relay
	// does not rely on it: every publish expects the stream's last sequence,
	// and its resume point is read from the bus. The window only drops a
	// publisher's resend after a lost acknowledgement, which comes within
	// seconds. JetStream keeps every message id of the window in memory,
	// each scanned by the garbage collector: a window of minutes under
	// sustained writes holds hundreds of thousands of them and costs a
	// share of the write rate (docs/performance.md).
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

// Deduplication windows of the streams written by retrying publishers (the
// window of ICP_EVENTS is StreamConfig.Duplicates). Each exceeds the wait
// after which a retry can come: a consumer that crashed between
// dead-lettering a message and acknowledging it gets the message again after
// its ack wait (30 s by default) and dead-letters it again under the same
// Nats-Msg-Id; an operator may run the same republish again minutes later.
const (
	DLQDuplicates    = 2 * time.Minute
	ReplayDuplicates = 2 * time.Minute
)

// Limits of ICP_DLQ, set by whoever creates it (EnsureStreams,
// EnsureDLQStream), and given to an existing stream that has none. A dead
// letter is evidence, not the only copy of anything: every event the
// projector dead-letters that was ever accepted is in the event store, and a
// worker's are there too. The oldest dead letters go first when either limit
// is reached.
const (
	DLQMaxAge   = 30 * 24 * time.Hour
	DLQMaxBytes = 1 << 30
)

// Limits of ICP_RELAY_DLQ: a record is small (no event body), so these hold
// hundreds of thousands of them; beyond, the oldest go first.
const (
	RelayDLQMaxAge   = 30 * 24 * time.Hour
	RelayDLQMaxBytes = 64 << 20
)

// DefaultReplayMaxAge is how long ICP_REPLAY keeps what is published to it
// when the stream is created without a stated age (a dead letter re-driven
// before any republish created it).
const DefaultReplayMaxAge = 7 * 24 * time.Hour

// perSubjectLimit is ICP_EVENTS's per-subject message limit. No subject
// (one per event type) will ever hold 2^40 messages, so it limits nothing;
// it is set because a stream with a per-subject limit and no MaxBytes is
// created with 4 MiB message blocks instead of 8 MiB, and JetStream has no
// other setting for the block size. A block's write buffer is taken whole
// from a pool of its size, and JetStream keeps the blocks read or written
// in the last 10 seconds in memory, so the smaller blocks hold less of the
// live heap under sustained writes. A MaxBytes (DefaultMaxBytes; none only
// with NoMaxBytes) takes precedence in JetStream's choice: from 32 MiB up
// it gives 8 MiB blocks, so the default stream has them
// (docs/performance.md, "Creates against d3eeafc, after the check from
// memory"). An existing stream keeps the block size it was created with
// until the server restarts.
const perSubjectLimit = 1 << 40

// StreamConfig configures the service's streams. Zero values select the
// defaults.
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
	// Replicas is the replica count of the streams and of the relay's lease
	// bucket on a NATS cluster (default 1).
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
	if d := c.WithDefaults().Duplicates; c.MaxAge > 0 && d > c.MaxAge {
		errs = append(errs, fmt.Errorf("Duplicates (%s) must not exceed MaxAge (%s)", d, c.MaxAge))
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("Replicas must be between 1 and 5 (0: default %d), got %d", DefaultReplicas, c.Replicas))
	}
	if len(errs) > 0 {
		return fmt.Errorf("bus: invalid stream config: %w", errors.Join(errs...))
	}
	return nil
}

// WithDefaults returns c with every zero field set to its default.
func (c StreamConfig) WithDefaults() StreamConfig {
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

// eventStream is ICP_EVENTS's configuration.
func eventStream(c StreamConfig) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        events.BusStream,
		Description: "ICP events, published by the relay in event store order",
		Subjects:    []string{events.BusSubjects},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Duplicates:  c.Duplicates,
		MaxAge:      c.MaxAge,
		MaxBytes:    c.MaxBytes,
		Replicas:    c.Replicas,

		MaxMsgsPerSubject: perSubjectLimit,
	}
}

// dlqStream is ICP_DLQ's configuration (replicas 0: the server's default).
func dlqStream(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        events.DLQStream,
		Description: "ICP messages that a consumer could never use, with the reason in " + events.HeaderDLQReason,
		Subjects:    []string{events.DLQSubjects},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Duplicates:  DLQDuplicates,
		MaxAge:      DLQMaxAge,
		MaxBytes:    DLQMaxBytes,
		Replicas:    replicas,
	}
}

// relayDLQStream is ICP_RELAY_DLQ's configuration.
func relayDLQStream(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        events.RelayDLQStream,
		Description: "Stored events the relay passed over without publishing them, with the reason (records, no bodies)",
		Subjects:    []string{events.RelayDLQSubject},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Duplicates:  DLQDuplicates,
		MaxAge:      RelayDLQMaxAge,
		MaxBytes:    RelayDLQMaxBytes,
		Replicas:    replicas,
	}
}

// EnsureStreams creates the event stream ICP_EVENTS (subjects icp.events.>),
// the dead-letter stream ICP_DLQ (subjects icp.dlq.>) and the relay's
// bounded record of events it passed over, ICP_RELAY_DLQ (subject
// icp.relay.dlq), or updates them to cfg when they exist, in place: an
// existing ICP_EVENTS keeps its messages and takes the new limits (a smaller
// MaxBytes drops its oldest messages at once). All are file-backed,
// limits-based streams. It is idempotent: every part of the service may call
// it at start. It fails when cfg is invalid or the existing streams cannot be
// updated to cfg (e.g. a different storage type).
func EnsureStreams(ctx context.Context, nc *nats.Conn, cfg StreamConfig) error {
	if nc == nil {
		return errors.New("bus: EnsureStreams: nil connection")
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.WithDefaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("bus: jetstream: %w", err)
	}
	for _, sc := range []jetstream.StreamConfig{eventStream(cfg), dlqStream(cfg.Replicas), relayDLQStream(cfg.Replicas)} {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("bus: ensure stream %s: %w", sc.Name, err)
		}
	}
	return nil
}

// EnsureDLQStream creates ICP_DLQ, bounded by DLQMaxAge and DLQMaxBytes, when
// it does not exist: for a part that dead-letters but does not own the
// service's setup (the projector, a worker). An existing stream keeps its
// configuration (the service's setup or an operator owns it), except that
// one with no limits at all, as earlier releases created it, is given these.
// It is idempotent and safe to run from several processes at once.
func EnsureDLQStream(ctx context.Context, js jetstream.JetStream) error {
	s, err := js.Stream(ctx, events.DLQStream)
	if err == nil {
		cfg := s.CachedInfo().Config
		if cfg.MaxAge > 0 || cfg.MaxBytes > 0 {
			return nil
		}
		cfg.MaxAge, cfg.MaxBytes = DLQMaxAge, DLQMaxBytes
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("bound dead-letter stream %s: %w", events.DLQStream, err)
		}
		return nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("dead-letter stream %s: %w", events.DLQStream, err)
	}
	_, err = js.CreateStream(ctx, dlqStream(0))
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("create dead-letter stream %s: %w", events.DLQStream, err)
	}
	return nil
}

// EnsureReplayStream creates ICP_REPLAY (subjects icp.replay.>), keeping
// what is published to it for maxAge, or updates an existing one to maxAge.
func EnsureReplayStream(ctx context.Context, js jetstream.JetStream, maxAge time.Duration) error {
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        events.ReplayStream,
		Description: "ICP events published again by icpctl republish, for downstream consumers that lost data",
		Subjects:    []string{events.ReplaySubjects},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Duplicates:  ReplayDuplicates,
		MaxAge:      maxAge,
	})
	if err != nil {
		return fmt.Errorf("stream %s: %w", events.ReplayStream, err)
	}
	return nil
}

// PurgeEvents removes every message of ICP_EVENTS and returns how many there
// were. The stream keeps its sequence numbers: the next message follows the
// last purged one, so durable consumers go on from where they were. An error
// wrapping jetstream.ErrStreamNotFound means the bus never held the stream.
func PurgeEvents(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	s, err := js.Stream(ctx, events.BusStream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", events.BusStream, err)
	}
	n := s.CachedInfo().State.Msgs
	if err := s.Purge(ctx); err != nil {
		return 0, fmt.Errorf("purge %s: %w", events.BusStream, err)
	}
	return n, nil
}
