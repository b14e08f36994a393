package projector

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/bus"
	"github.com/icpservice/icp/events"
)

// setUp readies the bus on the publishing connection: the dead-letter stream
// (created when missing), the bus stream (waited for: its configuration
// belongs to the relay that fills it), and the durable pull consumer the
// replicas share (bus.EnsureProjectorDurable). It returns nil, nil when ctx
// ended first.
func (p *Projector) setUp(ctx context.Context, pubConn *nats.Conn) (jetstream.Consumer, error) {
	var err error
	if p.pubJS, err = jetstream.New(pubConn); err != nil {
		return nil, fmt.Errorf("projector: %w", err)
	}
	p.dlq = bus.NewDeadLetterer(p.pubJS, p.cfg.Durable, events.DLQByProjector)
	if err := bus.EnsureDLQStream(ctx, p.pubJS); err != nil {
		return nil, p.setUpErr(ctx, err)
	}
	err = bus.WaitForStream(ctx, p.pubJS, events.BusStream, func() {
		p.log.Info("projector: waiting for the bus stream", "stream", events.BusStream)
	})
	if err != nil {
		return nil, p.setUpErr(ctx, err)
	}
	cons, err := bus.EnsureProjectorDurable(ctx, p.pubJS, bus.ProjectorDurable{
		Name: p.cfg.Durable, AckWait: p.cfg.AckWait, MaxAckPending: p.cfg.MaxAckPending,
	}, func(floor uint64) {
		p.log.Info("projector: replacing the push consumer of an earlier release", "ack_floor", floor)
	})
	if err != nil {
		return nil, p.setUpErr(ctx, err)
	}
	return cons, nil
}

// setUpErr is nil when ctx ended (Run then returns nil), else err.
func (p *Projector) setUpErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("projector: %w", err)
}

// feed carries what the pull subscription delivers to the batch loop.
type feed struct {
	in chan jetstream.Msg
	// stop is closed to have the batch loop finish what it was given and
	// return; done is closed when it returned.
	stop, done chan struct{}
	// gone gets the error of a consumer deleted while consuming.
	gone chan error
	cc   jetstream.ConsumeContext
}

// subscribe starts pulling the durable on the consuming connection into a
// new feed. It returns nil, nil when ctx ended first.
//
// The pull subscription hands messages to one batching loop: whatever
// arrived while the previous batch was being written is the next batch, so
// batches grow with the load and each costs one read model commit.
// watermill's router hands a handler one message at a time, which is why the
// projector consumes with nats.go directly.
func (p *Projector) subscribe(ctx context.Context, subConn *nats.Conn, name string) (*feed, error) {
	subJS, err := jetstream.New(subConn)
	if err != nil {
		return nil, fmt.Errorf("projector: %w", err)
	}
	cons, err := subJS.Consumer(ctx, events.BusStream, name)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil
		}
		return nil, fmt.Errorf("projector: consumer %s: %w", p.cfg.Durable, err)
	}
	f := &feed{in: make(chan jetstream.Msg, p.cfg.Concurrency), stop: make(chan struct{}),
		done: make(chan struct{}), gone: make(chan error, 1)}
	f.cc, err = cons.Consume(func(m jetstream.Msg) {
		select {
		case f.in <- m:
		case <-f.done:
			// Shutdown gave up on this message: it is delivered
			// again after AckWait.
		}
	},
		jetstream.PullMaxMessages(p.cfg.Concurrency),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				select {
				case f.gone <- err:
				default:
				}
				return
			}
			if !p.stopping.Load() {
				p.log.Warn("projector: consuming", "err", err)
			}
		}))
	if err != nil {
		return nil, fmt.Errorf("projector: consume %s: %w", p.cfg.Durable, err)
	}
	return f, nil
}
