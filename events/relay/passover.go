package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/bus"
	"github.com/icpservice/icp/events"
)

// Why the relay passed over a stored event (the reason label of
// icp_relay_passed_over_total and the first word of the record's reason).
const (
	// PassedForeign: an event in the store that this service did not write
	// (events.Foreign).
	PassedForeign = "foreign"
	// PassedOversized: one of this service's events that is larger than the
	// bus accepts (the server's max_payload), which no retry can change.
	PassedOversized = "oversized"
)

// passedOver is the record the relay leaves on ICP_RELAY_DLQ for a stored
// event it did not publish. It never holds the event's body: the store
// keeps the event, and the body may be what made it unpublishable.
type passedOver struct {
	Kind     string `json:"kind"`
	ID       string `json:"id"`
	Stream   string `json:"stream"`
	Type     string `json:"type"`
	Position uint64 `json:"position"`
	Size     int    `json:"size"`
	Reason   string `json:"reason"`
}

// maxRecordField bounds each text field of a record: the values come from
// the store, where another writer may have put anything.
const maxRecordField = 256

// record publishes p on ICP_RELAY_DLQ (bus.PassedOverMsg) and returns once
// JetStream stored it. A record written again for the same event within the
// stream's duplicate window is dropped. An error means the event must not be
// passed over yet.
func (r *Relay) record(ctx context.Context, p passedOver) error {
	p.ID, p.Stream, p.Type, p.Reason = clip(p.ID), clip(p.Stream), clip(p.Type), clip(p.Reason)
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("record of passed-over event at position %d: %w", p.Position, err)
	}
	m := bus.PassedOverMsg(p.Kind, p.Position, p.Stream, p.Size, p.Reason, body)
	ctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
	defer cancel()
	_, err = r.js.PublishMsg(ctx, m)
	if errors.Is(err, jetstream.ErrNoStreamResponse) {
		// The bus lost the stream (or predates it): create it and retry.
		r.log.Warn("relay: stream missing on the bus; creating it", "stream", events.RelayDLQStream)
		if err = bus.EnsureStreams(ctx, r.nc, r.cfg.Streams); err == nil {
			_, err = r.js.PublishMsg(ctx, m)
		}
	}
	if err != nil {
		return fmt.Errorf("record passed-over event at position %d on %s: %w", p.Position, events.RelayDLQStream, err)
	}
	return nil
}

// clip makes a store-supplied value safe for a NATS header and a log line.
func clip(s string) string { return bus.Printable(s, maxRecordField) }

// passForeign records a foreign event and passes over it.
func (r *Relay) passForeign(ctx context.Context, f events.Foreign) error {
	if err := r.record(ctx, passedOver{
		Kind: PassedForeign, ID: f.ID, Stream: f.StreamID, Type: f.Type, Position: f.Position, Size: f.Size, Reason: f.Reason,
	}); err != nil {
		return err
	}
	r.passedForeign.Add(1)
	r.log.Warn("relay: passed over an event this service did not write; recorded on "+events.RelayDLQStream,
		"stream", clip(f.StreamID), "position", f.Position, "event_id", clip(f.ID), "type", clip(f.Type), "reason", f.Reason)
	return nil
}

// passOversized records an event of ours too large for the bus and passes
// over it.
func (r *Relay) passOversized(ctx context.Context, ev events.Recorded, size int, maxPayload int64) error {
	reason := fmt.Sprintf("%d bytes with headers, above the bus's max_payload of %d", size, maxPayload)
	if err := r.record(ctx, passedOver{
		Kind: PassedOversized, ID: ev.ID, Stream: ev.StreamID, Type: ev.Type, Position: ev.Position, Size: len(ev.Data), Reason: reason,
	}); err != nil {
		return err
	}
	r.passedOversized.Add(1)
	r.log.Error("relay: an event is too large for the bus; passed over it and recorded it on "+events.RelayDLQStream+" (the event store keeps it)",
		"stream", ev.StreamID, "position", ev.Position, "event_id", ev.ID, "reason", reason)
	return nil
}

// messageSize is the size nats.go checks against the server's max_payload
// for ev as tailWriter publishes it: headers as encoded plus the body. The
// expected-sequence value is counted at its widest.
func messageSize(ev events.Recorded) int {
	const line = len(": \r\n")
	n := len("NATS/1.0\r\n\r\n") + len(ev.Data)
	events.EachHeader(ev, func(k, v string) { n += len(k) + len(v) + line })
	n += len(nats.MsgIdHdr) + len(ev.ID) + line
	n += len(nats.ExpectedStreamHdr) + len(events.BusStream) + line
	n += len(nats.ExpectedLastSeqHdr) + 20 + line
	return n
}

// fits reports whether ev can be published under maxPayload, computing the
// exact size only for events near the limit: the headers other than the
// metadata, trace parent, stream and type are well under 1 KiB.
func fits(ev events.Recorded, maxPayload int64) (size int, ok bool) {
	if int64(len(ev.Data)+2*len(ev.Metadata)+len(ev.StreamID)+2*len(ev.Type)+1024) <= maxPayload {
		return 0, true
	}
	size = messageSize(ev)
	return size, int64(size) <= maxPayload
}
