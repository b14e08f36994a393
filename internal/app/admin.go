package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/relay"
	"github.com/icpservice/icp/internal/metrics"
	"github.com/icpservice/icp/projections/projector"
	"github.com/icpservice/icp/projections/sqlitemodel"
)

// startAdmin serves operators on --admin-addr (listened on by New):
// Prometheus metrics, the health endpoints (its /readyz names the part that
// is not ready; the API port's does not), and Go's profiler only with
// --pprof: a profile shows the process's memory and code, and a CPU profile
// or trace costs the service while it runs, so it is not there for whoever
// reaches the port by default. It is separate from the API port so that it
// can stay on a private interface.
func (a *App) startAdmin() error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.metrics.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "application/json")
		if err := a.Ready(ctx); err != nil {
			reason, _ := json.Marshal(Scrubber(a.cfg).String(err.Error()))
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, `{"status":"unavailable","reason":%s}`, reason)
			return
		}
		_, _ = w.Write([]byte(`{"status":"ready"}`))
	})
	if a.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	}
	a.admin = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	return nil
}

// registerMetrics adds the gauges read from each part at scrape time.
func (a *App) registerMetrics() {
	m := a.metrics
	m.GaugeFunc("icp_nats_connected", "1 while every NATS connection of this process is connected.", func() float64 {
		for _, c := range a.conns {
			if !c.IsConnected() {
				return 0
			}
		}
		return 1
	})
	m.GaugeFunc("icp_event_store_head_position", "Global position of the last event in the store.", func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		h, _ := a.store.Head(ctx)
		return float64(h)
	})
	if r := a.relay; r != nil {
		a.registerRelayMetrics(m, r)
	}
	if p := a.projector; p != nil {
		a.registerProjectorMetrics(m, p)
	}
	if sm, ok := a.model.(*sqlitemodel.Model); ok {
		m.CounterFunc("icp_read_model_commits_total", "Read model group-commit transactions; written/commits is the mean batch size.", func() float64 { return float64(sm.Stats().Commits) })
		m.CounterFunc("icp_read_model_written_total", "Views written to the read model.", func() float64 { return float64(sm.Stats().Written) })
	}
}

// registerRelayMetrics adds the gauges and counters of the relay r.
func (a *App) registerRelayMetrics(m *metrics.Metrics, r *relay.Relay) {
	m.GaugeFunc("icp_relay_active", "1 while this relay holds the lease and publishes.", func() float64 { return bool01(r.Stats().Active) })
	m.CounterFunc("icp_relay_published_total", "Events JetStream acknowledged to this relay.", func() float64 { return float64(r.Stats().Published) })
	m.GaugeFunc("icp_relay_lag_positions", "Store head position minus the position of the last event on the bus, both read from the store and the bus.", func() float64 {
		lag, _ := a.relayLag()
		return float64(lag)
	})
	m.GaugeFunc("icp_relay_lag_seconds", "Age of the oldest stored event not yet on the bus.", func() float64 {
		_, age := a.relayLag()
		return age.Seconds()
	})
	m.GaugeFunc("icp_relay_diverged", "1 while the relay refuses to publish because the bus and the event store disagree (run icpctl realign).", func() float64 {
		return bool01(r.Stats().Diverged != "")
	})
	m.GaugeFunc("icp_relay_corrupt", "1 while the relay refuses to publish past a stored event of this service that does not decode.", func() float64 {
		return bool01(r.Stats().Corrupt != "")
	})
	m.CounterFunc("icp_relay_passed_over_foreign_total", "Stored events this service did not write, passed over with a record on ICP_RELAY_DLQ.", func() float64 {
		return float64(r.Stats().PassedForeign)
	})
	m.CounterFunc("icp_relay_passed_over_oversized_total", "Stored events larger than the bus's max_payload, passed over with a record on ICP_RELAY_DLQ.", func() float64 {
		return float64(r.Stats().PassedOversized)
	})
}

// registerProjectorMetrics adds the gauges and counters of the projector p.
func (a *App) registerProjectorMetrics(m *metrics.Metrics, p *projector.Projector) {
	m.CounterFunc("icp_projector_applied_total", "Bus events written to the read model.", func() float64 { return float64(p.Stats().Applied) })
	m.CounterFunc("icp_projector_already_applied_total", "Bus events the read model already held (redeliveries).", func() float64 { return float64(p.Stats().AlreadyApplied) })
	m.CounterFunc("icp_projector_gap_filled_total", "Events read from the store to fill a gap.", func() float64 { return float64(p.Stats().GapFilled) })
	m.CounterFunc("icp_projector_dead_lettered_total", "Messages dead-lettered by the projector.", func() float64 { return float64(p.Stats().DeadLettered) })
	m.CounterFunc("icp_projector_retried_total", "Messages handed back for a later redelivery.", func() float64 { return float64(p.Stats().Retried) })
	m.CounterFunc("icp_projector_caught_up_from_store_total", "Events read from the store and written because the bus stream dropped them before the projector applied them.", func() float64 {
		return float64(p.Stats().CaughtUpFromStore)
	})
	m.CounterFunc("icp_projector_catch_ups_total", "Gaps the bus stream's retention left, closed from the event store.", func() float64 { return float64(p.Stats().CatchUps) })
	m.CounterFunc("icp_projector_catch_up_skipped_total", "Stored events a catch-up found that can never be applied.", func() float64 { return float64(p.Stats().CatchUpSkipped) })
	m.GaugeFunc("icp_projector_lag_messages", "Messages of the projector's durable consumer not yet acknowledged (pending plus in flight).", func() float64 {
		return float64(a.projectorLag())
	})
}

// bool01 is a gauge's value of b.
func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// relayLag is how far the bus is behind the store, in positions and in the
// age of the oldest unpublished event, read from the bus and the store (see
// relay.Relay.Lag); zero when either cannot be read.
func (a *App) relayLag() (uint64, time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	lag, age, err := a.relay.Lag(ctx)
	if err != nil {
		return lag, 0
	}
	return lag, age
}

// projectorLag reads the durable consumer's backlog from JetStream.
func (a *App) projectorLag() uint64 {
	js, err := jetstream.New(a.projConn)
	if err != nil {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, events.BusStream, projector.DefaultDurable)
	if err != nil {
		return 0
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0
	}
	return info.NumPending + uint64(info.NumAckPending)
}
