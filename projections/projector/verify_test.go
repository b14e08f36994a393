package projector_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/icpservice/icp/bus"
	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/projections"
	"github.com/icpservice/icp/projections/projector"
	"github.com/icpservice/icp/projections/sqlitemodel"
)

// forge publishes, with a plain NATS client as anyone on the bus could, an
// ICPCreated for id that the event store never recorded, with headers that
// look valid: a fresh event id, this service's source, and the given
// position. mutate may change the message before it is sent.
func (e *env) forge(id string, position uint64, mutate ...func(*nats.Msg)) string {
	e.t.Helper()
	icp := testICP(id)
	icp.Name = "Forged"
	icp.UserIDs = []string{"user_1"}
	data, err := events.MarshalJSON(domain.ICPCreatedV1{ICP: icp, Tenant: "org_1", CreatedBy: "user_1"})
	if err != nil {
		e.t.Fatal(err)
	}
	eventID := uuid.NewString()
	m := nats.NewMsg(events.Subject(events.TypeICPCreated))
	for k, v := range events.Headers(events.Recorded{
		ID: eventID, Type: events.TypeICPCreated, SchemaVersion: 1, Data: data,
		StreamID: events.StreamID(id), Version: 1, Position: position, Time: time.Now(),
	}) {
		m.Header.Set(k, v)
	}
	m.Data = data
	for _, f := range mutate {
		f(m)
	}
	// Core NATS, not JetStream: the stream captures the subject all the same.
	plain, err := nats.Connect(e.url)
	if err != nil {
		e.t.Fatal(err)
	}
	defer plain.Close()
	if err := plain.PublishMsg(m); err != nil {
		e.t.Fatal(err)
	}
	if err := plain.Flush(); err != nil {
		e.t.Fatal(err)
	}
	return m.Header.Get(events.HeaderID)
}

// A forged ICPCreated never reaches the read model, whatever position or
// schema version it claims: it is dead-lettered with its reason, and the
// real events around it are applied.
func TestForgedEventIsDeadLetteredNeverApplied(t *testing.T) {
	for _, tc := range []struct {
		name string
		// position the forged message claims, from the store's head
		// before it is sent
		position func(head uint64) uint64
		mutate   []func(*nats.Msg)
		reason   string
	}{
		{"at a real event's position", func(head uint64) uint64 { return head }, nil, "not in the event store"},
		{"at the next event's position", func(head uint64) uint64 { return head + 1 }, nil, "in the event store"},
		{"of a newer schema version", func(head uint64) uint64 { return head }, []func(*nats.Msg){func(m *nats.Msg) {
			m.Header.Set(events.HeaderType, events.CloudEventsType(events.TypeICPCreated, 99))
			m.Header.Set(events.HeaderSchemaVersion, "99")
		}}, "not in the event store"},
		{"past the store's last event", func(head uint64) uint64 { return head + 1_000_000 }, nil, "missing in the event store"},
	} {
		for _, sr := range storeReads {
			t.Run(tc.name+" "+sr.name, func(t *testing.T) { forgedIsDeadLettered(t, sr.wrap, tc.position, tc.mutate, tc.reason) })
		}
	}
}

// forgedIsDeadLettered is one case of TestForgedEventIsDeadLetteredNeverApplied.
func forgedIsDeadLettered(t *testing.T, wrap func(events.Store) events.Store, position func(uint64) uint64, mutate []func(*nats.Msg), reason string) {
	e := newEnv(t)
	cfg := e.config()
	cfg.Store = wrap(cfg.Store)
	cfg.MissingEventDeliveries = 2
	p := e.start(cfg)

	before := uuid.NewString()
	b := e.create(before)
	e.publish(b)
	forged := uuid.NewString()
	forgedEvent := e.forge(forged, position(b.Position), mutate...)
	after := uuid.NewString()
	e.publish(e.create(after))

	e.wantFolded(before)
	e.wantFolded(after)
	var dl *nats.RawStreamMsg
	eventually(t, "the forged message dead-lettered", func() bool {
		dl = e.deadLetters()[forgedEvent]
		return dl != nil
	})
	e.drained(projector.DefaultDurable)
	if r := dl.Header.Get(events.HeaderDLQReason); !strings.Contains(r, reason) {
		t.Fatalf("reason %q, want it to mention %q", r, reason)
	}
	if _, err := e.rm.Get(context.Background(), forged); err != projections.ErrNotFound {
		t.Fatalf("forged ICP in the read model: Get = %v", err)
	}
	listed, err := e.rm.List(context.Background(), "org_1", "user_1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(listed); len(got) != 2 || got[0] != before || got[1] != after {
		t.Fatalf("user_1's list = %v, want only the real %s and %s", got, before, after)
	}
	if s := p.Stats(); s.Applied != 2 || s.DeadLettered != 1 {
		t.Fatalf("stats = %+v, want the 2 real events applied and the forged one dead-lettered", s)
	}
}

