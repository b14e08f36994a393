package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/icpservice/icp/bus"
	"github.com/icpservice/icp/events"
)

// Defaults of Config.
const (
	DefaultConcurrency     = 1
	DefaultMaxAttempts     = 5
	DefaultAckWait         = 30 * time.Second
	DefaultRetryDelay      = 500 * time.Millisecond
	DefaultMaxRetryDelay   = 30 * time.Second
	DefaultShutdownTimeout = 30 * time.Second
)

// StartAt says where a durable consumer starts the first time it is created.
// It has no effect on a durable that exists already: that one resumes after
// the last event it acknowledged, whatever StartAt says.
type StartAt string

// Start points of a new durable.
const (
	// StartAtFirst delivers every event ICP_EVENTS still holds, oldest
	// first (the default). The stream keeps events forever unless the
	// operator configured a MaxAge; for anything older, read the event store.
	StartAtFirst StartAt = "first"
	// StartAtNew delivers only events published after the durable was
	// created.
	StartAtNew StartAt = "new"
)

// The replay stream, where `icpctl republish` writes a range of the event
// history again for a downstream that lost data (see Config.Replay and
// events/CONSUMERS.md).
const (
	ReplayStream        = events.ReplayStream
	ReplaySubjectPrefix = events.ReplaySubjectPrefix
	ReplaySubjects      = events.ReplaySubjects
)

