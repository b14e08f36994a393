package consumer

import (
	"context"
	"time"

	"github.com/icpservice/icp/events"
)

// Envelope is what every event carries besides its payload, read from the
// message's CloudEvents headers.
type Envelope struct {
	// ID is the event id (ce-id, also Nats-Msg-Id): unique per event. Two
	// deliveries with the same ID are the same event.
	ID string
	// ICPID is the ICP the event belongs to (ce-subject).
	ICPID string
	// Type is the event type, e.g. events.TypeICPCreated.
	Type string
	// SchemaVersion is the payload's version as recorded. Handlers always
	// get the current version's shape: an older payload was upcast first.
	SchemaVersion int
	// Version is the ICP's version after this event (ce-icpversion): 1 for
	// its creation, +1 per change. (ICPID, Version) identifies the event as
	// well as ID does.
	Version uint64
	// Position is the event's place in the event store's global order
	// (ce-icpposition): increasing, not contiguous.
	Position uint64
	// Time is when the event store recorded the event (ce-time), to the
	// millisecond, UTC.
	Time time.Time
	// Metadata is the icp-metadata header: tenant, acting user, correlation
	// and trace ids.
	Metadata events.Metadata
	// Delivery counts JetStream's deliveries of this message: 1 the first
	// time; more after a failed attempt, a crash, or an AckWait expiry.
	Delivery int
	// Stream is the stream the message was read from: ICP_EVENTS, or
	// ICP_REPLAY for a replay durable (Config.Replay). A replayed event is
	// the same event as on ICP_EVENTS: same ID, Version and Position.
	Stream string
	// StreamSequence is the message's sequence in Stream.
	StreamSequence uint64
	// Generation is the event store's generation (icp-generation): it
	// changes when the store is restored from a backup or the bus is
	// realigned, after which positions and versions may repeat ones that
	// named other events. Key idempotency by (Generation, ID) or
	// (Generation, ICPID, Version). Empty when the store keeps none
	// (EventStoreDB) or the message predates generations.
	Generation string
}

// Event is one event for a handler: the envelope and the typed payload in
// its current schema version.
type Event[P any] struct {
	Envelope
	Payload P
}

// Handler handles one event. Returning nil acknowledges it: it is not
// delivered to this durable again (except in the rare case that the
// acknowledgement itself is lost, see Consumer). Returning an error (or
// panicking) has it delivered again after a backoff, up to
// Config.MaxAttempts deliveries, after which it is dead-lettered.
//
// ctx ends at four fifths of Config.AckWait; it is not cancelled by a
// graceful shutdown, which waits for the handler instead. It carries the
// message's consumer span, a child of the request that recorded the event:
// spans the handler starts from ctx join that trace.
type Handler[P any] func(ctx context.Context, ev Event[P]) error
