package projector_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/projections"
	"github.com/icpservice/icp/projections/projector"
)

func TestCreatesAreProjectedAndReadable(t *testing.T) {
	e := newEnv(t)
	p := e.start(e.config())
	var ids []string
	for range 20 {
		id := uuid.NewString()
		ids = append(ids, id)
		e.publish(e.create(id))
	}
	for _, id := range ids {
		e.wantFolded(id)
	}
	listed, err := e.rm.List(context.Background(), "org_1", "user_1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != len(ids) {
		t.Fatalf("listed %d ICPs, want %d", len(listed), len(ids))
	}
	for i, v := range listed {
		if v.ID != ids[i] {
			t.Fatalf("list order: got %s at %d, want %s (creation order)", v.ID, i, ids[i])
		}
	}
	e.drained(projector.DefaultDurable)
	if s := p.Stats(); s.Applied != 20 || s.DeadLettered != 0 {
		t.Fatalf("stats = %+v", s)
	}
}

func TestRedeliveredDuplicatesAreNotAppliedTwice(t *testing.T) {
	e := newEnv(t)
	p := e.start(e.config())
	id := uuid.NewString()
	c := e.create(id)
	u := e.update(id, 1, "renamed")
	// One at a time, so that neither is written by the other's gap fill.
	e.publish(c)
	e.waitVersion(id, 1)
	e.publish(u)
	e.waitVersion(id, 2)
	e.drained(projector.DefaultDurable)
	// The same events again, under message ids that dedup does not catch.
	e.publish(c, "again-"+c.ID)
	e.publish(u, "again-"+u.ID)
	e.drained(projector.DefaultDurable)
	if s := p.Stats(); s.Applied != 2 || s.AlreadyApplied != 2 || s.GapFilled != 0 {
		t.Fatalf("stats = %+v, want 2 applied, 2 already applied", s)
	}
	e.wantFolded(id)
}

func TestOutOfOrderDeliveryIsGapFilledFromTheStore(t *testing.T) {
	e := newEnv(t)
	p := e.start(e.config())

	// Version 3 arrives first; version 2 never reaches the bus.
	a := uuid.NewString()
	a1 := e.create(a)
	e.update(a, 1, "a v2", "user_1", "user_2")
	a3 := e.update(a, 2, "a v3")
	e.publish(a3)
	e.wantFolded(a)
	e.publish(a1)

	// Version 1 is missing on the bus but in the store.
	b := uuid.NewString()
	e.create(b)
	b2 := e.update(b, 1, "b v2")
	e.publish(b2)
	e.wantFolded(b)

	e.drained(projector.DefaultDurable)
	if s := p.Stats(); s.Applied != 2 || s.GapFilled != 3 || s.AlreadyApplied != 1 || s.DeadLettered != 0 {
		t.Fatalf("stats = %+v, want 2 applied from the bus and 3 filled from the store", s)
	}
}

func TestDeleteIsNotResurrectedByLateRedelivery(t *testing.T) {
	e := newEnv(t)
	p := e.start(e.config())
	id := uuid.NewString()
	c := e.create(id)
	u := e.update(id, 1, "renamed")
	d := e.delete(id, 2)
	for _, r := range []events.Recorded{c, u, d} {
		e.publish(r)
	}
	if v := e.waitVersion(id, 3); !v.Deleted {
		t.Fatalf("view after delete: %+v", v)
	}
	e.drained(projector.DefaultDurable)
	before := p.Stats().AlreadyApplied
	e.publish(c, "late-"+c.ID)
	e.publish(u, "late-"+u.ID)
	e.drained(projector.DefaultDurable)
	if got := p.Stats().AlreadyApplied - before; got != 2 {
		t.Fatalf("late events counted as already applied: %d, want 2", got)
	}
	v, err := e.rm.Get(context.Background(), id)
	if err != nil || !v.Deleted || v.Version != 3 {
		t.Fatalf("after late redelivery: %+v, %v", v, err)
	}
	listed, err := e.rm.List(context.Background(), "org_1", "user_1", 0, 0)
	if err != nil || len(listed) != 0 {
		t.Fatalf("deleted ICP listed: %v, %v", listed, err)
	}
}

