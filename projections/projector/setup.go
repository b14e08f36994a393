package projector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/events"
)

// ensureDLQStream creates the dead-letter stream, bounded by
// events.DLQMaxAge and events.DLQMaxBytes, if it does not exist. It leaves an
// existing stream's configuration alone (whoever created it, the relay's
// setup or an operator, owns it), except that one with no limits at all, as
// earlier releases created it, is given these.
func ensureDLQStream(ctx context.Context, js jetstream.JetStream) error {
	s, err := js.Stream(ctx, events.DLQStream)
	if err == nil {
		cfg := s.CachedInfo().Config
		if cfg.MaxAge > 0 || cfg.MaxBytes > 0 {
			return nil
		}
		cfg.MaxAge, cfg.MaxBytes = events.DLQMaxAge, events.DLQMaxBytes
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("projector: bound dead-letter stream: %w", err)
		}
		return nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("projector: dead-letter stream: %w", err)
	}
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        events.DLQStream,
		Description: "ICP messages that can never be applied, with the reason in " + events.HeaderDLQReason,
		Subjects:    []string{events.DLQSubjects},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Duplicates:  events.DLQDuplicates,
		MaxAge:      events.DLQMaxAge,
		MaxBytes:    events.DLQMaxBytes,
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("projector: create dead-letter stream: %w", err)
	}
	return nil
}

// waitForBusStream waits until the event stream exists. The projector does
// not create it: its configuration belongs to the relay that fills it.
func (p *Projector) waitForBusStream(ctx context.Context, js jetstream.JetStream) error {
	logged := false
	for {
		_, err := js.Stream(ctx, events.BusStream)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("projector: stream %s: %w", events.BusStream, err)
		}
		if !logged {
			p.log.Info("projector: waiting for the bus stream", "stream", events.BusStream)
			logged = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// ensureConsumer creates or updates the durable pull consumer the replicas
// share and returns it. Its settings are deterministic, so replicas starting
// together create the same consumer.
//
// Releases before the batching projector used a push consumer of the same
// name, which cannot be turned into a pull consumer in place. Such a consumer
// is replaced by a pull consumer that starts after its ack floor: every
// message it had not acknowledged is delivered again, and the read model's
// version guard turns what was in fact applied into an ack.
func (p *Projector) ensureConsumer(ctx context.Context, js jetstream.JetStream) (jetstream.Consumer, error) {
	cfg := jetstream.ConsumerConfig{
		Durable:       p.cfg.Durable,
		Description:   "ICP read model projector",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       p.cfg.AckWait,
		// Never give up on a message: what can never succeed is
		// dead-lettered by the projector, everything else is retried.
		MaxDeliver:     -1,
		MaxAckPending:  p.cfg.MaxAckPending,
		MaxWaiting:     512,
		FilterSubjects: []string{events.BusSubjects},
		ReplayPolicy:   jetstream.ReplayInstantPolicy,
	}
	c, err := js.Consumer(ctx, events.BusStream, p.cfg.Durable)
	switch {
	case err == nil:
		// The start position of an existing consumer cannot change:
		// keep whatever it was created with.
		info := c.CachedInfo()
		cfg.DeliverPolicy, cfg.OptStartSeq = info.Config.DeliverPolicy, info.Config.OptStartSeq
	case errors.Is(err, jetstream.ErrNotPullConsumer):
		push, err := js.PushConsumer(ctx, events.BusStream, p.cfg.Durable)
		if err != nil {
			return nil, fmt.Errorf("projector: consumer %s: %w", p.cfg.Durable, err)
		}
		floor := push.CachedInfo().AckFloor.Stream
		if floor > 0 {
			cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
			cfg.OptStartSeq = floor + 1
		}
		p.log.Info("projector: replacing the push consumer of an earlier release", "ack_floor", floor)
		if err := js.DeleteConsumer(ctx, events.BusStream, p.cfg.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("projector: delete push consumer %s: %w", p.cfg.Durable, err)
		}
	case errors.Is(err, jetstream.ErrConsumerNotFound):
	default:
		return nil, fmt.Errorf("projector: consumer %s: %w", p.cfg.Durable, err)
	}
	return p.createConsumer(ctx, js, cfg)
}

func (p *Projector) createConsumer(ctx context.Context, js jetstream.JetStream, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	c, err := js.CreateOrUpdateConsumer(ctx, events.BusStream, cfg)
	if err != nil {
		return nil, fmt.Errorf("projector: create consumer %s: %w", p.cfg.Durable, err)
	}
	return c, nil
}