// Config configures a Consumer. Zero values take the defaults named beside
// each field; Validate reports every problem at once.
type Config struct {
	// URL of the NATS server(s) carrying ICP_EVENTS, comma separated.
	// Required.
	URL string
	// NatsOptions are added to the connection's options (credentials, TLS,
	// reconnect policy; by default it reconnects forever). The consumer owns
	// its connection: it drains and closes it when Run returns, and sets its
	// name and closed handler.
	NatsOptions []nats.Option

	// Durable names the JetStream consumer, its queue group and the
	// dead-letter subject icp.dlq.<Durable>. Required; use one name per
	// worker kind, e.g. "leadsourcer". Processes with the same Durable share
	// the work and the position: a restarted process resumes after the last
	// acknowledged event.
	Durable string
	// StartAt is where a new durable starts (default StartAtFirst).
	StartAt StartAt
	// Replay makes the durable read ICP_REPLAY (subjects
	// icp.replay.<EventType>), where `icpctl republish` puts events of the
	// history again, instead of ICP_EVENTS. Everything else is the same:
	// the typed handlers, upcasting, ordering, acknowledgement, retries and
	// dead letters (to icp.dlq.<Durable>, with icp-dlq-stream ICP_REPLAY).
	// A replay durable is a JetStream consumer of its own, apart from the
	// live one of the same Durable (both may run at once), with its own
	// position. Run waits until ICP_REPLAY exists: the first republish
	// creates it. ICP_REPLAY is shared by every downstream and keeps what
	// it was given for a week: a new replay durable with StartAtFirst gets
	// every republished event the stream still holds, with StartAtNew only
	// those published after it started.
	Replay bool

	// Concurrency is how many handlers run at once across every process
	// sharing Durable (default 1). With 1, handlers see events one at a
	// time in bus order, which is the event store's order, so each ICP's
	// events arrive in version order; a failing event holds back the ones
	// after it until it succeeds or is dead-lettered. Above 1 there is no
	// order at all, not even per ICP: compare Envelope.Version with what you
	// stored. It is the consumer's MaxAckPending. JetStream spreads the
	// messages over Concurrency subscriptions at random, so a message can
	// wait in this process behind another handler while its AckWait runs:
	// keep handlers well under AckWait / Concurrency, or a message is
	// delivered again while it waits.
	Concurrency int
	// MaxAttempts is how many deliveries a message gets while its handler
	// returns an error (or panics, or outlives its time) before it is
	// dead-lettered (default 5). Deliveries are counted by JetStream, so a
	// delivery lost to a crash counts as an attempt too.
	MaxAttempts int
	// AckWait is how long JetStream waits for the answer to one delivery
	// before delivering it again (default 30s). A handler's context ends at
	// four fifths of it: a handler must return by then.
	AckWait time.Duration
	// RetryDelay is the wait before the second delivery of a message whose
	// handler failed; it doubles with each delivery up to MaxRetryDelay
	// (defaults 500ms and 30s). An event of a schema version this code does
	// not know yet is delivered again on the same schedule, without limit.
	RetryDelay    time.Duration
	MaxRetryDelay time.Duration
	// ShutdownTimeout bounds the graceful stop: handlers in flight are
	// finished and acknowledged within it (default 30s).
	ShutdownTimeout time.Duration
	// OnMissed, when set, is told of events ICP_EVENTS dropped before this
	// durable acknowledged them (see Missed): a durable that was down, or
	// behind, longer than the stream keeps events. Every such gap is also
	// logged at error level with the icpctl command that publishes the
	// events again, and counted in Stats.Missed. A gap is reported until
	// OnMissed returns nil (without OnMissed, once). It is called from one
	// goroutine at a time, apart from the handlers. Not used with Replay.
	OnMissed func(ctx context.Context, m Missed) error
	// MissedCheckInterval is how often the durable's progress is recorded
	// and compared with the stream (default 10s); it is also checked when
	// consuming starts, and recorded on a graceful stop.
	MissedCheckInterval time.Duration
	// Logger receives the consumer's logs (default slog.Default()).
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.StartAt == "" {
		c.StartAt = StartAtFirst
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = DefaultRetryDelay
	}
	if c.MaxRetryDelay == 0 {
		c.MaxRetryDelay = max(DefaultMaxRetryDelay, c.RetryDelay)
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MissedCheckInterval == 0 {
		c.MissedCheckInterval = DefaultMissedCheckInterval
	}
	return c
}

// Validate reports every problem of the configuration at once (zero values
// stand for their defaults).
func (c Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if strings.TrimSpace(c.URL) == "" {
		add("URL is required")
	}
	if c.Durable == "" {
		add("Durable is required")
	} else if err := bus.CheckDurableName(c.Durable); err != nil {
		add("Durable %w", err)
	}
	if c.StartAt != "" && c.StartAt != StartAtFirst && c.StartAt != StartAtNew {
		add("StartAt %q: want %q or %q", c.StartAt, StartAtFirst, StartAtNew)
	}
	if c.Concurrency < 0 || c.Concurrency > 10_000 {
		add("Concurrency %d: want 1 to 10000 (0: default %d)", c.Concurrency, DefaultConcurrency)
	}
	if c.MaxAttempts < 0 {
		add("MaxAttempts %d: want >= 1 (0: default %d)", c.MaxAttempts, DefaultMaxAttempts)
	}
	if c.AckWait != 0 && c.AckWait < time.Second {
		add("AckWait %s: want >= 1s (0: default %s)", c.AckWait, DefaultAckWait)
	}
	if c.RetryDelay < 0 {
		add("RetryDelay %s: want > 0 (0: default %s)", c.RetryDelay, DefaultRetryDelay)
	}
	if c.MaxRetryDelay < 0 || (c.MaxRetryDelay > 0 && c.MaxRetryDelay < c.RetryDelay) {
		add("MaxRetryDelay %s: want >= RetryDelay (0: default %s)", c.MaxRetryDelay, DefaultMaxRetryDelay)
	}
	if c.ShutdownTimeout < 0 {
		add("ShutdownTimeout %s: want > 0 (0: default %s)", c.ShutdownTimeout, DefaultShutdownTimeout)
	}
	if c.MissedCheckInterval < 0 {
		add("MissedCheckInterval %s: want > 0 (0: default %s)", c.MissedCheckInterval, DefaultMissedCheckInterval)
	}
	if len(errs) > 0 {
		return fmt.Errorf("consumer: invalid config: %w", errors.Join(errs...))
	}
	return nil
}
