package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/icpservice/icp/events"
)

// The JetStream management calls below use nats.go directly: watermill-nats
// can only create consumers and streams named after a topic, without the
// settings the contract needs (explicit ack, MaxAckPending, MaxDeliver,
// deliver policy).

// ensureDLQStream creates the dead-letter stream, bounded by
// events.DLQMaxAge and events.DLQMaxBytes, when it does not exist. An
// existing stream keeps its configuration (the service's setup owns it),
// except that one with no limits at all, as earlier releases created it,
// is given these.
func ensureDLQStream(ctx context.Context, js nats.JetStreamContext) error {
	info, err := js.StreamInfo(events.DLQStream, nats.Context(ctx))
	if err == nil {
		if info.Config.MaxAge > 0 || info.Config.MaxBytes > 0 {
			return nil
		}
		cfg := info.Config
		cfg.MaxAge, cfg.MaxBytes = events.DLQMaxAge, events.DLQMaxBytes
		if _, err := js.UpdateStream(&cfg, nats.Context(ctx)); err != nil {
			return fmt.Errorf("consumer: bound dead-letter stream %s: %w", events.DLQStream, err)
		}
		return nil
	}
	if !errors.Is(err, nats.ErrStreamNotFound) {
		return fmt.Errorf("consumer: dead-letter stream %s: %w", events.DLQStream, err)
	}
	_, err = js.AddStream(&nats.StreamConfig{
		Name:        events.DLQStream,
		Description: "ICP messages that a consumer could never handle, with the reason in " + events.HeaderDLQReason,
		Subjects:    []string{events.DLQSubjects},
		Storage:     nats.FileStorage,
		Retention:   nats.LimitsPolicy,
		Discard:     nats.DiscardOld,
		Duplicates:  events.DLQDuplicates,
		MaxAge:      events.DLQMaxAge,
		MaxBytes:    events.DLQMaxBytes,
	}, nats.Context(ctx))
	if err != nil && !errors.Is(err, nats.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("consumer: create dead-letter stream %s: %w", events.DLQStream, err)
	}
	return nil
}

// source is the stream a durable reads, and where JetStream pushes it.
type source struct {
	stream   string // ICP_EVENTS or ICP_REPLAY
	subjects string // the stream's subject filter
	// deliver is the push consumer's deliver subject: one per durable and
	// stream, so that a live and a replay durable of the same name each get
	// only their own stream's messages.
	deliver string
}

func sourceOf(cfg Config) source {
	if cfg.Replay {
		return source{stream: ReplayStream, subjects: ReplaySubjects, deliver: "icp.deliver.replay." + cfg.Durable}
	}
	return source{stream: events.BusStream, subjects: events.BusSubjects, deliver: "icp.deliver." + cfg.Durable}
}

// waitForBusStream waits until the durable's stream exists; the consumer
// never creates it (the service's relay owns ICP_EVENTS, icpctl republish
// ICP_REPLAY). It returns ctx.Err() when ctx ends first.
func (c *Consumer) waitForBusStream(ctx context.Context, js nats.JetStreamContext) error {
	logged := false
	for {
		_, err := js.StreamInfo(c.src.stream, nats.Context(ctx))
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !errors.Is(err, nats.ErrStreamNotFound) {
			return fmt.Errorf("consumer: stream %s: %w", c.src.stream, err)
		}
		if !logged {
			c.log.Info("consumer: waiting for the event stream", "stream", c.src.stream)
			logged = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// ensureConsumer creates the durable push consumer, or updates an existing
// one to this configuration. An existing durable keeps its start point (a
// deliver policy cannot change once created). Processes sharing Durable
// build the same configuration, so starting them together is safe.
func (c *Consumer) ensureConsumer(ctx context.Context, js nats.JetStreamContext) error {
	cfg := &nats.ConsumerConfig{
		Durable:        c.cfg.Durable,
		Description:    "ICP event worker " + c.cfg.Durable,
		DeliverSubject: c.src.deliver,
		DeliverGroup:   c.cfg.Durable,
		DeliverPolicy:  nats.DeliverAllPolicy,
		AckPolicy:      nats.AckExplicitPolicy,
		AckWait:        c.cfg.AckWait,
		// Never give up on a message in the server: what fails too often is
		// dead-lettered by the handler, with its reason; anything else
		// (an unknown newer version) must not be dropped.
		MaxDeliver: -1,
		// 1 (the default Concurrency) keeps a single message outstanding
		// across every process of the durable: strict bus order.
		MaxAckPending: c.cfg.Concurrency,
		FilterSubject: c.src.subjects,
		ReplayPolicy:  nats.ReplayInstantPolicy,
	}
	if c.cfg.StartAt == StartAtNew {
		cfg.DeliverPolicy = nats.DeliverNewPolicy
	}
	info, err := js.ConsumerInfo(c.src.stream, c.cfg.Durable, nats.Context(ctx))
	switch {
	case errors.Is(err, nats.ErrConsumerNotFound):
		// Where the new durable starts, read before it exists: what the
		// stream held before was never meant for it (see watchMissed).
		si, err := js.StreamInfo(c.src.stream, nats.Context(ctx))
		if err != nil {
			return fmt.Errorf("consumer: stream %s: %w", c.src.stream, err)
		}
		_, err = js.AddConsumer(c.src.stream, cfg, nats.Context(ctx))
		if err == nil {
			c.startSeq = si.State.LastSeq
			if cfg.DeliverPolicy == nats.DeliverAllPolicy && si.State.FirstSeq > 0 {
				c.startSeq = si.State.FirstSeq - 1
			}
			c.created = true
			return nil
		}
		var apiErr *nats.APIError
		if !errors.Is(err, nats.ErrConsumerNameAlreadyInUse) && (!errors.As(err, &apiErr) || apiErr.ErrorCode != nats.JSErrCodeConsumerAlreadyExists) {
			return fmt.Errorf("consumer: create durable %s: %w", c.cfg.Durable, err)
		}
		// Another process created it meanwhile: update it below.
		if info, err = js.ConsumerInfo(c.src.stream, c.cfg.Durable, nats.Context(ctx)); err != nil {
			return fmt.Errorf("consumer: durable %s: %w", c.cfg.Durable, err)
		}
	case err != nil:
		return fmt.Errorf("consumer: durable %s: %w", c.cfg.Durable, err)
	}
	if info.Config.DeliverSubject == "" {
		return fmt.Errorf("consumer: durable %s exists as a pull consumer; choose another Durable or delete it", c.cfg.Durable)
	}
	cfg.DeliverPolicy = info.Config.DeliverPolicy
	cfg.OptStartSeq = info.Config.OptStartSeq
	cfg.OptStartTime = info.Config.OptStartTime
	if _, err := js.UpdateConsumer(c.src.stream, cfg, nats.Context(ctx)); err != nil {
		return fmt.Errorf("consumer: update durable %s: %w", c.cfg.Durable, err)
	}
	return nil
}
