package relay

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/events"
)

// errTailMoved means the stream's last sequence is not the one this relay
// session expected: JetStream lost a tail (a restart after a crash), another
// relay published, or a publish was dropped as a duplicate of a message the
// stream no longer holds. The session must re-read the tail and resume from
// it.
var errTailMoved = errors.New("bus tail is not where this relay left it")

// newPublisher builds the watermill-nats publisher of the relay: JetStream
// with TrackMsgId, so Nats-Msg-Id is the watermill message UUID (the event
// id) and a re-published event inside the Duplicates window is dropped.
// NATSMarshaler puts the message metadata into NATS headers (plus its own
// _watermill_message_uuid header). The publisher must never be closed: its
// Close closes the caller's connection.
func newPublisher(nc *nats.Conn, timeout time.Duration, log watermill.LoggerAdapter) (*wmnats.Publisher, error) {
	return wmnats.NewPublisherWithNatsConn(nc, wmnats.PublisherPublishConfig{
		Marshaler:         &wmnats.NATSMarshaler{},
		SubjectCalculator: wmnats.DefaultSubjectCalculator,
		JetStream: wmnats.JetStreamConfig{
			TrackMsgId:     true,
			ConnectOptions: []nats.JSOpt{nats.MaxWait(timeout)},
			PublishOptions: []nats.PubOpt{nats.ExpectStream(events.BusStream)},
		},
	}, log)
}

// tailWriter appends events to ICP_EVENTS strictly after a known tail.
//
// Every message carries Nats-Expected-Last-Sequence: the stream sequence it
// must follow. JetStream checks it before storing, so a publish lands only
// directly on top of the message this session last saw there. That makes
// one cheap server-side check catch, on the next publish:
//   - a tail lost by a NATS restart (the stream's last sequence went back);
//   - a second relay publishing (the sequence moved on without us);
//   - a retried publish that had in fact been stored (ditto).
//
// Publishing is sequential, one acknowledged message at a time: order on
// the bus is store order, and a failure leaves nothing in flight. Trade-off,
// measured with BenchmarkRelayPublish (in-process embedded NATS, file store,
// 600-byte events, 2 cores shared with other work): 6,000 to 10,000
// events/s, most of it the publish round trip (about 70 us with our dozen
// headers; 35 us without them), against the service's 5,000 creates/s
// target. Pipelining with nats.go's PublishAsync
// would stay safe, because the expected sequence makes every message after
// a failed one fail too (what lands is always a prefix), and would be
// several times faster; watermill's publisher only publishes synchronously.
//
// The expected sequence is set through the message metadata, which
// NATSMarshaler copies into headers: watermill's publisher has no per-message
// publish options and does not return the PubAck.
type tailWriter struct {
	pub     *wmnats.Publisher
	js      jetstream.JetStream
	timeout time.Duration
	// lastSeq is the sequence the next publish expects to follow.
	lastSeq uint64
}

// publish appends one event. It returns nil when JetStream acknowledged the
// message; an error wrapping errTailMoved when the stream's last sequence was
// not the expected one; any other error when the outcome is unknown.
func (w *tailWriter) publish(r events.Recorded) error {
	msg := message.NewMessage(r.ID, r.Data)
	msg.Metadata = events.Headers(r)
	msg.Metadata[nats.ExpectedLastSeqHdr] = strconv.FormatUint(w.lastSeq, 10)
	if err := w.pub.Publish(events.Subject(r.Type), msg); err != nil {
		var apiErr *nats.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == nats.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == nats.JSErrCodeStreamWrongLastSequenceConstant) {
			return fmt.Errorf("%w: publish of event %s at position %d expected last sequence %d: %w", errTailMoved, r.ID, r.Position, w.lastSeq, err)
		}
		return fmt.Errorf("publish event %s at position %d: %w", r.ID, r.Position, err)
	}
	w.lastSeq++
	return nil
}

// confirm checks that the stream ends where this session's publishes put it.
//
// An acknowledged publish can still be missing: JetStream acknowledges a
// message whose Nats-Msg-Id it saw within the Duplicates window as a
// duplicate without storing it, even when the first copy has since been
// removed. The next publish notices (its expected sequence no longer
// matches); confirm covers the last publish of a batch, after which the
// relay may sit idle. One stream info request per batch; watermill does
// not expose the ack's duplicate flag, hence nats.go here.
func (w *tailWriter) confirm(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	s, err := w.js.Stream(ctx, events.BusStream)
	if err != nil {
		return fmt.Errorf("confirm stream tail: %w", err)
	}
	if got := s.CachedInfo().State.LastSeq; got != w.lastSeq {
		return fmt.Errorf("%w: stream ends at sequence %d after publishing up to %d", errTailMoved, got, w.lastSeq)
	}
	return nil
}
