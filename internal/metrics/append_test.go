package metrics_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/internal/metrics"
)

// Every observed append counts in the latency histogram; a refused expected
// version counts as a conflict and any other error as a failure, never both.
func TestObserveAppendCountsConflictsAndFailuresApart(t *testing.T) {
	m := metrics.New()
	m.ObserveAppend(time.Millisecond, nil)
	m.ObserveAppend(time.Millisecond, fmt.Errorf("append: %w", &events.ConflictError{Stream: "icp-1", Expected: 1, Actual: 2}))
	m.ObserveAppend(time.Millisecond, fmt.Errorf("append: %w", events.ErrUnavailable))
	m.ObserveAppend(time.Millisecond, errors.New("cancelled"))

	got := map[string]float64{}
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, s := range f.GetMetric() {
			switch {
			case s.GetCounter() != nil:
				got[f.GetName()] = s.GetCounter().GetValue()
			case s.GetHistogram() != nil:
				got[f.GetName()] = float64(s.GetHistogram().GetSampleCount())
			}
		}
	}
	for name, want := range map[string]float64{
		"icp_event_store_append_duration_seconds": 4,
		"icp_event_store_append_conflicts_total":  1,
		"icp_event_store_append_failures_total":   2,
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
}
