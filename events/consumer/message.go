package consumer

import (
	"strconv"
	"strings"

	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"

	"github.com/icpservice/icp/bus"
	"github.com/icpservice/icp/events"
)

// Metadata keys the unmarshaler adds for the handler. They start with
// internalPrefix and are never forwarded to a dead-letter copy.
const (
	internalPrefix = "_icp_consumer_"
	mdMalformed    = internalPrefix + "malformed"
	mdStreamSeq    = internalPrefix + "stream_seq"
	mdDelivered    = internalPrefix + "delivered"
	mdSubject      = internalPrefix + "subject"
)

// unmarshaler turns a JetStream message into a watermill message and never
// fails: watermill-nats neither acks nor naks a message its unmarshaler
// rejects, so JetStream would redeliver it until AckWait runs out, forever.
// What cannot be read (a header with several values) is marked instead, and
// the handler dead-letters it.
type unmarshaler struct{}

var _ wmnats.Unmarshaler = unmarshaler{}

func (unmarshaler) Unmarshal(m *nats.Msg) (*message.Message, error) {
	md := make(message.Metadata, len(m.Header)+4)
	for k, vs := range m.Header {
		// JetStream's own headers (Nats-Msg-Id, and the relay's
		// Nats-Expected-Last-Sequence) are the publisher's business:
		// copied into a dead letter they would be applied again.
		if !notForHandler(k) && len(vs) > 0 {
			md.Set(k, vs[0])
		}
	}
	if problems := bus.Malformed(m.Header, notForHandler); problems != "" {
		md.Set(mdMalformed, problems)
	}
	md.Set(mdSubject, m.Subject)
	id := m.Header.Get(events.HeaderID)
	if meta, err := m.Metadata(); err == nil {
		md.Set(mdStreamSeq, strconv.FormatUint(meta.Sequence.Stream, 10))
		md.Set(mdDelivered, strconv.FormatUint(meta.NumDelivered, 10))
		if id == "" {
			id = "seq-" + strconv.FormatUint(meta.Sequence.Stream, 10)
		}
	}
	msg := message.NewMessage(id, m.Data)
	msg.Metadata = md
	return msg, nil
}

// notForHandler says which headers of a message the handler never sees:
// JetStream's, watermill's, and this package's own metadata keys.
func notForHandler(k string) bool {
	return strings.HasPrefix(k, "Nats-") || k == wmnats.WatermillUUIDHdr || strings.HasPrefix(k, internalPrefix)
}

// deliveries returns how many times JetStream has delivered msg (1 on the
// first delivery; 0 if unknown).
func deliveries(msg *message.Message) int {
	n, _ := strconv.Atoi(msg.Metadata.Get(mdDelivered))
	return n
}

func streamSeq(msg *message.Message) uint64 {
	n, _ := strconv.ParseUint(msg.Metadata.Get(mdStreamSeq), 10, 64)
	return n
}
