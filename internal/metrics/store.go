package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/icpservice/icp/events"
)

// Store decorates an event store with append latency, conflict and failure
// metrics. Every other method passes through unchanged, and the decorated
// store implements the optional interfaces events.Generations and
// events.ForeignFollower exactly when s does: the relay publishes the
// generation of a store that keeps one, and records the foreign events
// EventStoreDB hands it.
func (m *Metrics) Store(s events.Store) events.Store {
	d := &store{Store: s, m: m}
	g, hasGens := s.(events.Generations)
	f, hasForeign := s.(events.ForeignFollower)
	switch {
	case hasGens && hasForeign:
		return &struct {
			*store
			events.Generations
			events.ForeignFollower
		}{d, g, f}
	case hasGens:
		return &struct {
			*store
			events.Generations
		}{d, g}
	case hasForeign:
		return &struct {
			*store
			events.ForeignFollower
		}{d, f}
	}
	return d
}

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