// storeReads are the two ways the projector's check reads the event store:
// from the store's memory of this process's latest commits
// (events.RecentReader), and from its file, as after a restart.
var storeReads = []struct {
	name string
	wrap func(events.Store) events.Store
}{
	{"checked from memory", func(s events.Store) events.Store { return s }},
	{"checked from the file", func(s events.Store) events.Store { return fileOnly{s} }},
}

// fileOnly hides the store's memory of its latest commits, so that every
// check reads the file.
type fileOnly struct{ events.Store }

// A forged body under a real event's id and position is never applied: what
// is applied is the store's copy of that event.
func TestForgedPayloadUnderARealEventIDAppliesTheStoresCopy(t *testing.T) {
	for _, sr := range storeReads {
		t.Run(sr.name, func(t *testing.T) { forgedPayloadAppliesTheStoresCopy(t, sr.wrap) })
	}
}

// forgedPayloadAppliesTheStoresCopy is one case of
// TestForgedPayloadUnderARealEventIDAppliesTheStoresCopy.
func forgedPayloadAppliesTheStoresCopy(t *testing.T, wrap func(events.Store) events.Store) {
	e := newEnv(t)
	cfg := e.config()
	cfg.Store = wrap(cfg.Store)
	p := e.start(cfg)
	id := uuid.NewString()
	rec := e.create(id)
	// The forger is first on the bus with the real event's id (the relay's
	// own publish would then be dropped as a duplicate).
	e.forge(id, rec.Position, func(m *nats.Msg) {
		m.Header.Set(events.HeaderID, rec.ID)
		m.Header.Set(nats.MsgIdHdr, rec.ID)
	})
	got := e.waitVersion(id, 1)
	e.wantFolded(id)
	if strings.Contains(string(got.Doc), "Forged") {
		t.Fatalf("the forged body was applied: %s", got.Doc)
	}
	e.drained(projector.DefaultDurable)
	if s := p.Stats(); s.Applied != 1 || s.DeadLettered != 0 {
		t.Fatalf("stats = %+v", s)
	}
}

// A view the read model refuses for good is dead-lettered with the reason,
// once; the other events of its batch are applied; nothing is retried.
func TestViewTheReadModelRefusesIsDeadLetteredAndTheBatchGoesOn(t *testing.T) {
	e := newEnv(t, sqlitemodel.Options{MaxDocBytes: 4 << 10})
	var small []string
	for range 5 {
		id := uuid.NewString()
		small = append(small, id)
		e.publish(e.create(id))
	}
	big := uuid.NewString()
	icp := testICP(big)
	icp.LeadProviderCriteria[0].Filters = json.RawMessage(`{"job_title":["` + strings.Repeat("x", 8<<10) + `"]}`)
	bigRec := e.appendEvent(big, events.NoStream, domain.ICPCreatedV1{ICP: icp, Tenant: "org_1", CreatedBy: "user_1"})
	e.publish(bigRec)
	for range 5 {
		id := uuid.NewString()
		small = append(small, id)
		e.publish(e.create(id))
	}
	// Started after everything is on the bus: the eleven messages come in
	// the same few batches.
	p := e.start(e.config())
	for _, id := range small {
		e.wantFolded(id)
	}
	var dl *nats.RawStreamMsg
	eventually(t, "the refused view dead-lettered", func() bool {
		dl = e.deadLetters()[bigRec.ID]
		return dl != nil
	})
	e.drained(projector.DefaultDurable)
	if r := dl.Header.Get(events.HeaderDLQReason); !strings.Contains(r, "refused") || !strings.Contains(r, "exceeds") {
		t.Fatalf("reason %q, want the read model's refusal", r)
	}
	if _, err := e.rm.Get(context.Background(), big); err != projections.ErrNotFound {
		t.Fatalf("refused ICP: Get = %v, want not found", err)
	}
	if s := p.Stats(); s.Applied != 10 || s.DeadLettered != 1 || s.Retried != 0 {
		t.Fatalf("stats = %+v, want 10 applied, 1 dead-lettered, none retried", s)
	}
	if n := e.dlqCount(); n != 1 {
		t.Fatalf("%d dead letters, want 1", n)
	}
	// The stream is bounded.
	info, err := e.js.StreamInfo(events.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxAge != bus.DLQMaxAge || info.Config.MaxBytes != bus.DLQMaxBytes {
		t.Fatalf("dead-letter stream limits: age %s, bytes %d", info.Config.MaxAge, info.Config.MaxBytes)
	}
}

func ids(vs []projections.View) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.ID
	}
	return out
}
