package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/icpservice/icp/bus"
	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/platform/telemetry"
)

// verdict is what becomes of one message once its batch is handled.
type verdict int

const (
	// pending: decoded, not yet projected.
	pending verdict = iota
	// ack: applied, or already applied, durably.
	ack
	// retry: nak with the backoff delay; delivered again later.
	retry
	// deadLetter: copied to the dead-letter subject with the reason, then
	// acked.
	deadLetter
)

// item is one message on its way through a batch.
//
//   - Applied, or already applied: acked, only after the read model reported
//     the write durable.
//   - Not an event the store holds (see verify): dead-lettered, whatever it
//     claims to be.
//   - A stored event of an unknown type or schema version (a newer release
//     wrote it): nak, retried later, never dead-lettered.
//   - Headers that no release can read, a source other than this service,
//     a stored payload no release can decode, an event that can never fold
//     onto its stream, or a view the read model refuses for good
//     (projections.ErrRefused): a copy goes to the dead-letter subject with
//     the reason, is counted, and the original is acked.
//   - Read model or event store unavailable, or a read model error not
//     known to last: nak, retried later with backoff, that message alone.
//
// Each message is one consumer span, a child of the request that recorded
// the event (the message's traceparent).
type item struct {
	d    delivery
	ctx  context.Context
	span trace.Span
	// rec is what the message's headers and body say until verify
	// found the event in the store; from then on it is the store's copy.
	rec     events.Recorded
	payload any
	// doc is the ICP's JSON of a create, as its view holds it (nil when
	// the view's document must be encoded).
	doc []byte
	// decodeErr is the error of decoding the payload (nil: payload is
	// set); it decides the verdict once verify found the event stored.
	decodeErr error
	// verified: the store holds this event, and rec is its copy.
	verified bool

	verdict verdict
	// reason is the dead-letter reason or the retried error.
	reason error
}

// inspect reads and decodes one message. Messages that cannot be used at
// all (headers missing or malformed, another source) leave with their
// verdict set; the others are pending until verify checked them against the
// event store.
func (p *Projector) inspect(ctx context.Context, m jetstream.Msg) *item {
	it := &item{d: newDelivery(m)}
	it.ctx, it.span = telemetry.StartMessageSpan(ctx, p.tracer, p.cfg.Durable, it.d.header)
	if it.d.malformed != "" {
		it.deadLetter(errors.New("malformed message: " + it.d.malformed))
		return it
	}
	rec, err := events.FromHeaders(it.d.header, m.Data())
	if err != nil {
		it.deadLetter(err)
		return it
	}
	if src := it.d.header(events.HeaderSource); src != events.CloudEventsSource {
		it.deadLetter(fmt.Errorf("%w: %s %q is not this service's %q", events.ErrCorrupt, events.HeaderSource, src, events.CloudEventsSource))
		return it
	}
	it.rec = rec
	// Decoded here, while the previous batch is written; verify keeps the
	// result when the store's copy is the same bytes and decides the
	// verdict.
	it.payload, it.doc, it.decodeErr = decode(rec)
	return it
}

// decode decodes rec's payload and checks that it names rec's ICP.
func decode(rec events.Recorded) (any, []byte, error) {
	payload, doc, err := events.DecodeRecordedDoc(rec)
	if err == nil {
		err = checkPayloadID(rec, payload)
	}
	if err != nil {
		return nil, nil, err
	}
	return payload, doc, nil
}

func (it *item) deadLetter(reason error) { it.verdict, it.reason = deadLetter, reason }

// judge sets the verdict from what project returned for the item.
func (p *Projector) judge(it *item, err error) {
	switch {
	case err == nil:
		it.verdict = ack
	case errors.Is(err, errPermanent):
		it.deadLetter(err)
	case errors.Is(err, errMissingInStore) && it.d.delivered >= uint64(p.cfg.MissingEventDeliveries):
		it.deadLetter(fmt.Errorf("%w (after %d deliveries)", err, it.d.delivered))
	default:
		it.verdict, it.reason = retry, err
	}
}

// settle acks, naks or dead-letters the message as its verdict says and ends
// its span.
func (p *Projector) settle(ctx context.Context, it *item) {
	var spanErr error
	switch it.verdict {
	case ack:
		p.ackOrLog(it.d.msg.Ack())
	case deadLetter:
		if err := p.deadLetter(ctx, it); err != nil {
			spanErr = err
			p.stats.retried.Add(1)
			p.log.Warn("projector: dead-letter publish failed, retried later", "subject", p.dlq.Subject(),
				"reason", it.reason, "stream_seq", it.d.streamSeq, "err", err)
			p.ackOrLog(it.d.msg.NakWithDelay(p.backoff.WaitTime(it.d.delivered)))
			break
		}
		p.ackOrLog(it.d.msg.Ack())
	default: // retry, or pending left by an error of the batch
		spanErr = it.reason
		if spanErr == nil {
			spanErr = errors.New("not handled")
		}
		p.stats.retried.Add(1)
		p.log.Warn("projector: event retried later", "event", it.rec.ID, "stream", it.rec.StreamID,
			"version", it.rec.Version, "delivery", it.d.delivered, "err", spanErr)
		p.ackOrLog(it.d.msg.NakWithDelay(p.backoff.WaitTime(it.d.delivered)))
	}
	telemetry.EndSpan(it.span, spanErr)
}

// ackOrLog logs a failed ack or nak: the message then comes back after
// AckWait, and the version guard makes its second handling an ack.
func (p *Projector) ackOrLog(err error) {
	if err != nil && !p.stopping.Load() {
		p.log.Warn("projector: ack or nak not sent; the message is delivered again after AckWait", "err", err)
	}
}

// checkPayloadID refuses a payload that names another ICP than the stream it
// was recorded in: folding it would write one ICP's data under another's id.
func checkPayloadID(rec events.Recorded, payload any) error {
	if id := domain.ICPIDOf(payload); id != rec.ICPID() {
		return fmt.Errorf("%w: payload id %q in stream %s", events.ErrCorrupt, id, rec.StreamID)
	}
	return nil
}

// deadLetter copies the message, with the reason, to the dead-letter subject
// (bus.DeadLetterer: one header schema for every writer). When it fails the
// original is redelivered and dead-lettered again: the copy's message id is
// derived from the original's stream sequence, so JetStream drops a
// duplicate copy.
func (p *Projector) deadLetter(ctx context.Context, it *item) error {
	reason := bus.HeaderSafe(it.reason.Error())
	telemetry.DeadLettered(it.ctx, reason)
	err := p.dlq.Publish(ctx, bus.Original{
		Header: it.d.msg.Headers(), Data: it.d.msg.Data(), Subject: it.d.msg.Subject(),
		Stream: events.BusStream, StreamSeq: it.d.streamSeq, Deliveries: it.d.delivered,
		MsgID: it.d.header(nats.MsgIdHdr),
	}, reason)
	if err != nil {
		return err
	}
	p.stats.deadLettered.Add(1)
	p.log.Error("projector: message dead-lettered", slog.String("subject", p.dlq.Subject()),
		slog.String("reason", reason), slog.Uint64("stream_seq", it.d.streamSeq),
		slog.String("event", it.d.header(events.HeaderID)))
	return nil
}
