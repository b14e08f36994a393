package telemetry

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/icpservice/icp/events"
)

// StartMessageSpan starts the consumer span of one bus message handled by the
// durable consumer group: a child of the span whose context the message
// carries (see ExtractMessage), so that the handling of an event joins the
// trace of the request that recorded it. The span is named
// "process icp.events.<EventType>" and carries the event's id, ICP, version
// and position. End it with EndSpan.
func StartMessageSpan(ctx context.Context, tracer trace.Tracer, group string, get func(string) string) (context.Context, trace.Span) {
	ctx = ExtractMessage(ctx, get)
	dest := events.BusSubjects
	if typ, ok := eventType(get(events.HeaderType)); ok {
		dest = events.Subject(typ)
	}
	ctx, span := tracer.Start(ctx, "process "+dest, trace.WithSpanKind(trace.SpanKindConsumer))
	// Attributes only for a span that records: with tracing off (no
	// exporter) or a trace not sampled, building them was garbage on
	// every message. The samplers used here decide without attributes.
	if span.IsRecording() {
		span.SetAttributes(
			semconv.MessagingSystemKey.String("nats"),
			semconv.MessagingOperationTypeProcess,
			semconv.MessagingOperationName("process"),
			semconv.MessagingDestinationName(dest),
			semconv.MessagingConsumerGroupName(group),
			semconv.MessagingMessageID(get(events.HeaderID)),
			attribute.String("icp.id", get(events.HeaderSubject)),
			attribute.String("icp.version", get(events.HeaderICPVersion)),
			attribute.String("icp.position", get(events.HeaderPosition)),
		)
	}
	return ctx, span
}

// eventType reads the event type out of a ce-type (icp.<Type>.v<N>).
func eventType(ceType string) (string, bool) {
	rest, ok := strings.CutPrefix(ceType, "icp.")
	if !ok {
		return "", false
	}
	i := strings.LastIndex(rest, ".v")
	if i <= 0 {
		return "", false
	}
	return rest[:i], true
}

// DeadLettered marks the span in ctx: its message was dead-lettered for
// reason (the message is acknowledged, but it was not handled).
func DeadLettered(ctx context.Context, reason string) {
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(attribute.String("icp.dead_letter_reason", reason))
	span.SetStatus(codes.Error, "dead-lettered")
}

// EndSpan ends a message span; a non-nil err (the message is delivered
// again later) is recorded on it as an error.
func EndSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "delivered again later")
	}
	span.End()
}
