package api_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/icpservice/icp/api"
	"github.com/icpservice/icp/api/auth"
	"github.com/icpservice/icp/internal/app"
	"github.com/icpservice/icp/internal/config"
)

// runTracedService runs the whole pipeline in this process (SQLite event
// store, embedded NATS, relay, projector, SQLite read model, API) after
// installing a tracer provider that records every span in memory, as
// telemetry.Setup would install the exporting one. It returns the API's
// base URL, a development token for user_trace and the recorded spans.
func runTracedService(t *testing.T) (base, token string, spans *tracetest.InMemoryExporter) {
	t.Helper()
	spans = tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	dir := t.TempDir()
	cfg, err := config.Load([]string{"--dev", "--addr=127.0.0.1:0", "--embedded-nats-addr=127.0.0.1:0", "--admin-addr=", "--data-dir=" + dir, "--log-level=warn"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("service stopped with: %v", err)
		}
	})
	key, err := auth.LoadOrCreateDevKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if token, err = key.Mint(auth.DevClaims{UserID: "user_trace", OrgID: "org_trace", TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	base = "http://" + a.Addr()
	pollUntil(t, "the service to be ready", func() bool {
		r, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		_ = r.Body.Close()
		return r.StatusCode == http.StatusOK
	})
	return base, token, spans
}

// pollUntil polls cond until it holds, failing the test after 30 s.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func TestOneCreateIsOneTraceFromTheCallerThroughTheAPIToTheProjector(t *testing.T) {
	base, token, spans := runTracedService(t)
	const (
		traceID  = "4bf92f3577b34da6a3ce929d0e0e4736"
		callerID = "00f067aa0ba902b7"
	)
	hr, err := http.NewRequest(http.MethodPost, base+api.BasePath, strings.NewReader(`{"name":"Traced","leadProviderCriteria":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Authorization", "Bearer "+token)
	hr.Header.Set("Traceparent", "00-"+traceID+"-"+callerID+"-01")
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", res.StatusCode, body)
	}
	id := idOf(t, string(body))

	find := func(kind trace.SpanKind, name string) (tracetest.SpanStub, bool) {
		for _, s := range spans.GetSpans() {
			if s.SpanKind == kind && s.Name == name && s.SpanContext.TraceID().String() == traceID {
				return s, true
			}
		}
		return tracetest.SpanStub{}, false
	}
	var server, projected tracetest.SpanStub
	pollUntil(t, "the API's and the projector's spans", func() bool {
		var ok1, ok2 bool
		server, ok1 = find(trace.SpanKindServer, "POST "+api.BasePath)
		projected, ok2 = find(trace.SpanKindConsumer, "process icp.events.ICPCreated")
		return ok1 && ok2
	})
	if server.Parent.SpanID().String() != callerID || !server.Parent.IsRemote() {
		t.Errorf("the API's span has parent %v, want the caller's span %s", server.Parent, callerID)
	}
	if projected.Parent.SpanID() != server.SpanContext.SpanID() || !projected.Parent.IsRemote() {
		t.Errorf("the projector's span has parent %v, want the API's span %s carried by the message", projected.Parent, server.SpanContext.SpanID())
	}
	attrs := map[string]string{}
	for _, kv := range projected.Attributes {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	if attrs["icp.id"] != id || attrs["icp.version"] != "1" {
		t.Errorf("the projector's span is about ICP %q v%s, want %s v1", attrs["icp.id"], attrs["icp.version"], id)
	}
	if projected.Status.Code.String() == "Error" || server.Status.Code.String() == "Error" {
		t.Errorf("statuses: API %v, projector %v", server.Status, projected.Status)
	}
}
