package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"

	"github.com/icpservice/icp/bus"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/platform/telemetry"
)

// Headers a dead-letter copy carries besides the original's headers and
// events.HeaderDLQReason: the dead-letter schema the projector shares, kept
// here under their earlier names.
const (
	// HeaderDLQConsumer names the durable that dead-lettered the message.
	HeaderDLQConsumer = events.HeaderDLQConsumer
	// HeaderDLQDeliveries is how many times the original was delivered.
	HeaderDLQDeliveries = events.HeaderDLQDeliveries
	// HeaderDLQStream is the stream the original was read from: ICP_EVENTS,
	// or ICP_REPLAY for a replay durable.
	HeaderDLQStream = events.HeaderDLQStream
	// HeaderDLQStreamSeq is the original's sequence in that stream.
	HeaderDLQStreamSeq = events.HeaderDLQStreamSeq
	// HeaderDLQSubject is the original's subject.
	HeaderDLQSubject = events.HeaderDLQSubject
)

// handle is the router's handler for one bus message. Returning nil acks the
// message; returning an error naks it with the backoff delay of its delivery
// count. The rules are in the package documentation.
//
// Each message is one consumer span, a child of the request that recorded
// the event (the message's traceparent); the handler's ctx carries it.
func (c *Consumer) handle(msg *message.Message) (err error) {
	ctx, span := telemetry.StartMessageSpan(msg.Context(), c.tracer, c.cfg.Durable, msg.Metadata.Get)
	defer func() { telemetry.EndSpan(span, err) }()
	if reason := msg.Metadata.Get(mdMalformed); reason != "" {
		return c.deadLetter(ctx, msg, "malformed message: "+reason)
	}
	rec, err := events.FromHeaders(msg.Metadata.Get, msg.Payload)
	if err != nil {
		return c.deadLetter(ctx, msg, err.Error())
	}
	if src := msg.Metadata.Get(events.HeaderSource); src != events.CloudEventsSource {
		return c.deadLetter(ctx, msg, fmt.Sprintf("%v: %s %q is not the ICP service's %q", events.ErrCorrupt, events.HeaderSource, src, events.CloudEventsSource))
	}
	gen := msg.Metadata.Get(events.HeaderGeneration)
	if err := events.CheckGeneration(gen); err != nil {
		return c.deadLetter(ctx, msg, err.Error())
	}
	h := c.handlers[rec.Type]
	if h == nil {
		c.stats.skipped.Add(1)
		return nil
	}
	payload, err := c.dec.decode(rec)
	if errors.Is(err, events.ErrUnknownVersion) {
		c.stats.deferred.Add(1)
		c.log.Warn("consumer: event of a schema version this code does not know; delivered again later (upgrade this worker)",
			"event", rec.ID, "type", rec.Type, "schema_version", rec.SchemaVersion, "delivery", deliveries(msg), "err", err)
		return err
	}
	if err != nil {
		return c.deadLetter(ctx, msg, err.Error())
	}
	md, err := events.DecodeMetadata(rec.Metadata)
	if err != nil {
		return c.deadLetter(ctx, msg, fmt.Sprintf("%v: %s is not a JSON object: %v", events.ErrCorrupt, events.HeaderMetadata, err))
	}
	env := Envelope{
		ID: rec.ID, ICPID: rec.ICPID(), Type: rec.Type, SchemaVersion: rec.SchemaVersion,
		Version: rec.Version, Position: rec.Position, Time: rec.Time, Metadata: md,
		Delivery: deliveries(msg), Stream: c.src.stream, StreamSequence: streamSeq(msg),
		Generation: gen,
	}
	err = c.call(ctx, h, env, payload)
	if err == nil {
		c.stats.handled.Add(1)
		return nil
	}
	if env.Delivery >= c.cfg.MaxAttempts {
		return c.deadLetter(ctx, msg, fmt.Sprintf("handler failed on delivery %d of at most %d: %v", env.Delivery, c.cfg.MaxAttempts, err))
	}
	c.stats.retried.Add(1)
	c.log.Warn("consumer: handler failed; delivered again later", "event", env.ID, "icp", env.ICPID,
		"version", env.Version, "delivery", env.Delivery, "max_attempts", c.cfg.MaxAttempts, "err", err)
	return err
}

// call runs the handler with its deadline and turns a panic into an error.
func (c *Consumer) call(parent context.Context, h dispatch, env Envelope, payload any) (err error) {
	ctx, cancel := context.WithTimeout(parent, c.cfg.AckWait*4/5)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return h(ctx, env, payload)
}

// deadLetter copies the message, with the reason, to icp.dlq.<Durable>
// (bus.DeadLetterer: one header schema for every writer) and returns nil so
// the original is acknowledged. If the publish fails it returns an error:
// the original is delivered again and dead-lettered again (JetStream drops
// the duplicate copy by its id).
func (c *Consumer) deadLetter(ctx context.Context, msg *message.Message, reason string) error {
	telemetry.DeadLettered(ctx, bus.HeaderSafe(reason))
	h := make(nats.Header, len(msg.Metadata))
	for k, v := range msg.Metadata {
		if !strings.HasPrefix(k, internalPrefix) {
			h[k] = []string{v}
		}
	}
	// Not cancelled with the message: the copy must be stored before the
	// original is acknowledged, also while shutting down.
	err := c.dlq.Publish(context.WithoutCancel(ctx), bus.Original{
		Header: h, Data: msg.Payload, Subject: msg.Metadata.Get(mdSubject),
		Stream: c.src.stream, StreamSeq: streamSeq(msg), Deliveries: uint64(deliveries(msg)),
	}, reason)
	if err != nil {
		c.stats.retried.Add(1)
		c.log.Error("consumer: dead-letter publish failed; delivered again later", "reason", reason, "err", err)
		return err
	}
	c.stats.deadLettered.Add(1)
	c.log.Error("consumer: message dead-lettered", slog.String("subject", c.dlq.Subject()),
		slog.String("reason", reason), slog.Uint64("stream_seq", streamSeq(msg)),
		slog.String("event", msg.Metadata.Get(events.HeaderID)))
	return nil
}
