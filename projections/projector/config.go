package projector

import (
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/icpservice/icp/bus"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/projections"
)

// Config configures a Projector. Zero durations and counts take the defaults
// listed beside each field.
type Config struct {
	// Conn is a connection to the NATS server. The projector opens its own
	// connection with Conn's options (callbacks included, its closed
	// handler excepted) for consuming, and drains that one on shutdown; it
	// publishes dead letters through Conn itself and never closes Conn.
	// Either Conn or URL is required.
	Conn *nats.Conn
	// URL and NatsOptions are used to connect when Conn is nil; the
	// projector then owns and closes its connections.
	URL         string
	NatsOptions []nats.Option

	// ReadModel receives the views. Required.
	ReadModel projections.ReadModel
	// Store is the event store the projector reads missing events from
	// when it sees a gap. Required.
	Store events.Store

	// Durable names the JetStream consumer, its queue group, and the
	// dead-letter subject icp.dlq.<Durable> (default "projector").
	// Replicas with the same Durable share the work.
	Durable string
	// Concurrency bounds one batch and the messages this replica pulls
	// ahead of it (default 1024). A batch is what arrived while the previous
	// one was being written, so batches grow with the load; each costs one
	// read model commit.
	Concurrency int
	// Linger is how long a batch waits for more messages after its first
	// one arrived, when the previous batch held more than one (default
	// 1ms; NoLinger: never). Each batch costs one read model commit, whose
	// CPU is mostly per commit: under load, fewer and larger batches leave
	// more of the machine to the rest of the pipeline. A batch waits only
	// while the writer is idle; a lone event is handed over at once.
	Linger time.Duration
	// MaxAckPending caps the messages delivered and not yet acked, across
	// all replicas (default 2 × Concurrency).
	MaxAckPending int
	// AckWait is how long JetStream waits for an ack before redelivering; it
	// also bounds the handling of one message (default 30s).
	AckWait time.Duration
	// RetryDelay is the delay before the first redelivery of a message that
	// failed for a reason that may pass (read model or store unavailable, an
	// event schema this release does not know yet); it doubles with each
	// delivery up to MaxRetryDelay (defaults 250ms and 30s).
	RetryDelay    time.Duration
	MaxRetryDelay time.Duration
	// MissingEventDeliveries is how many deliveries a message gets while
	// the event store lacks events its gap needs, before it is
	// dead-lettered: the store is the truth, so an event the store never
	// gets can never be applied (default 20).
	MissingEventDeliveries int
	// CheckpointInterval is how often the durable's watermark is recorded
	// and compared with the bus stream's first message, to catch up from
	// the event store what the stream dropped before this durable applied
	// it (default 10s; see docs/operations.md, "Catching up after
	// retention"). It also runs when consuming starts and on a graceful
	// stop.
	CheckpointInterval time.Duration
	// ShutdownTimeout bounds the graceful stop: in-flight messages are
	// finished and acked within it (default 30s).
	ShutdownTimeout time.Duration
	// Logger receives the projector's logs (default slog.Default()).
	Logger *slog.Logger
}

// DefaultDurable is the consumer name used when Config.Durable is empty.
const DefaultDurable = "projector"

// NoLinger as Config.Linger hands each batch over as soon as the writer is
// free.
const NoLinger = time.Duration(-1)

func (c Config) withDefaults() Config {
	if c.Durable == "" {
		c.Durable = DefaultDurable
	}
	if c.Concurrency == 0 {
		c.Concurrency = 1024
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = 2 * c.Concurrency
	}
	if c.Linger == 0 {
		c.Linger = time.Millisecond
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = 250 * time.Millisecond
	}
	if c.MaxRetryDelay == 0 {
		c.MaxRetryDelay = 30 * time.Second
	}
	if c.MissingEventDeliveries == 0 {
		c.MissingEventDeliveries = 20
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports every problem of the configuration at once (after
// defaults are applied).
func (c Config) Validate() error {
	c = c.withDefaults()
	var p []string
	if c.Conn == nil && c.URL == "" {
		p = append(p, "Conn or URL is required")
	}
	if c.ReadModel == nil {
		p = append(p, "ReadModel is required")
	}
	if c.Store == nil {
		p = append(p, "Store is required")
	}
	if err := bus.CheckDurableName(c.Durable); err != nil {
		p = append(p, "Durable "+err.Error())
	}
	if c.Concurrency < 1 {
		p = append(p, "Concurrency must be >= 1")
	}
	if c.MaxAckPending < c.Concurrency {
		p = append(p, "MaxAckPending must be >= Concurrency")
	}
	if (c.Linger < 0 && c.Linger != NoLinger) || c.Linger > time.Second {
		p = append(p, "Linger must be 0 to 1s, or NoLinger")
	}
	if c.AckWait < time.Second {
		p = append(p, "AckWait must be >= 1s")
	}
	if c.RetryDelay < 0 || c.MaxRetryDelay < c.RetryDelay {
		p = append(p, "RetryDelay must be >= 0 and <= MaxRetryDelay")
	}
	if c.MissingEventDeliveries < 1 {
		p = append(p, "MissingEventDeliveries must be >= 1")
	}
	if c.CheckpointInterval < 0 {
		p = append(p, "CheckpointInterval must not be negative")
	}
	if c.ShutdownTimeout < 0 {
		p = append(p, "ShutdownTimeout must not be negative")
	}
	if len(p) > 0 {
		return errors.New("projector: invalid config: " + strings.Join(p, "; "))
	}
	return nil
}
