package projector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/icpservice/icp/events"
)

// ensureDLQStream creates the dead-letter stream if it does not exist. It
// leaves an existing stream's configuration alone: whoever created it (the
// relay's setup, an operator) owns it.
func ensureDLQStream(js nats.JetStreamContext) error {
	_, err := js.StreamInfo(events.DLQStream)
	if err == nil {
		return nil
	}
	if !errors.Is(err, nats.ErrStreamNotFound) {
		return fmt.Errorf("projector: dead-letter stream: %w", err)
	}
	_, err = js.AddStream(&nats.StreamConfig{
		Name:        events.DLQStream,
		Description: "ICP messages that can never be applied, with the reason in " + events.HeaderDLQReason,
		Subjects:    []string{events.DLQSubjects},
		Storage:     nats.FileStorage,
		Retention:   nats.LimitsPolicy,
		Duplicates:  2 * time.Minute,
	})
	if err != nil && !errors.Is(err, nats.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("projector: create dead-letter stream: %w", err)
	}
	return nil
}

// waitForBusStream waits until the event stream exists. The projector does
// not create it: its configuration belongs to the relay that fills it.
func (p *Projector) waitForBusStream(ctx context.Context, js nats.JetStreamContext) error {
	logged := false
	for {
		_, err := js.StreamInfo(events.BusStream, nats.Context(ctx))
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !errors.Is(err, nats.ErrStreamNotFound) {
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

// ensureConsumer creates or updates the durable push consumer the replicas
// share. Its settings are deterministic, so replicas starting together
// create the same consumer.
func (p *Projector) ensureConsumer(js nats.JetStreamContext) error {
	cfg := &nats.ConsumerConfig{
		Durable:        p.cfg.Durable,
		Description:    "ICP read model projector",
		DeliverSubject: "icp.deliver." + p.cfg.Durable,
		DeliverGroup:   p.cfg.Durable,
		DeliverPolicy:  nats.DeliverAllPolicy,
		AckPolicy:      nats.AckExplicitPolicy,
		AckWait:        p.cfg.AckWait,
		// Never give up on a message: what can never succeed is
		// dead-lettered by the handler, everything else is retried.
		MaxDeliver:    -1,
		MaxAckPending: p.cfg.MaxAckPending,
		FilterSubject: events.BusSubjects,
		ReplayPolicy:  nats.ReplayInstantPolicy,
	}
	_, err := js.ConsumerInfo(events.BusStream, p.cfg.Durable)
	switch {
	case errors.Is(err, nats.ErrConsumerNotFound):
		_, err = js.AddConsumer(events.BusStream, cfg)
		if err == nil {
			return nil
		}
		// Another replica created it meanwhile: update it below.
		if !errors.Is(err, nats.ErrConsumerNameAlreadyInUse) {
			var apiErr *nats.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode != nats.JSErrCodeConsumerAlreadyExists {
				return fmt.Errorf("projector: create consumer %s: %w", p.cfg.Durable, err)
			}
		}
	case err != nil:
		return fmt.Errorf("projector: consumer %s: %w", p.cfg.Durable, err)
	}
	if _, err := js.UpdateConsumer(events.BusStream, cfg); err != nil {
		return fmt.Errorf("projector: update consumer %s: %w", p.cfg.Durable, err)
	}
	return nil
}
