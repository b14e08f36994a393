package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/internal/telemetry"
)

// handle is the router's handler for one bus message. Returning nil acks the
// message; returning an error naks it with the backoff delay.
//
//   - Applied, or already applied: nil, only after the read model reported
//     the write durable.
//   - Unknown event type or schema version (a newer release wrote it): nak,
//     retried later, never dead-lettered.
//   - Headers or payload that no release can read, or an event that can never
//     fold onto its stream: a copy goes to the dead-letter subject with the
//     reason, is counted, and the original is acked.
//   - Read model or event store unavailable: nak, retried later.
//
// Each message is one consumer span, a child of the request that recorded
// the event (the message's traceparent).
func (p *Projector) handle(msg *message.Message) (err error) {
	ctx, span := telemetry.StartMessageSpan(msg.Context(), p.tracer, p.cfg.Durable, msg.Metadata.Get)
	defer func() { telemetry.EndSpan(span, err) }()
	ctx, cancel := context.WithTimeout(ctx, p.cfg.AckWait)
	defer cancel()

	if reason := msg.Metadata.Get(mdMalformed); reason != "" {
		return p.deadLetter(ctx, msg, "malformed message: "+reason)
	}
	rec, err := events.FromHeaders(msg.Metadata.Get, msg.Payload)
	if err != nil {
		return p.deadLetter(ctx, msg, err.Error())
	}
	payload, err := events.DecodeRecorded(rec)
	if err == nil {
		err = checkPayloadID(rec, payload)
	}
	if err != nil {
		if errors.Is(err, events.ErrUnknownVersion) {
			return p.retry(msg, rec, err)
		}
		return p.deadLetter(ctx, msg, err.Error())
	}
	err = p.project(ctx, rec, payload)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errPermanent):
		return p.deadLetter(ctx, msg, err.Error())
	case errors.Is(err, errMissingInStore) && deliveries(msg) >= p.cfg.MissingEventDeliveries:
		return p.deadLetter(ctx, msg, fmt.Sprintf("%v (after %d deliveries)", err, deliveries(msg)))
	default:
		return p.retry(msg, rec, err)
	}
}

// checkPayloadID refuses a payload that names another ICP than the stream it
// was recorded in: folding it would write one ICP's data under another's id.
func checkPayloadID(rec events.Recorded, payload any) error {
	var id string
	switch pl := payload.(type) {
	case events.ICPCreatedV1:
		id = pl.ICP.ID
	case events.ICPUpdatedV1:
		id = pl.ID
	case events.ICPDeletedV1:
		id = pl.ID
	}
	if id != rec.ICPID() {
		return fmt.Errorf("%w: payload id %q in stream %s", events.ErrCorrupt, id, rec.StreamID)
	}
	return nil
}

func (p *Projector) retry(msg *message.Message, rec events.Recorded, err error) error {
	p.stats.retried.Add(1)
	p.log.Warn("projector: event retried later", "event", rec.ID, "stream", rec.StreamID,
		"version", rec.Version, "delivery", deliveries(msg), "err", err)
	return err
}

// deadLetter publishes the message's body and headers, plus the reason, to
// the dead-letter subject and returns nil so the original is acked. If the
// publish fails it returns an error: the original is redelivered and dead-
// lettered again (the copy's message id is derived from the original's
// stream sequence, so JetStream drops a duplicate copy).
func (p *Projector) deadLetter(ctx context.Context, msg *message.Message, reason string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dl := message.NewMessage(p.deadLetterID(msg), msg.Payload)
	for k, v := range msg.Metadata {
		if !strings.HasPrefix(k, internalPrefix) {
			dl.Metadata.Set(k, v)
		}
	}
	dl.Metadata.Set(events.HeaderDLQReason, headerSafe(reason))
	telemetry.DeadLettered(ctx, headerSafe(reason))
	if err := p.dlq.Publish(p.dlqSubject, dl); err != nil {
		p.stats.retried.Add(1)
		p.log.Warn("projector: dead-letter publish failed, retried later", "subject", p.dlqSubject,
			"reason", reason, "stream_seq", msg.Metadata.Get(mdStreamSeq), "err", err)
		return fmt.Errorf("dead-letter publish: %w", err)
	}
	p.stats.deadLettered.Add(1)
	p.log.Error("projector: message dead-lettered", slog.String("subject", p.dlqSubject),
		slog.String("reason", reason), slog.String("stream_seq", msg.Metadata.Get(mdStreamSeq)),
		slog.String("event", msg.Metadata.Get(events.HeaderID)))
	return nil
}

func (p *Projector) deadLetterID(msg *message.Message) string {
	if seq := msg.Metadata.Get(mdStreamSeq); seq != "" {
		return p.cfg.Durable + "-" + events.BusStream + "-" + seq
	}
	if msg.UUID != "" {
		return p.cfg.Durable + "-" + msg.UUID
	}
	return p.cfg.Durable + "-" + uuid.NewString()
}

// headerSafe makes s fit a NATS header value: one line, bounded length.
func headerSafe(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
	const maxLen = 1024
	if len(s) > maxLen {
		s = strings.ToValidUTF8(s[:maxLen], "")
	}
	return s
}
