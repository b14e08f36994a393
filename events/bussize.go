package events

import (
	"math"
	"time"
)

// BusHeaderRoom is the room every bus message keeps, beyond the event's data
// and the headers of EachHeader, for the headers its publishers add: the
// relay's Nats-Msg-Id, Nats-Expected-Stream and Nats-Expected-Last-Sequence,
// a republish's message id, and a dead letter's reason (at most 1 KiB) and
// bookkeeping (consumer, deliveries, stream, sequence, subject, message id).
// TestBusHeaderRoomHoldsEveryPublishersHeaders adds up the largest of them.
const BusHeaderRoom = 4 << 10

// busTimeExample has the width of every ce-time value (TimeLayout is fixed
// width for the years 0001 to 9999).
var busTimeExample = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// BusSize is the size the bus counts against its largest message (NATS
// max_payload: the data plus the encoded header block) for event p once
// recorded at version of stream, with the headers of EachHeader and the
// widest position; without the headers its publishers add (BusHeaderRoom).
// An event with BusSize(...) + BusHeaderRoom <= max_payload can be
// published, republished and dead-lettered.
func BusSize(stream string, version uint64, p Proposed) int {
	r := Recorded{
		ID: p.ID, Type: p.Type, SchemaVersion: p.SchemaVersion, Data: p.Data, Metadata: p.Metadata,
		StreamID: stream, Version: version, Position: math.MaxUint64, Time: busTimeExample,
	}
	// NATS writes headers as "NATS/1.0\r\n", then "Key: value\r\n" for
	// each, then "\r\n".
	n := len("NATS/1.0\r\n") + len("\r\n")
	EachHeader(r, func(k, v string) { n += len(k) + len(": ") + len(v) + len("\r\n") })
	return n + len(p.Data)
}
