package consumer_test

import (
	"context"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/icpservice/icp/commands"
	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events/consumer"
)

func TestAHandlerRunsInASpanOfTheTraceThatRecordedTheEvent(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	otel.SetTracerProvider(tp) // before consumer.New, as telemetry.Setup would be
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	e := newEnv(t)
	const (
		traceID = "0af7651916cd43dd8448eb211c80319c"
		apiSpan = "b7ad6b7169203331"
	)
	cmd, err := commands.ParseCreate([]byte(`{"name":"Traced","leadProviderCriteria":[]}`), caller.UserID)
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.cmds.Create(context.Background(), caller, cmd, "", commands.RequestMeta{
		CorrelationID: "corr-1", TraceParent: "00-" + traceID + "-" + apiSpan + "-01", TraceState: "congo=t61rcWkgMzE"})
	if err != nil {
		t.Fatal(err)
	}
	e.waitPublished()

	c, err := consumer.New(e.config("traced"))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		handled trace.SpanContext
	)
	c.OnCreated(func(ctx context.Context, _ consumer.Event[domain.ICPCreatedV1]) error {
		mu.Lock()
		handled = trace.SpanContextFromContext(ctx)
		mu.Unlock()
		return nil
	})
	e.start(c)
	eventually(t, "the handler call", func() bool { return c.Stats().Handled == 1 })
	var span tracetest.SpanStub
	eventually(t, "the consumer span", func() bool {
		for _, s := range spans.GetSpans() {
			if s.SpanKind == trace.SpanKindConsumer {
				span = s
				return true
			}
		}
		return false
	})

	if span.Name != "process icp.events.ICPCreated" || span.SpanContext.TraceID().String() != traceID ||
		span.Parent.SpanID().String() != apiSpan || !span.Parent.IsRemote() {
		t.Errorf("span %q in trace %s with parent %v; want a child of %s in trace %s", span.Name, span.SpanContext.TraceID(), span.Parent.SpanID(), apiSpan, traceID)
	}
	if span.SpanContext.TraceState().String() != "congo=t61rcWkgMzE" {
		t.Errorf("tracestate %q", span.SpanContext.TraceState().String())
	}
	mu.Lock()
	defer mu.Unlock()
	if handled.SpanID() != span.SpanContext.SpanID() {
		t.Errorf("the handler's ctx carries span %s, want the consumer span %s", handled.SpanID(), span.SpanContext.SpanID())
	}
	attrs := map[string]string{}
	for _, kv := range span.Attributes {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	if attrs["icp.id"] != res.State.ICP.ID || attrs["messaging.consumer.group.name"] != "traced" {
		t.Errorf("attributes %v", attrs)
	}
}
