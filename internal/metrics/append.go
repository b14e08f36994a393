package metrics

import (
	"errors"
	"time"

	"github.com/icpservice/icp/events"
)

// ObserveAppend records one event store append: its latency, and whether
// the stream was not at the expected version (a conflict) or the append
// failed for another reason. It is the command handler's append observer
// (commands.WithAppendObserver), so that the store reaches the handler, the
// relay and the projector undecorated, with every optional capability it
// has: a decorator hid the ones it did not know of.
func (m *Metrics) ObserveAppend(took time.Duration, err error) {
	m.appendDuration.Observe(took.Seconds())
	switch {
	case err == nil:
	case errors.Is(err, events.ErrConflict):
		m.appendConflicts.Inc()
	default:
		m.appendFailures.Inc()
	}
}