func TestUnknownSchemaVersionIsRetriedNotDeadLettered(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	p := e.start(cfg)
	id := uuid.NewString()
	// Written to the store by a newer release.
	ev, err := events.Encode(uuid.NewString(), domain.ICPCreatedV1{ICP: testICP(id), Tenant: "org_1", CreatedBy: "user_1"}, events.Metadata{})
	if err != nil {
		t.Fatal(err)
	}
	ev.SchemaVersion = 99
	rec := e.appendRaw(id, events.NoStream, ev)
	e.publish(rec)

	eventually(t, "several redeliveries", func() bool { return p.Stats().Retried >= 3 })
	info := e.consumer(projector.DefaultDurable)
	if info.NumAckPending != 1 || info.NumRedelivered != 1 {
		t.Fatalf("consumer: ack pending %d, redelivered %d; want the message kept pending for redelivery",
			info.NumAckPending, info.NumRedelivered)
	}
	if n := e.dlqCount(); n != 0 {
		t.Fatalf("%d messages dead-lettered, want none", n)
	}
	if _, err := e.rm.Get(context.Background(), id); err != projections.ErrNotFound {
		t.Fatalf("Get: %v, want not found", err)
	}
	// Other events are not held up behind it.
	other := uuid.NewString()
	e.publish(e.create(other))
	e.waitVersion(other, 1)
	if s := p.Stats(); s.DeadLettered != 0 {
		t.Fatalf("stats = %+v", s)
	}
}

