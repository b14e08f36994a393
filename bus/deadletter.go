package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/events"
)

// dlqHeaderPrefix starts every dead-letter header (events.HeaderDLQ*).
const dlqHeaderPrefix = "icp-dlq-"

// Original is the message a consumer gives up on, as its dead letter
// records it.
type Original struct {
	// Header and Data are the original's headers and body. JetStream's
	// Nats-* headers and any icp-dlq-* header (a forger's) are not copied.
	Header nats.Header
	Data   []byte
	// Subject, Stream and StreamSeq say where it was read (StreamSeq 0:
	// unknown); Deliveries how often it was delivered.
	Subject    string
	Stream     string
	StreamSeq  uint64
	Deliveries uint64
	// MsgID is the original's Nats-Msg-Id, when the consumer kept it: the
	// dead letter's id when the stream sequence is unknown.
	MsgID string
}

// DeadLetterer copies the messages one durable gives up on to ICP_DLQ,
// subject icp.dlq.<durable>, with one header schema for every writer
// (events.HeaderDLQ*; events/CONSUMERS.md, "Dead letters"): the original's
// body and headers plus the reason, the kind of writer, the durable, the
// delivery count, and the original's stream, sequence and subject.
type DeadLetterer struct {
	js      jetstream.JetStream
	durable string
	by      string
	subject string
}

// NewDeadLetterer returns the dead-letterer of durable, a writer of kind by
// (events.DLQByProjector or events.DLQByConsumer: it says how icpctl dlq
// redrive puts the dead letter back). Publishing goes through js: for a
// consumer that drains its connection on shutdown, js must be on that
// connection, whose response subscription the drain keeps open.
func NewDeadLetterer(js jetstream.JetStream, durable, by string) *DeadLetterer {
	return &DeadLetterer{js: js, durable: durable, by: by, subject: events.DLQSubject(durable)}
}

// Subject is the durable's dead-letter subject.
func (d *DeadLetterer) Subject() string { return d.subject }

// Publish stores the dead letter of o with reason (made HeaderSafe) and
// returns once JetStream confirmed it; only then may the original be
// acknowledged. Its Nats-Msg-Id is <durable>-<stream>-<sequence>, the same
// for every copy of one message, so a message dead-lettered again (the
// process died before the original's ack) is stored once. An error means the
// dead letter may not be stored: hand the original back to be delivered and
// dead-lettered again.
func (d *DeadLetterer) Publish(ctx context.Context, o Original, reason string) error {
	m := nats.NewMsg(d.subject)
	for k, vs := range o.Header {
		// JetStream control headers (Nats-Msg-Id,
		// Nats-Expected-Last-Sequence, ...) speak of the original
		// publish; carried into the copy they would make JetStream
		// refuse it.
		if strings.HasPrefix(k, "Nats-") || strings.HasPrefix(k, dlqHeaderPrefix) {
			continue
		}
		m.Header[k] = vs
	}
	m.Header.Set(events.HeaderDLQReason, HeaderSafe(reason))
	m.Header.Set(events.HeaderDLQBy, d.by)
	m.Header.Set(events.HeaderDLQConsumer, d.durable)
	m.Header.Set(events.HeaderDLQDeliveries, strconv.FormatUint(o.Deliveries, 10))
	m.Header.Set(events.HeaderDLQStream, o.Stream)
	m.Header.Set(events.HeaderDLQStreamSeq, strconv.FormatUint(o.StreamSeq, 10))
	m.Header.Set(events.HeaderDLQSubject, o.Subject)
	m.Data = o.Data
	_, err := d.js.PublishMsg(ctx, m, jetstream.WithMsgID(d.id(o)), jetstream.WithExpectStream(events.DLQStream))
	if err != nil {
		return fmt.Errorf("dead-letter publish: %w", err)
	}
	return nil
}

func (d *DeadLetterer) id(o Original) string {
	switch {
	case o.StreamSeq != 0:
		return d.durable + "-" + o.Stream + "-" + strconv.FormatUint(o.StreamSeq, 10)
	case o.MsgID != "":
		return d.durable + "-" + o.MsgID
	default:
		return d.durable + "-" + uuid.NewString()
	}
}

// DeadLetter is one message of ICP_DLQ.
type DeadLetter struct {
	*jetstream.RawStreamMsg
}

// Get returns the first value of a header.
func (d DeadLetter) Get(key string) string { return d.Header.Get(key) }

