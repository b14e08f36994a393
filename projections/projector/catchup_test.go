package projector_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/projections"
	"github.com/icpservice/icp/projections/projector"
)

// purgeBelow makes the bus stream drop every message before seq, as
// retention (MaxAge, MaxMsgs) does with the oldest ones.
func (e *env) purgeBelow(seq uint64) {
	e.t.Helper()
	if err := e.js.PurgeStream(events.BusStream, &nats.StreamPurgeRequest{Sequence: seq}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) lastSeq() uint64 {
	e.t.Helper()
	info, err := e.js.StreamInfo(events.BusStream)
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.LastSeq
}

// A projector that was down while the stream dropped events it never got
// reads them from the event store when it returns: every ICP ends at its
// latest version, each missed event is written once, and the rest comes
// from the bus as usual.
func TestDownLongerThanRetentionCatchesUpFromTheStore(t *testing.T) {
	e := newEnv(t)
	var early []string
	for range 4 {
		id := uuid.NewString()
		early = append(early, id)
		e.publish(e.create(id))
	}
	first := e.start(e.config())
	for _, id := range early {
		e.wantFolded(id)
	}
	e.drained(projector.DefaultDurable)
	first.stop(t)
	stoppedAt := e.lastSeq()

	// While the projector is down: an update of every early ICP, and new
	// ICPs, of which the stream then drops the oldest five messages.
	for _, id := range early {
		e.publish(e.update(id, 1, "v2"))
	}
	var late []string
	for range 3 {
		id := uuid.NewString()
		late = append(late, id)
		e.publish(e.create(id))
	}
	e.publish(e.update(early[0], 2, "v3", "user_1", "user_2"))
	const dropped = 5 // the four v2 updates and the first late create
	e.purgeBelow(stoppedAt + dropped + 1)
	// More events after the loss.
	c := uuid.NewString()
	e.publish(e.create(c))
	e.publish(e.update(late[1], 1, "v2"))
	const onBus = 3 + 2 // what the stream still holds for the projector

	second := e.start(e.config())
	for _, id := range append(append(early, late...), c) {
		e.wantFolded(id)
	}
	e.drained(projector.DefaultDurable)
	s := second.Stats()
	if s.CaughtUpFromStore != dropped || s.CatchUps != 1 {
		t.Fatalf("caught up %d events in %d catch-ups, want %d in 1 (%+v)", s.CaughtUpFromStore, s.CatchUps, dropped, s)
	}
	if s.Applied+s.GapFilled != onBus || s.CatchUpSkipped != 0 {
		t.Fatalf("bus events written %d, want %d (%+v)", s.Applied+s.GapFilled, onBus, s)
	}
	if n := e.dlqCount(); n != 0 {
		t.Fatalf("%d dead letters", n)
	}
	second.stop(t)

	// The gap is closed: a third start finds nothing to catch up.
	third := e.start(e.config())
	third.stop(t)
	if s := third.Stats(); s.CatchUps != 0 || s.CaughtUpFromStore+s.CatchUpAlreadyApplied != 0 {
		t.Fatalf("third start caught up again: %+v", s)
	}
}

// A durable that never recorded a watermark (a new projector, or one of an
// earlier release) on a stream that no longer starts at the beginning reads
// everything before the stream's first message from the store.
func TestNewDurableOnATrimmedStreamReadsTheHistoryFromTheStore(t *testing.T) {
	e := newEnv(t)
	var ids []string
	for range 5 {
		id := uuid.NewString()
		ids = append(ids, id)
		e.publish(e.create(id))
	}
	e.publish(e.update(ids[4], 1, "v2"))
	e.purgeBelow(4) // drops the first three creates

	p := e.start(e.config())
	for _, id := range ids {
		e.wantFolded(id)
	}
	e.drained(projector.DefaultDurable)
	if s := p.Stats(); s.CaughtUpFromStore != 3 || s.Applied != 3 {
		t.Fatalf("caught up %d, applied %d from the bus; want 3 and 3 (%+v)", s.CaughtUpFromStore, s.Applied, s)
	}
}

// A gap longer than one page is read and written a page at a time; updates
// in a later page fold onto views an earlier page wrote.
func TestCatchUpSpansPages(t *testing.T) {
	e := newEnv(t)
	var ids []string
	for range 520 {
		id := uuid.NewString()
		ids = append(ids, id)
		e.publish(e.create(id))
	}
	for _, id := range ids[:10] {
		e.publish(e.update(id, 1, "v2"))
	}
	e.publish(e.update(ids[0], 2, "v3"))
	last := e.lastSeq()
	e.purgeBelow(last) // keeps only the last update

	p := e.start(e.config())
	for _, id := range ids {
		e.wantFolded(id)
	}
	e.drained(projector.DefaultDurable)
	if s := p.Stats(); s.CaughtUpFromStore != last-1 || s.Applied != 1 || s.CatchUps != 1 {
		t.Fatalf("caught up %d, applied %d from the bus; want %d and 1 (%+v)", s.CaughtUpFromStore, s.Applied, last-1, s)
	}
}

// A stored event no release can decode does not stop the catch-up: it is
// counted and logged, the events around it are applied, and the gap closes.
func TestCatchUpSkipsWhatCanNeverBeApplied(t *testing.T) {
	e := newEnv(t)
	a, b := uuid.NewString(), uuid.NewString()
	e.publish(e.create(a))
	broken := e.appendRaw(uuid.NewString(), events.NoStream, events.Proposed{ID: uuid.NewString(), Type: events.TypeICPCreated,
		SchemaVersion: 1, Data: []byte(`{"icp":`), Metadata: events.Metadata{Tenant: "org_1", UserID: "user_1"}.Encode()})
	e.publish(broken)
	e.publish(e.create(b))
	e.publish(e.update(a, 1, "v2"))
	e.purgeBelow(e.lastSeq())

	p := e.start(e.config())
	e.wantFolded(a)
	e.wantFolded(b)
	e.drained(projector.DefaultDurable)
	if s := p.Stats(); s.CaughtUpFromStore != 2 || s.CatchUpSkipped != 1 || s.CatchUps != 1 || s.Applied != 1 {
		t.Fatalf("stats %+v: want 2 caught up, 1 skipped, 1 catch-up, 1 applied from the bus", s)
	}
	if _, err := e.rm.Get(context.Background(), broken.ICPID()); !errors.Is(err, projections.ErrNotFound) {
		t.Fatalf("the undecodable event reached the read model: %v", err)
	}
}
