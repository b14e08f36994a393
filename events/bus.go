package events

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/icpservice/icp/domain"
)

// The bus topology: one JetStream stream carries every event; dead letters go
// to a separate stream so that the last message of ICP_EVENTS is always one the
// relay published (its position header is the relay's resume point). These
// are the names; the streams' settings, and the code that creates them, are
// in package bus.
const (
	// BusStream is the JetStream stream that holds published events.
	BusStream = "ICP_EVENTS"
	// BusSubjectPrefix starts every event subject: icp.events.<EventType>.
	BusSubjectPrefix = "icp.events."
	// BusSubjects is the subject filter of BusStream.
	BusSubjects = "icp.events.>"
	// ReplayStream holds events republished for a downstream that lost
	// data (icpctl republish). It is not BusStream, so that republishing
	// never moves the relay's resume point.
	ReplayStream = "ICP_REPLAY"
	// ReplaySubjectPrefix starts every republished event's subject:
	// icp.replay.<EventType>.
	ReplaySubjectPrefix = "icp.replay."
	// ReplaySubjects is the subject filter of ReplayStream.
	ReplaySubjects = "icp.replay.>"
	// DLQStream holds dead-lettered messages, subject icp.dlq.<consumer>.
	DLQStream = "ICP_DLQ"
	// DLQSubjectPrefix starts every dead-letter subject.
	DLQSubjectPrefix = "icp.dlq."
	// DLQSubjects is the subject filter of DLQStream.
	DLQSubjects = "icp.dlq.>"
	// RelayDLQStream holds the relay's records of stored events it passed
	// over without publishing them (foreign events, events too large for
	// the bus): one message per event, with the reason, never the body. It
	// is apart from DLQStream because it is bounded more tightly than
	// consumers' dead letters (the settings of both are in package bus).
	RelayDLQStream = "ICP_RELAY_DLQ"
	// RelayDLQSubject is the subject of every message on RelayDLQStream.
	RelayDLQSubject = "icp.relay.dlq"
	// CloudEventsSource is the ce-source of every published event.
	CloudEventsSource = "/icp-service"
)

// Message headers (CloudEvents 1.0 binary mode plus ours).
const (
	HeaderSpecVersion = "ce-specversion"
	HeaderID          = "ce-id"
	HeaderType        = "ce-type"
	HeaderSource      = "ce-source"
	HeaderSubject     = "ce-subject"
	HeaderTime        = "ce-time"
	HeaderICPVersion  = "ce-icpversion"
	HeaderPosition    = "ce-icpposition"
	// HeaderMetadata carries the event's metadata JSON unchanged.
	HeaderMetadata = "icp-metadata"
	// HeaderSchemaVersion carries the payload's schema version (also in ce-type).
	HeaderSchemaVersion = "icp-schemaversion"
	// HeaderStream carries the event store stream name.
	HeaderStream = "icp-stream"
	// HeaderSize carries the byte size of the body of an event the relay
	// passed over (RelayDLQStream).
	HeaderSize = "icp-size"
	// HeaderTraceParent carries W3C trace context.
	HeaderTraceParent = "traceparent"
)

// The dead-letter headers, one schema for every writer of DLQStream (the
// projector and events/consumer). A dead letter is the original message's
// body and headers (JetStream's Nats-* headers excepted) plus these. The
// time it was dead-lettered is the dead letter's own JetStream timestamp.
const (
	// HeaderDLQReason says why the message was dead-lettered.
	HeaderDLQReason = "icp-dlq-reason"
	// HeaderDLQBy names the kind of writer: DLQByProjector, DLQByConsumer or
	// DLQByRelay.
	// It says how a dead letter is re-driven (icpctl dlq redrive).
	HeaderDLQBy = "icp-dlq-by"
	// HeaderDLQConsumer names the durable that dead-lettered the message.
	HeaderDLQConsumer = "icp-dlq-consumer"
	// HeaderDLQDeliveries is how many times the original was delivered.
	HeaderDLQDeliveries = "icp-dlq-deliveries"
	// HeaderDLQStream is the stream the original was read from: ICP_EVENTS,
	// or ICP_REPLAY for a replay durable.
	HeaderDLQStream = "icp-dlq-stream"
	// HeaderDLQStreamSeq is the original's sequence in that stream.
	HeaderDLQStreamSeq = "icp-dlq-stream-seq"
	// HeaderDLQSubject is the original's subject.
	HeaderDLQSubject = "icp-dlq-subject"
)

