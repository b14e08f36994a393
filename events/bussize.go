package events

import (
	"bytes"
	"math"
	"strconv"
	"time"

	"github.com/icpservice/icp/domain"
)

// BusHeaderRoom is the room every bus message keeps, beyond the event's data
// and the headers of EachHeader, for the headers its publishers add: the
// relay's Nats-Msg-Id, Nats-Expected-Stream and Nats-Expected-Last-Sequence,
// a republish's message id, and a dead letter's reason (at most 1 KiB) and
// bookkeeping (consumer, deliveries, stream, sequence, subject, message id).
// TestBusHeaderRoomHoldsEveryPublishersHeaders adds up the largest of them.
const BusHeaderRoom = 4 << 10

// busTimeWidth is the width of every ce-time value (TimeLayout is fixed
// width for the years 0001 to 9999).
var busTimeWidth = len(domain.NewTime(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).String())

// BusSize is the size the bus counts against its largest message (NATS
// max_payload: the data plus the encoded header block) for event p once
// recorded at version of stream, with the headers of EachHeader and the
// widest position; without the headers its publishers add (BusHeaderRoom).
// An event with BusSize(...) + BusHeaderRoom <= max_payload can be
// published, republished and dead-lettered.
//
// It adds up the lengths of EachHeader's values without writing them (the
// command handler sizes every event it records; BenchmarkPrepareCreate), so
// it follows EachHeader header by header: TestBusSizeIsWhatNATSCounts holds
// the two together.
func BusSize(stream string, version uint64, p Proposed) int {
	// NATS writes headers as "NATS/1.0\r\n", then "Key: value\r\n" for
	// each, then "\r\n".
	n := len("NATS/1.0\r\n") + len("\r\n")
	var digits [20]byte
	n += headerLine(HeaderSpecVersion, len("1.0"))
	n += headerLine(HeaderID, len(p.ID))
	n += headerLine(HeaderType, len("icp.")+len(p.Type)+len(".v")+len(strconv.AppendInt(digits[:0], int64(p.SchemaVersion), 10)))
	n += headerLine(HeaderSource, len(CloudEventsSource))
	n += headerLine(HeaderSubject, len(Recorded{StreamID: stream}.ICPID()))
	n += headerLine(HeaderTime, busTimeWidth)
	n += headerLine(HeaderICPVersion, len(strconv.AppendUint(digits[:0], version, 10)))
	n += headerLine(HeaderPosition, len(strconv.AppendUint(digits[:0], math.MaxUint64, 10)))
	n += headerLine(HeaderSchemaVersion, len(strconv.AppendInt(digits[:0], int64(p.SchemaVersion), 10)))
	n += headerLine(HeaderStream, len(stream))
	if len(p.Metadata) > 0 {
		n += headerLine(HeaderMetadata, len(p.Metadata))
		if bytes.Contains(p.Metadata, []byte(`"traceparent"`)) {
			if m, err := DecodeMetadata(p.Metadata); err == nil && m.TraceParent != "" {
				n += headerLine(HeaderTraceParent, len(m.TraceParent))
			}
		}
	}
	return n + len(p.Data)
}

// headerLine is the size of one header line, "Key: value\r\n", whose value
// is n bytes long.
func headerLine(key string, n int) int { return len(key) + len(": ") + n + len("\r\n") }
