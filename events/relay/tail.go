package relay

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/bus"
	"github.com/icpservice/icp/events"
)

// MaxStrayWalk bounds how many messages at the end of ICP_EVENTS the relay
// looks back through to find its own last event. Messages published there
// by anyone else (strays) are passed over; a tail of more strays than this
// is refused with ErrTooManyStrays until fewer remain (or the operator
// removes them), since finding the resume point would otherwise cost a read
// per stray.
const MaxStrayWalk = 1024

// ErrTooManyStrays is wrapped by the error of a bus tail whose last
// MaxStrayWalk messages are none of this service's events.
var ErrTooManyStrays = errors.New("no event of this service among the last messages on the bus")

// tail is the state of ICP_EVENTS a relay session starts from.
type tail struct {
	// Position is the event store position of this service's last event
	// the stream holds (0 when it holds none): the resume point.
	Position uint64
	// Identity is that event's identity as the message states it (zero
	// when Position is 0).
	Identity events.Identity
	// LastSeq is the stream's last sequence number. It can be above the
	// last own message's sequence when strays follow it or messages at the
	// end were deleted; the next publish must expect exactly this value.
	LastSeq uint64
	// Strays counts the messages passed over to find the last own one.
	Strays int
	// Generation is that event's events.HeaderGeneration ("" when it has
	// none: published before generations, or from a store without them).
	Generation string
}

// readTail reads the resume point from the bus itself, never from a
// checkpoint kept elsewhere (which could run ahead of what JetStream really
// kept after a crash): the last message of ICP_EVENTS that carries this
// service's event identity (events.IdentityFromHeaders), looking back past
// others' messages by sequence, at most MaxStrayWalk of them.
//
// It uses nats.go's JetStream API directly: watermill has no way to read a
// stream's state or a message by sequence.
func readTail(ctx context.Context, js jetstream.JetStream) (tail, error) {
	s, err := js.Stream(ctx, events.BusStream)
	if err != nil {
		return tail{}, fmt.Errorf("stream %s: %w", events.BusStream, err)
	}
	st := s.CachedInfo().State
	t := tail{LastSeq: st.LastSeq}
	if st.Msgs == 0 {
		return t, nil
	}
	for seq := st.LastSeq; seq >= st.FirstSeq && seq > 0; seq-- {
		if int(st.LastSeq-seq) >= MaxStrayWalk {
			return tail{}, fmt.Errorf("%w (%d messages up to sequence %d)", ErrTooManyStrays, MaxStrayWalk, st.LastSeq)
		}
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // deleted, or aged out while walking
		}
		if err != nil {
			return tail{}, fmt.Errorf("message %d of %s: %w", seq, events.BusStream, err)
		}
		id, err := events.IdentityFromHeaders(m.Header.Get)
		if err != nil {
			t.Strays++
			continue
		}
		t.Position, t.Identity = id.Position, id
		t.Generation = m.Header.Get(events.HeaderGeneration)
		return t, nil
	}
	return t, nil
}

// BusPosition returns the event store position of the last event of this
// service the bus holds (0 when it holds none): how far the relay has
// published, whichever relay is active. Compared with the store's Head it
// gives the relay's lag.
func BusPosition(ctx context.Context, nc *nats.Conn) (uint64, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, fmt.Errorf("relay: jetstream: %w", err)
	}
	t, err := readTail(ctx, js)
	if err != nil {
		return 0, fmt.Errorf("relay: %w", err)
	}
	return t.Position, nil
}

// CheckAgreement reads the bus tail and the event store as a relay session
// does and returns nil when the bus's last event of this service is the
// store's event at that position (or the bus holds none), an error wrapping
// ErrDiverged when they disagree, and any other error when either could not
// be read.
func CheckAgreement(ctx context.Context, nc *nats.Conn, store events.Store) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("relay: jetstream: %w", err)
	}
	t, err := readTail(ctx, js)
	if err != nil {
		return fmt.Errorf("relay: bus tail: %w", err)
	}
	head, err := store.Head(ctx)
	if err != nil {
		return fmt.Errorf("relay: event store head: %w", err)
	}
	return checkTail(ctx, store, t, head)
}

// Realign purges every message of ICP_EVENTS, for an operator who found the
// bus and the event store disagreeing (ErrDiverged): the relay then finds
// no event of this service on the bus and publishes the store again from
// its start. It returns how many messages were purged. The stream keeps
// its sequence numbers (the next message follows the last purged one), so
// durable consumers go on from where they were and receive every stored
// event again; they skip what they already applied by event id and version.
// Run it with no relay running: a relay that publishes meanwhile would
// only be refused and re-read the tail, but the purge would then also
// remove what it published.
func Realign(ctx context.Context, nc *nats.Conn) (uint64, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, fmt.Errorf("relay: jetstream: %w", err)
	}
	n, err := bus.PurgeEvents(ctx, js)
	if err != nil {
		return 0, fmt.Errorf("relay: %w", err)
	}
	return n, nil
}