// Values of HeaderDLQBy.
const (
	// DLQByProjector: the read model's projector. Its dead letters are
	// re-driven from the event store, never from the message.
	DLQByProjector = "projector"
	// DLQByConsumer: a worker built on events/consumer. Its dead letters are
	// re-driven by publishing the original again on ICP_REPLAY.
	DLQByConsumer = "consumer"
	// DLQByRelay: the relay's record of a stored event it passed over
	// (RelayDLQStream). It holds no event body: nothing to re-drive.
	DLQByRelay = "relay"
)

// Subject returns the bus subject of an event type.
func Subject(eventType string) string { return BusSubjectPrefix + eventType }

// DLQSubject returns the dead-letter subject of a consumer.
func DLQSubject(consumer string) string { return DLQSubjectPrefix + consumer }

// CloudEventsType returns ce-type for an event: icp.<Type>.v<N>.
func CloudEventsType(eventType string, schemaVersion int) string {
	return "icp." + eventType + ".v" + strconv.Itoa(schemaVersion)
}

// Headers returns the bus headers of a recorded event (without Nats-Msg-Id,
// which the publisher sets from the event id).
func Headers(r Recorded) map[string]string {
	h := make(map[string]string, 12)
	EachHeader(r, func(k, v string) { h[k] = v })
	return h
}

// EachHeader calls set with each of the bus headers of a recorded event, the
// ones Headers returns, without building a map: the relay sets a dozen
// headers on every event it publishes.
func EachHeader(r Recorded, set func(key, value string)) {
	set(HeaderSpecVersion, "1.0")
	set(HeaderID, r.ID)
	set(HeaderType, CloudEventsType(r.Type, r.SchemaVersion))
	set(HeaderSource, CloudEventsSource)
	set(HeaderSubject, r.ICPID())
	set(HeaderTime, domain.NewTime(r.Time).String())
	set(HeaderICPVersion, strconv.FormatUint(r.Version, 10))
	set(HeaderPosition, strconv.FormatUint(r.Position, 10))
	set(HeaderSchemaVersion, strconv.Itoa(r.SchemaVersion))
	set(HeaderStream, r.StreamID)
	if len(r.Metadata) > 0 {
		set(HeaderMetadata, string(r.Metadata))
		// Decoded only when it can hold trace context: most events carry
		// none, and decoding the metadata of each cost the relay a JSON
		// parse per event.
		if bytes.Contains(r.Metadata, []byte(`"traceparent"`)) {
			if m, err := DecodeMetadata(r.Metadata); err == nil && m.TraceParent != "" {
				set(HeaderTraceParent, m.TraceParent)
			}
		}
	}
}

// FromHeaders rebuilds a Recorded event from a bus message's headers and body.
// It fails when a header the service needs is missing or malformed; such a
// message can never be applied (dead-letter it).
func FromHeaders(get func(string) string, body []byte) (Recorded, error) {
	r := Recorded{ID: get(HeaderID), StreamID: get(HeaderStream), Data: body}
	if r.ID == "" {
		return r, fmt.Errorf("%w: missing %s", ErrCorrupt, HeaderID)
	}
	ceType := get(HeaderType)
	typ, ver, ok := strings.Cut(strings.TrimPrefix(ceType, "icp."), ".v")
	n, err := strconv.Atoi(ver)
	if !ok || !strings.HasPrefix(ceType, "icp.") || typ == "" || err != nil || n < 1 {
		return r, fmt.Errorf("%w: bad %s %q", ErrCorrupt, HeaderType, ceType)
	}
	r.Type, r.SchemaVersion = typ, n
	if r.Version, err = strconv.ParseUint(get(HeaderICPVersion), 10, 64); err != nil || r.Version == 0 {
		return r, fmt.Errorf("%w: bad %s %q", ErrCorrupt, HeaderICPVersion, get(HeaderICPVersion))
	}
	if r.Position, err = strconv.ParseUint(get(HeaderPosition), 10, 64); err != nil || r.Position == 0 {
		return r, fmt.Errorf("%w: bad %s %q", ErrCorrupt, HeaderPosition, get(HeaderPosition))
	}
	if r.StreamID == "" {
		if s := get(HeaderSubject); s != "" {
			r.StreamID = StreamID(s)
		}
	}
	if _, ok := ICPIDFromStream(r.StreamID); !ok {
		return r, fmt.Errorf("%w: not an ICP stream %q", ErrCorrupt, r.StreamID)
	}
	if t, err := domain.ParseTime(get(HeaderTime)); err == nil {
		r.Time = t.Time
	}
	if m := get(HeaderMetadata); m != "" {
		r.Metadata = []byte(m)
	}
	return r, nil
}
