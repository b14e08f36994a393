package projector

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"

	"github.com/icpservice/icp/events"
)

// Metadata keys the unmarshaler adds for the handler. They start with
// internalPrefix and are never forwarded to the dead-letter copy.
const (
	internalPrefix = "_icp_projector_"
	mdMalformed    = internalPrefix + "malformed"
	mdStreamSeq    = internalPrefix + "stream_seq"
	mdDelivered    = internalPrefix + "delivered"
)

// unmarshaler turns a JetStream message into a watermill message and never
// fails. watermill-nats neither acks nor naks a message its unmarshaler
// rejects, so JetStream would redeliver it forever; instead, what cannot be
// read (a header with several values) is marked and the handler
// dead-letters it.
type unmarshaler struct{}

var _ wmnats.Unmarshaler = unmarshaler{}

func (unmarshaler) Unmarshal(m *nats.Msg) (*message.Message, error) {
	md := make(message.Metadata, len(m.Header)+3)
	var problems []string
	for k, vs := range m.Header {
		switch {
		case strings.HasPrefix(k, "Nats-") || k == wmnats.WatermillUUIDHdr || strings.HasPrefix(k, internalPrefix):
			// JetStream control headers (Nats-Msg-Id,
			// Nats-Expected-Last-Sequence, ...) speak of the original
			// publish; carried into a dead-letter copy they would make
			// JetStream refuse it.
			continue
		case len(vs) > 1:
			problems = append(problems, fmt.Sprintf("header %s has %d values", k, len(vs)))
		}
		if len(vs) > 0 {
			md.Set(k, vs[0])
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		md.Set(mdMalformed, strings.Join(problems, "; "))
	}
	uuid := m.Header.Get(nats.MsgIdHdr)
	if uuid == "" {
		uuid = m.Header.Get(events.HeaderID)
	}
	if meta, err := m.Metadata(); err == nil {
		md.Set(mdStreamSeq, strconv.FormatUint(meta.Sequence.Stream, 10))
		md.Set(mdDelivered, strconv.FormatUint(meta.NumDelivered, 10))
		if uuid == "" {
			uuid = "seq-" + strconv.FormatUint(meta.Sequence.Stream, 10)
		}
	}
	msg := message.NewMessage(uuid, m.Data)
	msg.Metadata = md
	return msg, nil
}

// deliveries returns how many times JetStream has delivered msg (1 on the
// first delivery; 0 if unknown).
func deliveries(msg *message.Message) int {
	n, _ := strconv.Atoi(msg.Metadata.Get(mdDelivered))
	return n
}

// backoff is the nak delay: RetryDelay doubled for each earlier delivery,
// capped at MaxRetryDelay. It never returns wmnats.TermSignal: nothing that
// is retried is ever dropped.
type backoff struct {
	first, max time.Duration
}

var _ wmnats.Delay = backoff{}

func (b backoff) WaitTime(delivered uint64) time.Duration {
	delay := b.first
	for i := uint64(1); i < delivered && delay < b.max; i++ {
		delay *= 2
	}
	return min(delay, b.max)
}