func TestUndecodableMessagesAreDeadLetteredAndAcked(t *testing.T) {
	e := newEnv(t)
	p := e.start(e.config())

	// Another writer left a payload no release can decode in the store.
	corruptID := uuid.NewString()
	corruptEv, err := events.Encode(uuid.NewString(), domain.ICPCreatedV1{ICP: testICP(corruptID), Tenant: "org_1", CreatedBy: "user_1"}, events.Metadata{})
	if err != nil {
		t.Fatal(err)
	}
	corruptEv.Data = []byte(`{"icp":{"id":`)
	corrupt := e.appendRaw(corruptID, events.NoStream, corruptEv)
	e.publish(corrupt)

	noHeaders := nats.NewMsg(events.Subject(events.TypeICPCreated))
	noHeaders.Header.Set(nats.MsgIdHdr, "no-headers")
	noHeaders.Data = []byte(`{}`)
	if _, err := e.js.PublishMsg(noHeaders); err != nil {
		t.Fatal(err)
	}

	// A stored create in one ICP's stream whose payload names another.
	inStream := uuid.NewString()
	wrongEv, err := events.Encode(uuid.NewString(), domain.ICPCreatedV1{ICP: testICP(uuid.NewString()), Tenant: "org_1", CreatedBy: "user_1"}, events.Metadata{})
	if err != nil {
		t.Fatal(err)
	}
	wrongID := e.appendRaw(inStream, events.NoStream, wrongEv)
	e.publish(wrongID)

	twice := e.create(uuid.NewString())
	m := nats.NewMsg(events.Subject(twice.Type))
	for k, v := range events.Headers(twice) {
		m.Header.Set(k, v)
	}
	m.Header.Add(events.HeaderICPVersion, "2")
	m.Header.Set(nats.MsgIdHdr, twice.ID)
	m.Data = twice.Data
	if _, err := e.js.PublishMsg(m); err != nil {
		t.Fatal(err)
	}

	elsewhere := e.create(uuid.NewString())
	m = nats.NewMsg(events.Subject(elsewhere.Type))
	for k, v := range events.Headers(elsewhere) {
		m.Header.Set(k, v)
	}
	m.Header.Set(events.HeaderSource, "/another-service")
	m.Header.Set(nats.MsgIdHdr, elsewhere.ID)
	m.Data = elsewhere.Data
	if _, err := e.js.PublishMsg(m); err != nil {
		t.Fatal(err)
	}

	eventually(t, "five dead letters", func() bool { return p.Stats().DeadLettered == 5 })
	eventually(t, "originals acked", func() bool { return e.consumer(projector.DefaultDurable).NumAckPending == 0 })
	if n := e.dlqCount(); n != 5 {
		t.Fatalf("%d messages on the dead-letter stream, want 5", n)
	}
	reasons := map[string]string{}
	for seq := uint64(1); seq <= 5; seq++ {
		msg, err := e.js.GetMsg(events.DLQStream, seq)
		if err != nil {
			t.Fatal(err)
		}
		if msg.Subject != events.DLQSubject("projector") {
			t.Fatalf("dead letter on %s", msg.Subject)
		}
		reason := msg.Header.Get(events.HeaderDLQReason)
		if reason == "" {
			t.Fatalf("dead letter %d without a reason: %v", seq, msg.Header)
		}
		if by := msg.Header.Get(events.HeaderDLQBy); by != events.DLQByProjector {
			t.Fatalf("dead letter %d written by %q, want %q", seq, by, events.DLQByProjector)
		}
		reasons[msg.Header.Get(events.HeaderID)] = reason
		if msg.Header.Get(events.HeaderID) == corrupt.ID && string(msg.Data) != string(corrupt.Data) {
			t.Fatalf("dead letter body %q, want the original %q", msg.Data, corrupt.Data)
		}
	}
	for id, want := range map[string]string{corrupt.ID: "corrupt", "": "ce-id", wrongID.ID: "payload id", twice.ID: "2 values", elsewhere.ID: "ce-source"} {
		if !strings.Contains(reasons[id], want) {
			t.Errorf("reason for %q = %q, want it to mention %q", id, reasons[id], want)
		}
	}
	if s := p.Stats(); s.Retried != 0 || s.Applied != 0 {
		t.Fatalf("stats = %+v: dead letters must not be retried or applied", s)
	}
}

func TestGapTheStoreCannotFillIsDeadLetteredAfterRetries(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.MissingEventDeliveries = 3
	p := e.start(cfg)
	// An update on the bus for a stream the store has never seen.
	src := e.create(uuid.NewString())
	ghost := uuid.NewString()
	upd, err := events.Encode(uuid.NewString(), domain.ICPUpdatedV1{ID: ghost, UpdatedAt: domain.NewTime(time.Now()), Changes: domain.ICPChanges{Name: domain.Some("x")}}, events.Metadata{})
	if err != nil {
		t.Fatal(err)
	}
	rec := events.Recorded{ID: upd.ID, Type: upd.Type, SchemaVersion: upd.SchemaVersion, Data: upd.Data,
		StreamID: events.StreamID(ghost), Version: 2, Position: src.Position + 1000, Time: src.Time}
	e.publish(rec)
	eventually(t, "dead-lettered", func() bool { return p.Stats().DeadLettered == 1 })
	if s := p.Stats(); s.Retried != 2 {
		t.Fatalf("stats = %+v, want 2 retries before the dead letter", s)
	}
	msg, err := e.js.GetLastMsg(events.DLQStream, events.DLQSubject("projector"))
	if err != nil {
		t.Fatal(err)
	}
	if r := msg.Header.Get(events.HeaderDLQReason); !strings.Contains(r, "missing") {
		t.Fatalf("reason %q", r)
	}
}

