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
// message the relay builds (subject aside), for the widest position.
func TestBusSizeIsWhatNATSCounts(t *testing.T) {
	md := events.Metadata{Tenant: "org_acme", UserID: "user_alice", TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	p := events.Proposed{ID: uuid.NewString(), Type: events.TypeICPUpdated, SchemaVersion: 1,
		Data: []byte(`{"changes":{"name":"x"}}`), Metadata: md.Encode()}
	stream := events.StreamID(uuid.NewString())
	r := events.Recorded{ID: p.ID, Type: p.Type, SchemaVersion: p.SchemaVersion, Data: p.Data, Metadata: p.Metadata,
		StreamID: stream, Version: 7, Position: math.MaxUint64}
	m := nats.NewMsg(events.Subject(r.Type))
	events.EachHeader(r, func(k, v string) { m.Header[k] = []string{v} })
	m.Data = r.Data
	if got, want := events.BusSize(stream, 7, p), m.Size()-len(m.Subject); got != want {
		t.Fatalf("BusSize %d, nats.go counts %d", got, want)
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
