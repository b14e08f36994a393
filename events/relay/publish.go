package relay

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/events"
)

// errTailMoved means the stream's last sequence is not the one this relay
// session expected: JetStream lost a tail (a restart after a crash), another
// relay published, or a publish was dropped as a duplicate of a message the
// stream no longer holds. The session must re-read the tail and resume from
// it.
var errTailMoved = errors.New("bus tail is not where this relay left it")

// tailWriter appends events to ICP_EVENTS strictly after a known tail.
//
// Every message carries Nats-Expected-Last-Sequence: the stream sequence it
// must follow. JetStream checks it before storing, so a publish lands only
// directly on top of the message this session last saw there. That makes
// one cheap server-side check catch, on the next publish:
//   - a tail lost by a NATS restart (the stream's last sequence went back);
//   - a second relay publishing (the sequence moved on without us);
//   - a retried publish that had in fact been stored (ditto).
//
// A batch is pipelined with nats.go's PublishMsgAsync and its acks are read
// in order. Every message after the first of a batch also carries
// Nats-Expected-Last-Msg-Id, the id of the event before it in the batch:
// message i is stored only at sequence base+i+1 and only directly on top of
// event i-1. The sequence alone would not do: a message anyone else
// published (a stray) after message i-1 was refused would take sequence
// base+i, and message i would then land on top of the stray with event i-1
// missing from the bus. Whatever fails or times out, this service's events
// on the stream stay the store's events in store order with no hole (less
// the ones passed over with a record, see passedOver), strays aside; the
// session then re-reads the tail from the bus and resumes after what really
// landed. Watermill's publisher is not used here: it
// publishes one message at a time, waits for each ack, and hides the ack's
// sequence and duplicate flag that this check reads. One acknowledged
// publish at a time through watermill drained a backlog several times more
// slowly than the pipelined publishes here (BenchmarkRelayPublish: embedded
// NATS, file store, 600-byte events).
type tailWriter struct {
	js      jetstream.JetStream
	timeout time.Duration
	// lastSeq is the sequence the next publish expects to follow.
	lastSeq uint64
	// generation is the event store's generation, set as
	// events.HeaderGeneration on every message; empty for a store without
	// generations.
	generation string
}

// publishHeaders is how many headers a published event usually carries:
// the eleven of events.EachHeader, the store's generation and JetStream's
// four. An event with trace context (one header more) grows the map once.
const publishHeaders = 16

// errCodeWrongLastMsgID is JetStream's error code for a publish whose
// Nats-Expected-Last-Msg-Id is not the stream's last message id
// (JSStreamWrongLastMsgIDErr); nats.go names no constant for it.
const errCodeWrongLastMsgID jetstream.ErrorCode = 10070

// publishBatch publishes batch in order and returns how many of its first
// events JetStream acknowledged as stored in a row (n), and how many of the
// events after the first failure were stored all the same (later: possible
// only when another relay filled the gap in between, see tailWriter). An
// error wrapping errTailMoved means the stream's last sequence was not the
// expected one (or a message was acknowledged as a duplicate, i.e. not
// stored); any other error means the outcome of the rest is unknown. Either
// way the caller must re-read the tail before publishing again.
func (w *tailWriter) publishBatch(ctx context.Context, batch []events.Recorded) (n, later int, err error) {
	futures := make([]jetstream.PubAckFuture, 0, len(batch))
	var sendErr error
	for i, r := range batch {
		m := &nats.Msg{Subject: events.Subject(r.Type), Header: make(nats.Header, publishHeaders), Data: r.Data}
		// The header values share one backing array: a dozen small
		// allocations less per event.
		vals := make([]string, 0, publishHeaders+1)
		set := func(k, v string) {
			vals = append(vals, v)
			m.Header[k] = vals[len(vals)-1 : len(vals) : len(vals)]
		}
		events.EachHeader(r, set)
		if w.generation != "" {
			set(events.HeaderGeneration, w.generation)
		}
		set(nats.MsgIdHdr, r.ID)
		set(nats.ExpectedStreamHdr, events.BusStream)
		set(nats.ExpectedLastSeqHdr, strconv.FormatUint(w.lastSeq+uint64(i), 10))
		if i > 0 {
			set(jetstream.ExpectedLastMsgIDHeader, batch[i-1].ID)
		}
		f, err := w.js.PublishMsgAsync(m)
		if err != nil {
			sendErr = fmt.Errorf("publish event %s at position %d: %w", r.ID, r.Position, err)
			break
		}
		futures = append(futures, f)
	}
	deadline := time.NewTimer(w.timeout)
	defer deadline.Stop()
	for i, f := range futures {
		r := batch[i]
		select {
		case ack := <-f.Ok():
			if ack.Duplicate || ack.Sequence != w.lastSeq+1 {
				err = fmt.Errorf("%w: event %s at position %d acknowledged at sequence %d (duplicate %t), expected %d", errTailMoved, r.ID, r.Position, ack.Sequence, ack.Duplicate, w.lastSeq+1)
			} else {
				w.lastSeq = ack.Sequence
			}
		case perr := <-f.Err():
			var apiErr *jetstream.APIError
			if errors.As(perr, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
				apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant || apiErr.ErrorCode == errCodeWrongLastMsgID) {
				err = fmt.Errorf("%w: publish of event %s at position %d expected last sequence %d: %w", errTailMoved, r.ID, r.Position, w.lastSeq, perr)
			} else {
				err = fmt.Errorf("publish event %s at position %d: %w", r.ID, r.Position, perr)
			}
		case <-deadline.C:
			err = fmt.Errorf("publish event %s at position %d: no acknowledgement within %s", r.ID, r.Position, w.timeout)
		}
		if err != nil {
			return i, w.landedAfter(futures[i+1:], deadline.C), err
		}
	}
	return len(futures), 0, sendErr
}

// landedAfter counts the futures acknowledged as stored (not duplicates),
// waiting at most until deadline fires.
func (w *tailWriter) landedAfter(futures []jetstream.PubAckFuture, deadline <-chan time.Time) int {
	n := 0
	for _, f := range futures {
		select {
		case ack := <-f.Ok():
			if !ack.Duplicate {
				n++
			}
		case <-f.Err():
		case <-deadline:
			return n
		}
	}
	return n
}
