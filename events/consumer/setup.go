package consumer

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/bus"
	"github.com/icpservice/icp/events"
)

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

// setUp waits for the durable's stream (the consumer never creates it: the
// service's relay owns ICP_EVENTS, icpctl republish ICP_REPLAY), makes sure
// the dead-letter stream exists, and creates or updates the durable (see
// bus.EnsureWorkerDurable). It reports false, nil when ctx ended while
// waiting for the stream.
//
// These are JetStream requests on the consuming connection: they also open
// its response subscription, which a drain keeps open, so that the
// acknowledgements and dead-letter publishes made while draining still get
// their answers. The dead letters go through the same connection.
func (c *Consumer) setUp(ctx context.Context, nc *nats.Conn) (bool, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return false, fmt.Errorf("consumer: %w", err)
	}
	err = bus.WaitForStream(ctx, js, c.src.stream, func() {
		c.log.Info("consumer: waiting for the event stream", "stream", c.src.stream)
	})
	if err != nil {
		if ctx.Err() != nil {
			return false, nil
		}
		return false, fmt.Errorf("consumer: %w", err)
	}
	if err := bus.EnsureDLQStream(ctx, js); err != nil {
		return false, fmt.Errorf("consumer: %w", err)
	}
	created, err := bus.EnsureWorkerDurable(ctx, js, bus.WorkerDurable{
		Name: c.cfg.Durable, Stream: c.src.stream, Subjects: c.src.subjects, Deliver: c.src.deliver,
		AckWait: c.cfg.AckWait, MaxAckPending: c.cfg.Concurrency, StartNew: c.cfg.StartAt == StartAtNew,
	})
	if err != nil {
		return false, fmt.Errorf("consumer: %w", err)
	}
	// A new durable starts its missed-events record where it starts: what
	// the stream held before was never meant for it (see watchMissed).
	c.created, c.startSeq = created.New, created.StartSeq
	c.dlq = bus.NewDeadLetterer(js, c.cfg.Durable, events.DLQByConsumer)
	return true, nil
}