// By is the kind of writer: events.HeaderDLQBy, or for dead letters of
// earlier releases, which had none, a worker when it named its durable and
// the projector otherwise.
func (d DeadLetter) By() string {
	if by := d.Get(events.HeaderDLQBy); by != "" {
		return by
	}
	if d.Get(events.HeaderDLQConsumer) != "" {
		return events.DLQByConsumer
	}
	return events.DLQByProjector
}

// EachDeadLetter calls fn with the dead letters of durable, oldest first, at
// most limit of them (0: all), and stops at fn's first error. Each is read
// on its own with a direct get by subject: an operator's tool, where one
// request per message is cheap next to holding a consumer on the stream. A
// bus without ICP_DLQ holds none.
func EachDeadLetter(ctx context.Context, js jetstream.JetStream, durable string, limit int, fn func(DeadLetter) error) error {
	s, err := js.Stream(ctx, events.DLQStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", events.DLQStream, err)
	}
	subject := events.DLQSubject(durable)
	seq := uint64(1)
	for n := 0; limit <= 0 || n < limit; n++ {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("dead letters of %s after sequence %d: %w", durable, seq, err)
		}
		if err := fn(DeadLetter{m}); err != nil {
			return err
		}
		seq = m.Sequence + 1
	}
	return nil
}

// RemoveDeadLetter deletes a dead letter from ICP_DLQ; one already gone is
// not an error.
func RemoveDeadLetter(ctx context.Context, js jetstream.JetStream, d DeadLetter) error {
	s, err := js.Stream(ctx, events.DLQStream)
	if err != nil {
		return err
	}
	if err := s.DeleteMsg(ctx, d.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return err
	}
	return nil
}

// RedriveMsg is a worker's dead letter as it goes back on ICP_REPLAY: the
// original's body and headers (without the dead-letter and Nats-* ones) on
// icp.replay.<EventType>, and the Nats-Msg-Id to publish it under, derived
// from the dead letter's sequence so that a re-drive repeated within the
// replay stream's window is stored once. Never on ICP_EVENTS: the relay's
// resume point is the last message there, and every live durable would get
// it again. It fails when the original's subject is not an event subject.
func RedriveMsg(d DeadLetter) (*nats.Msg, string, error) {
	subject := d.Get(events.HeaderDLQSubject)
	switch {
	case strings.HasPrefix(subject, events.ReplaySubjectPrefix):
	case strings.HasPrefix(subject, events.BusSubjectPrefix):
		subject = events.ReplaySubjectPrefix + strings.TrimPrefix(subject, events.BusSubjectPrefix)
	default:
		return nil, "", fmt.Errorf("original subject %q is not an event subject", subject)
	}
	m := nats.NewMsg(subject)
	for k, vs := range d.Header {
		if strings.HasPrefix(k, dlqHeaderPrefix) || strings.HasPrefix(k, "Nats-") {
			continue
		}
		m.Header[k] = vs
	}
	m.Data = d.Data
	return m, "redrive-" + events.DLQStream + "-" + strconv.FormatUint(d.Sequence, 10), nil
}

// ReplayMsg is a stored event as icpctl republish puts it on ICP_REPLAY:
// subject icp.replay.<Type>, the relay's headers (events.Headers); publish
// it with the event id as Nats-Msg-Id.
func ReplayMsg(r events.Recorded) *nats.Msg {
	m := nats.NewMsg(events.ReplaySubjectPrefix + r.Type)
	for k, v := range events.Headers(r) {
		m.Header.Set(k, v)
	}
	m.Data = r.Data
	return m
}

// PassedOverMsg is the relay's record, on ICP_RELAY_DLQ, of a stored event
// it did not publish: body is the record (never the event's body), and the
// headers are the dead-letter schema's reason ("<kind>: <reason>") and
// writer (events.DLQByRelay) with the event's position, stream and size.
// Its Nats-Msg-Id is derived from kind and position, so the record a later
// session writes again for the same event within the stream's window is
// dropped. Values from the store must be Printable already.
func PassedOverMsg(kind string, position uint64, stream string, size int, reason string, body []byte) *nats.Msg {
	m := nats.NewMsg(events.RelayDLQSubject)
	m.Data = body
	pos := strconv.FormatUint(position, 10)
	m.Header.Set(nats.MsgIdHdr, "relay-"+kind+"-"+pos)
	m.Header.Set(events.HeaderDLQReason, kind+": "+reason)
	m.Header.Set(events.HeaderDLQBy, events.DLQByRelay)
	m.Header.Set(events.HeaderPosition, pos)
	m.Header.Set(events.HeaderStream, stream)
	m.Header.Set(events.HeaderSize, strconv.Itoa(size))
	return m
}
