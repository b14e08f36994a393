package api

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/icpservice/icp/commands"
	"github.com/icpservice/icp/platform/telemetry"
)

// Request identity headers. Both are echoed on every answer.
const (
	// HeaderRequestID names one request: the caller's value when it is a
	// sane id (1 to 128 letters, digits or -_.:+/=), else one the service
	// generates.
	HeaderRequestID = "X-Request-Id"
	// HeaderCorrelationID names the larger piece of work a request belongs
	// to: the caller's value when sane, else the request id. It is kept in
	// the metadata of the events the request records.
	HeaderCorrelationID = "X-Correlation-Id"
)

const maxIDLength = 128

// tracerName is the instrumentation scope of the API's spans.
const tracerName = "github.com/icpservice/icp/api"

type idsKey struct{}

type requestIDs struct{ request, correlation string }

// observe is the first middleware of every request. It settles the request
// and correlation ids, continues the caller's W3C trace (traceparent,
// tracestate) in a server span named after the route, puts a logger carrying
// request_id, correlation_id and trace_id in the request's context, and, when
// the request is done, writes one access-log line (method, route, status,
// duration, bytes; never the token, the query or the body) at Info (Debug for
// the health probes).
//
// It is written here rather than taken from otelgin: that module's releases
// trail the otel version the service uses and bring metric instruments and
// propagators the service does not use, while the part needed is the few
// lines below, plus the ids that must reach the events' metadata.
func (a *api) observe(c *gin.Context) {
	start := time.Now()
	r := c.Request
	ids := idsOf(r)
	// The route is the matched template (empty for no route) and the
	// method one of a closed set: a client inventing methods or paths adds
	// no span name and no log value.
	route := c.FullPath()
	method := telemetry.HTTPMethod(r.Method)
	ctx, span := a.startSpan(r, method, route, ids)
	attrs := make([]slog.Attr, 2, 8)
	attrs[0], attrs[1] = slog.String("request_id", ids.request), slog.String("correlation_id", ids.correlation)
	if sc := span.SpanContext(); sc.IsValid() {
		attrs = append(attrs, slog.String("trace_id", sc.TraceID().String()))
	}
	// Clipped: the access log line appends to attrs, out of the logger's sight.
	ctx = telemetry.WithLoggerAttrs(context.WithValue(ctx, idsKey{}, ids), a.log, slices.Clip(attrs)...)
	c.Request = r.WithContext(ctx)
	h := c.Writer.Header()
	h.Set(HeaderRequestID, ids.request)
	h.Set(HeaderCorrelationID, ids.correlation)

	defer a.endRequest(ctx, c, span, start, method, route, attrs)
	c.Next()
}

// idsOf settles a request's ids: the caller's when sane, else a new request
// id, and the request id as the correlation id.
func idsOf(r *http.Request) requestIDs {
	ids := requestIDs{request: r.Header.Get(HeaderRequestID), correlation: r.Header.Get(HeaderCorrelationID)}
	if !saneID(ids.request) {
		ids.request = uuid.NewString()
	}
	if !saneID(ids.correlation) {
		ids.correlation = ids.request
	}
	return ids
}

// startSpan starts the request's server span, named after its method and
// route, continuing the caller's trace.
func (a *api) startSpan(r *http.Request, method, route string, ids requestIDs) (context.Context, trace.Span) {
	name := method
	if route != "" {
		name += " " + route
	}
	spanMethod := method
	if method == telemetry.OtherMethod {
		spanMethod = "_OTHER" // OpenTelemetry's name for a method it does not know
	}
	ctx := telemetry.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	return a.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		semconv.HTTPRequestMethodKey.String(spanMethod),
		semconv.HTTPRoute(route),
		semconv.URLPath(telemetry.ClipPath(r.URL.Path)),
		attribute.String("icp.request_id", ids.request),
	))
}

// endRequest, once the request is done, ends its span with the answer's
// status and writes its access-log line after the request's attrs.
func (a *api) endRequest(ctx context.Context, c *gin.Context, span trace.Span, start time.Time, method, route string, attrs []slog.Attr) {
	status := c.Writer.Status()
	span.SetAttributes(semconv.HTTPResponseStatusCode(status))
	if status >= http.StatusInternalServerError {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()
	level := slog.LevelInfo
	if route == "/healthz" || route == "/readyz" {
		level = slog.LevelDebug
	}
	if !a.log.Enabled(ctx, level) {
		return
	}
	// The request's attributes come first, as they would from the
	// request's logger.
	a.log.LogAttrs(ctx, level, "http request", append(attrs,
		slog.String("method", method), slog.String("route", route), slog.Int("status", status),
		slog.Duration("duration", time.Since(start)), slog.Int("bytes", max(0, c.Writer.Size())))...)
}

// saneID reports whether an id from a header may be used as it is: 1 to 128
// characters from letters, digits and -_.:+/= (nothing a log line or a
// header could be broken with).
func saneID(s string) bool {
	if len(s) == 0 || len(s) > maxIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9':
		case ch == '-', ch == '_', ch == '.', ch == ':', ch == '+', ch == '/', ch == '=':
		default:
			return false
		}
	}
	return true
}

// logger is the request-scoped logger (see observe).
func (a *api) logger(c *gin.Context) *slog.Logger {
	return telemetry.Logger(c.Request.Context(), a.log)
}

// requestMeta is what the events a request records keep of it: the
// correlation id and the W3C context of the request's server span (so the
// processes that handle the events continue its trace).
func requestMeta(ctx context.Context) commands.RequestMeta {
	ids, _ := ctx.Value(idsKey{}).(requestIDs)
	tp, ts := telemetry.TraceContext(ctx)
	return commands.RequestMeta{CorrelationID: ids.correlation, TraceParent: tp, TraceState: ts}
}
