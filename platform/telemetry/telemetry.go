// Package telemetry sets up tracing for the processes of the service and
// carries the pieces of a request's identity that must cross process
// boundaries: the W3C trace context (HTTP headers, event metadata, bus
// message headers) and the request-scoped logger.
//
// One create is one trace: the API's server span is the parent of the span
// the projector (and any worker built on events/consumer) starts for the
// event, through the traceparent the event's metadata keeps and the relay
// copies onto the bus message.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/icpservice/icp/platform/redact"
)

// DefaultServiceName is the service.name of exported spans when
// Config.ServiceName is empty.
const DefaultServiceName = "icpd"

// tracesPath is where an OTLP/HTTP collector takes spans.
const tracesPath = "/v1/traces"

// Config selects where spans go.
type Config struct {
	// OTLPEndpoint is the OTLP/HTTP collector, e.g.
	// http://otel-collector:4318 (the traces path /v1/traces is appended
	// when the URL has no path; https sends over TLS). Empty: spans are
	// not recorded or exported, but incoming W3C trace context is still
	// carried through (into events and onto the bus), so a caller's trace
	// continues in processes that do export. The exporter also honours the
	// standard OTEL_EXPORTER_OTLP_HEADERS and OTEL_EXPORTER_OTLP_TIMEOUT
	// variables.
	OTLPEndpoint string
	// ServiceName is the resource's service.name (default "icpd").
	ServiceName string
	// ServiceVersion is the resource's service.version (optional).
	ServiceVersion string
	// SampleRatio is the fraction of new traces recorded, 0 < r <= 1
	// (0: default 1). A request that arrives with a trace context follows
	// its caller's sampling decision.
	SampleRatio float64
	// Logger receives export failures (nil: slog.Default()).
	Logger *slog.Logger
}

// Validate reports every invalid setting at once.
func (c Config) Validate() error {
	var errs []error
	if c.OTLPEndpoint != "" {
		if _, err := tracesURL(c.OTLPEndpoint); err != nil {
			errs = append(errs, err)
		}
	}
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		errs = append(errs, fmt.Errorf("SampleRatio must be in (0, 1] (0: default 1), got %v", c.SampleRatio))
	}
	if len(errs) > 0 {
		return fmt.Errorf("telemetry: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

// tracesURL returns the URL spans are posted to: the endpoint, with
// /v1/traces when it has no path of its own.
func tracesURL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("OTLPEndpoint %q: want an http(s) URL such as http://otel-collector:4318, without credentials, query or fragment", redact.URL(endpoint))
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = tracesPath
	}
	return u.String(), nil
}

// Setup installs the global propagator (Propagator) and
// the global tracer provider: one that batches spans to cfg.OTLPEndpoint, or,
// without an endpoint, a no-op provider (spans cost next to nothing and
// carry their parent's context unchanged).
//
// Call it before building the parts that trace (api.New, projector.New,
// consumer.New take their tracer from the global provider when built).
// shutdown flushes the spans still buffered and stops the exporter; call it
// once, after the parts stopped, with a deadline. Setup does not contact the
// collector: a collector that is down costs dropped spans (the buffer is
// bounded) and a logged warning per failed export, never a request.
func Setup(ctx context.Context, cfg Config) (shutdown func(context.Context) error, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	otel.SetTextMapPropagator(Propagator)
	if cfg.OTLPEndpoint == "" {
		otel.SetTracerProvider(noop.NewTracerProvider())
		return func(context.Context) error { return nil }, nil
	}

	endpoint, _ := tracesURL(cfg.OTLPEndpoint) // validated above
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
	if err != nil {
		return nil, fmt.Errorf("telemetry: OTLP exporter: %w", err)
	}
	name := cfg.ServiceName
	if name == "" {
		name = DefaultServiceName
	}
	attrs := resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(name))
	if cfg.ServiceVersion != "" {
		attrs = resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(name), semconv.ServiceVersion(cfg.ServiceVersion))
	}
	res, err := resource.Merge(resource.Default(), attrs)
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	ratio := cfg.SampleRatio
	if ratio == 0 {
		ratio = 1
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("telemetry: span export failed", "err", err)
	}))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp), // bounded queue: spans beyond it are dropped, requests never wait
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
	)
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
}
