package app

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/icpservice/icp/projections/projector"
)

// A projector can stop making progress without failing: a read model that
// refuses every write as unavailable, a batch retried for ever, a consumer
// the server no longer delivers to. Its lag then grows on /metrics, and the
// stall watch below also makes the process not ready on the admin listener,
// naming what it saw.

// stallSample is what the stall watch reads at one moment: the messages the
// projector's durable has not acknowledged, and how many it has handled in
// all (applied, found applied, gap-filled, dead-lettered, caught up).
type stallSample struct {
	at      time.Time
	pending uint64
	handled uint64
}

// stallRule decides from the last sample that showed progress (or an empty
// backlog) and the current one whether the projector is stalled: messages are
// waiting and none was handled for at least after. It returns nil otherwise.
func stallRule(lastProgress, now stallSample, after time.Duration) error {
	if now.pending == 0 || now.handled != lastProgress.handled {
		return nil
	}
	if idle := now.at.Sub(lastProgress.at); idle >= after {
		return fmt.Errorf("stalled: %d messages waiting and none handled for %s", now.pending, idle.Round(time.Second))
	}
	return nil
}

// handledTotal is the projector's progress counter for the stall watch.
func handledTotal(s projector.Stats) uint64 {
	return s.Applied + s.AlreadyApplied + s.GapFilled + s.DeadLettered + s.CaughtUpFromStore + s.CatchUpAlreadyApplied + s.CatchUpSkipped
}

// stallWatch samples the projector every interval until ctx ends and keeps
// the verdict of stallRule for Ready.
type stallWatch struct {
	verdict atomic.Pointer[error]
}

func (w *stallWatch) err() error {
	if e := w.verdict.Load(); e != nil {
		return *e
	}
	return nil
}

func (w *stallWatch) run(ctx context.Context, interval, after time.Duration, sample func() stallSample) {
	t := time.NewTicker(interval)
	defer t.Stop()
	last := sample()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := sample()
		err := stallRule(last, now, after)
		w.verdict.Store(&err)
		if err == nil && (now.pending == 0 || now.handled != last.handled) {
			last = now
		}
	}
}
