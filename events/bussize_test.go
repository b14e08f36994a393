package events_test

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/icpservice/icp/events"
)

// TestBusSizeIsWhatNATSCounts: BusSize equals the size nats.go gives the
// message the relay builds (subject aside), for the widest position, header
// by header: with and without metadata and trace context, for any version,
// schema version and stream name.
func TestBusSizeIsWhatNATSCounts(t *testing.T) {
	traced := events.Metadata{Tenant: "org_acme", UserID: "user_alice", TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	plain := events.Metadata{Tenant: "org_acme", UserID: "user_alice", CorrelationID: "c-1"}
	icpStream := events.StreamID(uuid.NewString())
	for _, c := range []struct {
		name     string
		stream   string
		version  uint64
		p        events.Proposed
		metadata []byte
	}{
		{"traced update", icpStream, 7, events.Proposed{Type: events.TypeICPUpdated, SchemaVersion: 1}, traced.Encode()},
		{"create", icpStream, 1, events.Proposed{Type: events.TypeICPCreated, SchemaVersion: 1}, plain.Encode()},
		{"no metadata", icpStream, 1, events.Proposed{Type: events.TypeICPDeleted, SchemaVersion: 1}, nil},
		{"traceparent key, not JSON", icpStream, 2, events.Proposed{Type: "X", SchemaVersion: 1}, []byte(`"traceparent"`)},
		{"empty traceparent", icpStream, 2, events.Proposed{Type: "X", SchemaVersion: 1}, []byte(`{"traceparent":""}`)},
		{"widest version", icpStream, math.MaxUint64, events.Proposed{Type: events.TypeICPUpdated, SchemaVersion: 12345}, plain.Encode()},
		{"negative schema version", icpStream, 10, events.Proposed{Type: "", SchemaVersion: -3}, plain.Encode()},
		{"not an ICP stream", "other", 3, events.Proposed{Type: events.TypeICPUpdated, SchemaVersion: 1}, plain.Encode()},
		{"empty stream", "", 3, events.Proposed{Type: events.TypeICPUpdated, SchemaVersion: 1}, plain.Encode()},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := c.p
			p.ID, p.Data, p.Metadata = uuid.NewString(), []byte(`{"changes":{"name":"x"}}`), c.metadata
			r := events.Recorded{ID: p.ID, Type: p.Type, SchemaVersion: p.SchemaVersion, Data: p.Data, Metadata: p.Metadata,
				StreamID: c.stream, Version: c.version, Position: math.MaxUint64}
			m := nats.NewMsg(events.Subject(r.Type))
			events.EachHeader(r, func(k, v string) { m.Header[k] = []string{v} })
			m.Data = r.Data
			if got, want := events.BusSize(c.stream, c.version, p), m.Size()-len(m.Subject); got != want {
				t.Fatalf("BusSize %d, nats.go counts %d", got, want)
			}
		})
	}
}

// TestBusHeaderRoomHoldsEveryPublishersHeaders adds up, at their widest, the
// headers the relay, a republish and a dead letter add to an event's own.
func TestBusHeaderRoomHoldsEveryPublishersHeaders(t *testing.T) {
	line := func(k, v string) int { return len(k) + 2 + len(v) + 2 }
	maxSeq := strconv.FormatUint(math.MaxUint64, 10)
	relay := line(nats.MsgIdHdr, uuid.NewString()) + line(nats.ExpectedStreamHdr, events.BusStream) +
		line(nats.ExpectedLastSeqHdr, maxSeq)
	// A dead letter drops the Nats-* headers and adds its reason (cut to
	// 1 KiB), its consumer bookkeeping, and a message id (also as
	// watermill's uuid header) of a consumer name (NATS limits a durable
	// name to 255 characters), a stream name and a sequence.
	durable := strings.Repeat("d", 255)
	msgID := durable + "-" + strings.Repeat("s", 255) + "-" + maxSeq
	deadLetter := line(events.HeaderDLQReason, strings.Repeat("r", 1024)) +
		line("icp-dlq-consumer", durable) + line("icp-dlq-deliveries", maxSeq) +
		line("icp-dlq-stream", strings.Repeat("s", 255)) + line("icp-dlq-stream-seq", maxSeq) +
		line("icp-dlq-subject", strings.Repeat("x", 512)) +
		line(nats.MsgIdHdr, msgID) + line("_watermill_message_uuid", msgID)
	for name, n := range map[string]int{"relay": relay, "dead letter": deadLetter} {
		if n > events.BusHeaderRoom {
			t.Errorf("the %s adds up to %d bytes of headers; BusHeaderRoom is %d", name, n, events.BusHeaderRoom)
		}
	}
}
