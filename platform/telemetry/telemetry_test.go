package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/platform/telemetry"
)

const upstream = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func remoteParent(t *testing.T) context.Context {
	t.Helper()
	ctx := telemetry.Propagator.Extract(context.Background(), propagation.MapCarrier{"traceparent": upstream, "tracestate": "vendor=1"})
	if !trace.SpanContextFromContext(ctx).IsValid() {
		t.Fatal("the upstream traceparent was not read")
	}
	return ctx
}

func TestWithoutAnEndpointNothingIsRecordedButTheTraceIsCarriedOn(t *testing.T) {
	shutdown, err := telemetry.Setup(context.Background(), telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = shutdown(context.Background()) }()

	ctx, span := otel.Tracer("test").Start(remoteParent(t), "work")
	defer span.End()
	if span.IsRecording() {
		t.Error("a span is recorded with no exporter configured")
	}
	tp, ts := telemetry.TraceContext(ctx)
	if tp != upstream || ts != "vendor=1" {
		t.Errorf("carried on as traceparent %q tracestate %q, want the caller's %q, vendor=1", tp, ts, upstream)
	}
	if tp, ts := telemetry.TraceContext(context.Background()); tp != "" || ts != "" {
		t.Errorf("no span, yet traceparent %q tracestate %q", tp, ts)
	}
	// The global propagator is W3C too, for libraries that use it.
	c := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, c)
	if c["traceparent"] != upstream {
		t.Errorf("global propagator wrote %q", c["traceparent"])
	}
}

// collector is an OTLP/HTTP endpoint that keeps what it receives.
type collector struct {
	mu       sync.Mutex
	paths    []string
	requests []*coltracepb.ExportTraceServiceRequest
	errs     []string
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	req := &coltracepb.ExportTraceServiceRequest{}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.paths = append(c.paths, r.URL.Path)
	if err == nil {
		err = proto.Unmarshal(body, req)
	}
	if err != nil || r.Header.Get("Content-Type") != "application/x-protobuf" {
		c.errs = append(c.errs, r.Header.Get("Content-Type")+": "+errString(err))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	c.requests = append(c.requests, req)
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestSpansAreExportedToTheOTLPEndpoint(t *testing.T) {
	col := &collector{}
	srv := httptest.NewServer(col)
	defer srv.Close()
	ctx := context.Background()
	shutdown, err := telemetry.Setup(ctx, telemetry.Config{OTLPEndpoint: srv.URL, ServiceName: "icp-test", ServiceVersion: "1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	_, span := otel.Tracer("test").Start(remoteParent(t), "export me", trace.WithSpanKind(trace.SpanKindServer))
	span.End()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := shutdown(sctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	// Leave a provider that records nothing for the tests after this one.
	if _, err := telemetry.Setup(ctx, telemetry.Config{}); err != nil {
		t.Fatal(err)
	}

	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.errs) > 0 || len(col.requests) != 1 || col.paths[0] != "/v1/traces" {
		t.Fatalf("collector got paths %v, errors %v, %d requests", col.paths, col.errs, len(col.requests))
	}
	rs := col.requests[0].ResourceSpans
	if len(rs) != 1 || len(rs[0].ScopeSpans) != 1 || len(rs[0].ScopeSpans[0].Spans) != 1 {
		t.Fatalf("want one span, got %v", col.requests[0])
	}
	attrs := map[string]string{}
	for _, kv := range rs[0].Resource.Attributes {
		attrs[kv.Key] = kv.Value.GetStringValue()
	}
	if attrs["service.name"] != "icp-test" || attrs["service.version"] != "1.2.3" {
		t.Errorf("resource %v", attrs)
	}
	s := rs[0].ScopeSpans[0].Spans[0]
	if s.Name != "export me" || !strings.HasPrefix(upstream[3:], trace.TraceID(s.TraceId).String()) ||
		trace.SpanID(s.ParentSpanId).String() != upstream[36:52] {
		t.Errorf("span %q trace %x parent %x; want the upstream trace and span as parent", s.Name, s.TraceId, s.ParentSpanId)
	}
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	err := telemetry.Config{OTLPEndpoint: "collector:4318", SampleRatio: 2}.Validate()
	if err == nil || !strings.Contains(err.Error(), "OTLPEndpoint") || !strings.Contains(err.Error(), "SampleRatio") {
		t.Fatalf("Validate: %v", err)
	}
	if _, err := telemetry.Setup(context.Background(), telemetry.Config{OTLPEndpoint: "ftp://x"}); err == nil {
		t.Fatal("Setup accepted an ftp endpoint")
	}
	for _, ok := range []telemetry.Config{{}, {OTLPEndpoint: "https://otel.example.com/custom/traces", SampleRatio: 0.25}} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
}

func TestAMessageSpanIsAChildOfTheRequestThatRecordedTheEvent(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	md := events.Metadata{Tenant: "t", UserID: "u", TraceParent: upstream, TraceState: "vendor=1"}
	rec := events.Recorded{ID: "ev-1", StreamID: events.StreamID("0b5c3f9e-1111-4222-8333-444455556666"), Type: events.TypeICPCreated,
		SchemaVersion: 1, Version: 1, Position: 7, Metadata: md.Encode()}
	headers := events.Headers(rec)

	ctx, span := telemetry.StartMessageSpan(context.Background(), tp.Tracer("test"), "projector", func(k string) string { return headers[k] })
	telemetry.DeadLettered(ctx, "unreadable")
	telemetry.EndSpan(span, nil)

	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	s := spans[0]
	if s.Name != "process icp.events.ICPCreated" || s.SpanKind != trace.SpanKindConsumer {
		t.Errorf("span %q kind %v", s.Name, s.SpanKind)
	}
	if s.Parent.TraceID().String() != upstream[3:35] || s.Parent.SpanID().String() != upstream[36:52] || !s.Parent.IsRemote() {
		t.Errorf("parent %v, want the remote span of %s", s.Parent, upstream)
	}
	if s.SpanContext.TraceState().String() != "vendor=1" {
		t.Errorf("tracestate %q, want the metadata's vendor=1", s.SpanContext.TraceState().String())
	}
	attrs := map[string]string{}
	for _, kv := range s.Attributes {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	for k, want := range map[string]string{"messaging.message.id": "ev-1", "icp.position": "7", "icp.version": "1",
		"icp.id": "0b5c3f9e-1111-4222-8333-444455556666", "messaging.consumer.group.name": "projector", "icp.dead_letter_reason": "unreadable"} {
		if attrs[k] != want {
			t.Errorf("%s = %q, want %q", k, attrs[k], want)
		}
	}
	if s.Status.Description != "dead-lettered" {
		t.Errorf("status %+v", s.Status)
	}

	// Without a traceparent the message starts a trace of its own.
	_, span = telemetry.StartMessageSpan(context.Background(), tp.Tracer("test"), "projector", func(string) string { return "" })
	telemetry.EndSpan(span, context.DeadlineExceeded)
	s = exp.GetSpans()[1]
	if s.Parent.IsValid() || s.Name != "process icp.events.>" || len(s.Events) != 1 {
		t.Errorf("span without context: parent %v name %q events %v", s.Parent, s.Name, s.Events)
	}
}
