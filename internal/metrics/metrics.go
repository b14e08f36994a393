// Package metrics defines the service's Prometheus metrics and the adapters
// that record them without the instrumented parts knowing: an HTTP
// middleware, the command handler's append observer, and gauges read from
// each part's Stats at scrape time.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds the collectors recorded on the request and append paths.
// Scrape-time gauges are added with Register* functions.
type Metrics struct {
	Registry *prometheus.Registry

	httpRequests   *prometheus.CounterVec
	httpDuration   *prometheus.HistogramVec
	consistencyDue prometheus.Counter

	appendDuration  prometheus.Histogram
	appendConflicts prometheus.Counter
	appendFailures  prometheus.Counter
}

// New registers every metric in a fresh registry (plus the Go runtime and
// process collectors).
func New() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: reg,
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "icp_http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and status code.",
		}, []string{"route", "method", "status"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "icp_http_request_duration_seconds",
			Help:    "Time from request to response, by route pattern and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		consistencyDue: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "icp_read_your_writes_timeouts_total",
			Help: "Writes answered with ICP-Consistency: pending because the read model did not catch up within the wait.",
		}),
		appendDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "icp_event_store_append_duration_seconds",
			Help:    "Latency of event store appends, including group-commit queueing.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		appendConflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "icp_event_store_append_conflicts_total",
			Help: "Appends refused because the stream was not at the expected version.",
		}),
		appendFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "icp_event_store_append_failures_total",
			Help: "Appends that failed for another reason (store unavailable, cancelled).",
		}),
	}
	reg.MustRegister(m.httpRequests, m.httpDuration, m.consistencyDue, m.appendDuration, m.appendConflicts, m.appendFailures)
	return m
}

// GaugeFunc registers a gauge whose value is read at scrape time.
func (m *Metrics) GaugeFunc(name, help string, f func() float64) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// CounterFunc registers a counter whose value is read at scrape time (f must
// never decrease).
func (m *Metrics) CounterFunc(name, help string, f func() float64) {
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
}
