package projector

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
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
	var problems []string
	for k, vs := range m.Headers() {
		if len(vs) > 1 && !strings.HasPrefix(k, "Nats-") {
			problems = append(problems, fmt.Sprintf("header %s has %d values", k, len(vs)))
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		d.malformed = strings.Join(problems, "; ")
	}
	return d
}

// header returns the first value of an event header.
func (d delivery) header(key string) string {
	return d.msg.Headers().Get(key)
}

// backoff is the nak delay: RetryDelay doubled for each earlier delivery,
// capped at MaxRetryDelay. Nothing that is retried is ever dropped.
type backoff struct {
	first, max time.Duration
}

func (b backoff) wait(delivered uint64) time.Duration {
	delay := b.first
	for i := uint64(1); i < delivered && delay < b.max; i++ {
		delay *= 2
	}
	return min(delay, b.max)
}
