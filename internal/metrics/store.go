package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/icpservice/icp/events"
)

// Store decorates an event store with append latency, conflict and failure
// metrics. Every other method passes through unchanged.
func (m *Metrics) Store(s events.Store) events.Store { return &store{Store: s, m: m} }

type store struct {
	events.Store
	m *Metrics
}

func (s *store) Append(ctx context.Context, stream string, expected uint64, evs []events.Proposed) (events.AppendResult, error) {
	start := time.Now()
	res, err := s.Store.Append(ctx, stream, expected, evs)
	s.m.appendDuration.Observe(time.Since(start).Seconds())
	switch {
	case err == nil:
	case errors.Is(err, events.ErrConflict):
		s.m.appendConflicts.Inc()
	default:
		s.m.appendFailures.Inc()
	}
	return res, err
}
