package telemetry

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/propagation"

	"github.com/icpservice/icp/events"
)

// Propagator is how the service reads and writes trace context: W3C trace
// context and baggage. The API and the bus consumers use it whether or not
// Setup ran, so an incoming traceparent is always carried on; Setup also
// installs it as the global propagator for the libraries that use that.
var Propagator propagation.TextMapPropagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// W3C trace context keys, as HTTP headers and bus message headers.
const (
	keyTraceParent = "traceparent"
	keyTraceState  = "tracestate"
)

// TraceContext returns the W3C traceparent and tracestate of the span in ctx
// ("" when ctx carries no valid span context). They are what a command keeps
// in its events' metadata (commands.RequestMeta), so that the processes that
// handle the events continue the trace.
func TraceContext(ctx context.Context) (traceParent, traceState string) {
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c[keyTraceParent], c[keyTraceState]
}

// ExtractMessage returns ctx with the remote span context of a bus message,
// read through get (a header lookup): the traceparent header the relay
// copies from the event's metadata, and the tracestate kept in the metadata
// (the icp-metadata header) when no tracestate header is present. A message
// without a valid traceparent leaves ctx as it is: its span starts a new
// trace.
func ExtractMessage(ctx context.Context, get func(string) string) context.Context {
	return Propagator.Extract(ctx, messageCarrier{get: get})
}

// messageCarrier reads a bus message's headers for the propagator.
type messageCarrier struct {
	get func(string) string
}

func (m messageCarrier) Get(key string) string {
	v := m.get(key)
	if v != "" || key != keyTraceState || m.get(keyTraceParent) == "" {
		return v
	}
	// The relay puts only traceparent on the message; tracestate travels
	// in the metadata. Decode it only when it is there at all.
	md := m.get(events.HeaderMetadata)
	if !strings.Contains(md, `"`+keyTraceState+`"`) {
		return ""
	}
	meta, err := events.DecodeMetadata([]byte(md))
	if err != nil {
		return ""
	}
	return meta.TraceState
}

// Set is never called: the carrier is only read.
func (messageCarrier) Set(string, string) {}

// Keys lists the keys the propagators may read.
func (messageCarrier) Keys() []string { return []string{keyTraceParent, keyTraceState, "baggage"} }
