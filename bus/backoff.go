package bus

import "time"

// Backoff is the delay before a message handed back (nak) is delivered
// again: First before the second delivery, doubled for each delivery after
// it, capped at Max. It never gives up: nothing that is retried is dropped.
//
// A closed form of one line rather than a backoff library: a library's
// stateful iterator does not fit a delay asked for by delivery count, which
// is what JetStream tells each delivery (and what watermill-nats's Delay
// asks; Backoff satisfies it).
type Backoff struct {
	First, Max time.Duration
}

// WaitTime returns the delay after the given delivery (1: the first).
func (b Backoff) WaitTime(delivered uint64) time.Duration {
	delay := b.First
	for i := uint64(1); i < delivered && delay < b.Max; i++ {
		delay *= 2
	}
	return min(delay, b.Max)
}
