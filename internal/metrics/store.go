package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/icpservice/icp/events"
)

// Store decorates an event store with append latency, conflict and failure
// metrics. Every other method passes through unchanged, and the decorated
// store implements events.Generations exactly when s does (the relay
// publishes the generation of a store that keeps one).
func (m *Metrics) Store(s events.Store) events.Store {
	d := &store{Store: s, m: m}
	if g, ok := s.(events.Generations); ok {
		return &generationStore{store: d, Generations: g}
	}
	return d
}

// generationStore is store for an event store with generations.
type generationStore struct {
	*store
	events.Generations
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