// Stopping mid-stream and starting again applies every event exactly once:
// the read model ends at each stream's length, and the projectors together
// wrote each version once.
func TestRestartMidStreamAppliesEveryEventOnce(t *testing.T) {
	e := newEnv(t)
	const icps = 150
	var ids []string
	for range icps {
		id := uuid.NewString()
		ids = append(ids, id)
		e.publish(e.create(id))
	}
	for _, id := range ids {
		e.publish(e.update(id, 1, "v2"))
	}
	for _, id := range ids {
		e.publish(e.update(id, 2, "v3", "user_1", "user_3"))
	}
	const total = 3 * icps

	cfg := e.config()
	cfg.Concurrency = 4
	// Messages the server had already sent when the drain began reach no
	// handler; they stay pending until AckWait and are then redelivered.
	cfg.AckWait = 2 * time.Second
	first := e.start(cfg)
	defer func() {
		if t.Failed() {
			t.Logf("first projector's stats: %+v", first.Stats())
		}
	}()
	eventually(t, "some progress", func() bool {
		first.failIfReturned(t)
		return first.Stats().Applied >= total/5
	})
	first.stop(t)
	s1 := first.Stats()
	handled1 := s1.Applied + s1.AlreadyApplied
	if handled1 >= total {
		t.Fatalf("the first projector handled everything (%+v): not a mid-stream stop", s1)
	}
	// A graceful stop acks what it handled; what was still on its way to it
	// returns to the consumer after AckWait (no subscriber is left to take a
	// redelivery, so this waits for acks and expiries, not for new work).
	eventually(t, "the first projector's acks", func() bool {
		return e.consumer(projector.DefaultDurable).NumAckPending == 0
	})

	second := e.start(e.config())
	for _, id := range ids {
		e.wantFolded(id)
	}
	e.drained(projector.DefaultDurable)
	s2 := second.Stats()
	if written := s1.Applied + s1.GapFilled + s2.Applied + s2.GapFilled; written != total {
		t.Fatalf("versions written = %d, want %d (first %+v, second %+v)", written, total, s1, s2)
	}
	// The durable consumer resumed where the first stopped: nothing it acked
	// was delivered again.
	if handled2 := s2.Applied + s2.AlreadyApplied; handled1+handled2 != total {
		t.Fatalf("messages handled %d + %d, want %d in all", handled1, handled2, total)
	}
}

// Replicas with the same durable name share the stream; together they write
// each version once. One of them connects by URL and owns its connections.
func TestReplicasShareTheWork(t *testing.T) {
	e := newEnv(t)
	a := e.start(e.config())
	byURL := e.config()
	byURL.Conn, byURL.URL = nil, e.url
	b := e.start(byURL)
	const icps = 100
	var ids []string
	for range icps {
		id := uuid.NewString()
		ids = append(ids, id)
		e.publish(e.create(id))
		e.publish(e.update(id, 1, "v2"))
	}
	for _, id := range ids {
		e.wantFolded(id)
	}
	e.drained(projector.DefaultDurable)
	sa, sb := a.Stats(), b.Stats()
	if written := sa.Applied + sa.GapFilled + sb.Applied + sb.GapFilled; written != 2*icps {
		t.Fatalf("versions written = %d, want %d (a %+v, b %+v)", written, 2*icps, sa, sb)
	}
	if sa.Applied == 0 || sb.Applied == 0 {
		t.Fatalf("one replica did all the work: a %+v, b %+v", sa, sb)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	_, err := projector.New(projector.Config{Durable: "a.b", Concurrency: -1, Linger: -time.Second})
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"Conn or URL", "ReadModel", "Store", "Durable", "Concurrency", "Linger"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

// A lone event is handed to the read model at once, however long the
// linger: holding a batch is only for load.
func TestALoneEventIsNotHeldForTheLinger(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.Linger = time.Second
	e.start(cfg)
	for i := range 3 {
		id := uuid.NewString()
		start := time.Now()
		e.publish(e.create(id))
		e.wantFolded(id)
		if took := time.Since(start); took >= cfg.Linger {
			t.Fatalf("lone event %d took %s to be projected: it was held for the linger", i, took)
		}
	}
}
