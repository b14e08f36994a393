package projector

import (
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/bus"
)

// delivery is what the projector reads off one JetStream message before it
// decodes the event: where the message sits in the stream, how often it was
// delivered, and whether its headers can be read at all.
type delivery struct {
	msg jetstream.Msg
	// streamSeq is the message's sequence in the bus stream (0 if unknown).
	streamSeq uint64
	// delivered counts deliveries, 1 on the first (0 if unknown).
	delivered uint64
	// malformed says why the headers cannot be read ("" when they can).
	malformed string
}

func newDelivery(m jetstream.Msg) delivery {
	d := delivery{msg: m}
	if meta, err := m.Metadata(); err == nil {
		d.streamSeq, d.delivered = meta.Sequence.Stream, meta.NumDelivered
	}
	d.malformed = bus.Malformed(m.Headers(), nil)
	return d
}

// header returns the first value of an event header.
func (d delivery) header(key string) string {
	return d.msg.Headers().Get(key)
}
