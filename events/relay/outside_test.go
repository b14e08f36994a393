package relay

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/bus"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/sqlitestore"
)

// ownBus returns the messages of ICP_EVENTS that carry this service's event
// identity, in stream order.
func (e *env) ownBus() []busMsg {
	e.t.Helper()
	var out []busMsg
	for _, m := range e.readBus() {
		if _, err := events.IdentityFromHeaders(m.Header.Get); err == nil {
			out = append(out, m)
		}
	}
	return out
}

// assertOwnBusIs checks that this service's messages on ICP_EVENTS are
// exactly want, once each, in store order.
func (e *env) assertOwnBusIs(want []events.Recorded) {
	e.t.Helper()
	got := e.ownBus()
	if len(got) != len(want) {
		e.t.Fatalf("bus holds %d events of this service, want %d; bus positions %v", len(got), len(want), positions(got))
	}
	for i, w := range want {
		if id := got[i].Header.Get(events.HeaderID); id != w.ID {
			e.t.Fatalf("bus event %d is %s (position %s), want %s at position %d", i, id, got[i].Header.Get(events.HeaderPosition), w.ID, w.Position)
		}
	}
}

// publishStray publishes a message with no CloudEvents headers on an event
// subject, as anyone with access to the bus could.
func (e *env) publishStray(subject string, h nats.Header) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := e.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Header: h, Data: []byte(`{"hello":"world"}`)}); err != nil {
		e.t.Fatalf("publish stray: %v", err)
	}
}

func TestStrayMessagesOnTheBusAreSteppedOverAndTheRelayKeepsPublishing(t *testing.T) {
	e := newEnv(t, bus.StreamConfig{})
	ctx := context.Background()
	// A stray is the last message on the bus before the relay ever starts.
	e.publishStray("icp.events.Foo", nil)
	if err := e.appendEvents(ctx, 5); err != nil {
		t.Fatal(err)
	}
	r, _ := e.startRelay(Config{InstanceID: "a"})
	e.waitCaughtUp(waitLong)

	// Strays mid-stream, while creates come in: one with no headers, one
	// that looks like an event of another service, one that claims to be
	// ours with a malformed position.
	wait := e.appendInBackground(150)
	foreign := events.Headers(e.storeEvents()[0])
	foreign[events.HeaderSource] = "/another-service"
	h := nats.Header{}
	for k, v := range foreign {
		h.Set(k, v)
	}
	e.publishStray("icp.events.Foo", nil)
	e.publishStray("icp.events.ICPCreated", h)
	h.Set(events.HeaderSource, events.CloudEventsSource)
	h.Set(events.HeaderPosition, "-1")
	e.publishStray("icp.events.ICPUpdated", h)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	e.waitCaughtUp(waitLong)
	// A stray after the last event: the next create is published at once.
	e.publishStray("icp.events.Foo", nil)
	if err := e.appendEvents(ctx, 1); err != nil {
		t.Fatal(err)
	}
	e.waitCaughtUp(waitLong)

	if err := r.Health(); err != nil {
		t.Fatalf("relay not ready after strays: %v", err)
	}
	e.assertOwnBusIs(e.storeEvents())
	if got := len(e.readBus()) - len(e.ownBus()); got != 5 {
		t.Errorf("bus holds %d other messages, want the 5 strays", got)
	}
}

func TestTooManyStraysAtTheTailAreRefusedNotGuessedPast(t *testing.T) {
	e := newEnv(t, bus.StreamConfig{})
	if err := e.appendEvents(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	_, stop := e.startRelay(Config{InstanceID: "a"})
	e.waitCaughtUp(waitLong)
	_ = stop()
	// Acknowledged publishes: a plain publish may be dropped by a busy
	// server, leaving fewer strays than the walk's bound.
	for range MaxStrayWalk {
		if _, err := e.js.Publish(context.Background(), "icp.events.Foo", nil); err != nil {
			t.Fatal(err)
		}
	}
	r, _ := e.startRelay(Config{InstanceID: "b"})
	eventually(t, waitLong, func() bool { return strings.Contains(r.Stats().LastError, ErrTooManyStrays.Error()) },
		func() string { return "no too-many-strays error: " + r.Stats().LastError })
	if r.Ready() {
		t.Error("a relay that cannot find its resume point reports ready")
	}
}

// copyStore copies the SQLite event store's files (closed) from dir to dst.
func copyStore(t *testing.T, from, to string) {
	t.Helper()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		src, err := os.Open(from + suffix)
		if errors.Is(err, os.ErrNotExist) {
			_ = os.Remove(to + suffix)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.Create(to + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			t.Fatal(err)
		}
		_ = src.Close()
		if err := dst.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *env) reopenStore() {
	e.t.Helper()
	var err error
	e.store, err = sqlitestore.Open(context.Background(), filepath.Join(e.dir, "events.db"), sqlitestore.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
}

func TestEventStoreRestoredFromAnOlderCopyIsRefusedUntilRealigned(t *testing.T) {
	// A short duplicate window: after the realign the relay publishes the
	// same event ids again, which JetStream drops within the window.
	e := newEnv(t, bus.StreamConfig{Duplicates: 200 * time.Millisecond})
	ctx := context.Background()
	db := filepath.Join(e.dir, "events.db")
	backup := filepath.Join(t.TempDir(), "backup.db")
	if err := e.appendEvents(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	copyStore(t, db, backup)
	e.reopenStore()
	if err := e.appendEvents(ctx, 5); err != nil {
		t.Fatal(err)
	}
	_, stop := e.startRelay(Config{InstanceID: "a"})
	e.waitCaughtUp(waitLong)
	_ = stop()
	busBefore := len(e.readBus())

	// Restore the older copy, and record more events than were lost: the
	// store's positions pass the bus's again, with other events.
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	copyStore(t, backup, db)
	e.reopenStore()
	e.icps, e.versions = nil, map[string]uint64{}
	if err := e.appendEvents(ctx, 8); err != nil {
		t.Fatal(err)
	}
	r, stopB := e.startRelay(Config{InstanceID: "b"})
	eventually(t, waitLong, func() bool { return r.Stats().Diverged != "" },
		func() string { return "relay did not report divergence; last error: " + r.Stats().LastError })
	err := r.Health()
	if err == nil || !strings.Contains(err.Error(), RealignCommand) {
		t.Fatalf("health %v, want not ready naming %q", err, RealignCommand)
	}
	if r.Stats().State != StateHalted {
		t.Errorf("state %s, want %s", r.Stats().State, StateHalted)
	}
	if got := len(e.readBus()); got != busBefore {
		t.Fatalf("bus holds %d messages, want the %d it had: a diverged relay published", got, busBefore)
	}

	// Realign: purge the bus; the relay publishes the store from its start.
	_ = stopB()
	if _, err := Realign(ctx, e.nc); err != nil {
		t.Fatal(err)
	}
	r, _ = e.startRelay(Config{InstanceID: "c"})
	e.waitCaughtUp(waitLong)
	e.assertOwnBusIs(e.storeEvents())
	if err := r.Health(); err != nil {
		t.Errorf("relay not ready after realigning: %v", err)
	}
}

// newSmallPayloadEnv is newEnv on a NATS server that accepts messages of at
// most maxPayload bytes.
func newSmallPayloadEnv(t *testing.T, maxPayload int32) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), versions: map[string]uint64{}}
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: filepath.Join(e.dir, "nats"), MaxPayload: maxPayload,
	})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS did not start")
	}
	t.Cleanup(ns.Shutdown)
	e.port = ns.Addr().(*net.TCPAddr).Port
	e.reopenStore()
	t.Cleanup(func() { _ = e.store.Close() })
	e.nc = e.connect("test")
	if e.js, err = jetstream.New(e.nc); err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureStreams(context.Background(), e.nc, bus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	return e
}

// relayRecords returns the records on ICP_RELAY_DLQ.
func (e *env) relayRecords() []passedOver {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, events.RelayDLQStream)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []passedOver
	st := s.CachedInfo().State
	for seq := st.FirstSeq; st.Msgs > 0 && seq <= st.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			e.t.Fatal(err)
		}
		var p passedOver
		if err := json.Unmarshal(m.Data, &p); err != nil {
			e.t.Fatalf("record %q: %v", m.Data, err)
		}
		if m.Header.Get(events.HeaderDLQReason) == "" {
			e.t.Errorf("record at position %d has no %s header", p.Position, events.HeaderDLQReason)
		}
		out = append(out, p)
	}
	return out
}

func TestEventLargerThanTheBusAcceptsIsRecordedAndPassedOver(t *testing.T) {
	const maxPayload = 4096
	e := newSmallPayloadEnv(t, maxPayload)
	ctx := context.Background()
	if err := e.appendEvents(ctx, 3); err != nil {
		t.Fatal(err)
	}
	big := events.Proposed{ID: uuid.NewString(), Type: events.TypeICPCreated, SchemaVersion: 1,
		Data: []byte(`{"name":"` + strings.Repeat("x", 2*maxPayload) + `"}`)}
	stream := events.StreamID(uuid.NewString())
	res, err := e.store.Append(ctx, stream, events.NoStream, []events.Proposed{big})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.appendEvents(ctx, 3); err != nil {
		t.Fatal(err)
	}
	// A bus set up by an earlier release has no record stream: the relay
	// creates it when it first needs it.
	if err := e.js.DeleteStream(ctx, events.RelayDLQStream); err != nil {
		t.Fatal(err)
	}
	r, _ := e.startRelay(Config{InstanceID: "a"})
	e.waitCaughtUp(waitLong)
	// Later events keep flowing.
	if err := e.appendEvents(ctx, 2); err != nil {
		t.Fatal(err)
	}
	e.waitCaughtUp(waitLong)

	var want []events.Recorded
	for _, ev := range e.storeEvents() {
		if ev.ID != big.ID {
			want = append(want, ev)
		}
	}
	e.assertOwnBusIs(want)
	recs := e.relayRecords()
	if len(recs) != 1 {
		t.Fatalf("%d records on %s, want 1: %+v", len(recs), events.RelayDLQStream, recs)
	}
	got := recs[0]
	if got.Kind != PassedOversized || got.ID != big.ID || got.Stream != stream || got.Position != res.Positions[0] || got.Size != len(big.Data) {
		t.Errorf("record %+v, want the oversized event %s of %s at position %d, size %d", got, big.ID, stream, res.Positions[0], len(big.Data))
	}
	if st := r.Stats(); st.PassedOversized != 1 {
		t.Errorf("PassedOversized = %d, want 1", st.PassedOversized)
	}
	if err := r.Health(); err != nil {
		t.Errorf("relay not ready: %v", err)
	}
}

func TestLagIsReadFromTheBusAndTheStore(t *testing.T) {
	e := newEnv(t, bus.StreamConfig{})
	ctx := context.Background()
	if err := e.appendEvents(ctx, 4); err != nil {
		t.Fatal(err)
	}
	r, stop := e.startRelay(Config{InstanceID: "a"})
	e.waitCaughtUp(waitLong)
	_ = stop()
	// The relay stopped: nothing new reaches the bus, and the lag grows
	// with every append, whatever the relay last believed.
	if err := e.appendEvents(ctx, 3); err != nil {
		t.Fatal(err)
	}
	head, err := e.store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	busPos, err := BusPosition(ctx, e.nc)
	if err != nil {
		t.Fatal(err)
	}
	lag, age, err := r.Lag(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if lag != head-busPos || lag == 0 || age <= 0 {
		t.Errorf("lag %d (age %s), want %d positions and a positive age", lag, age, head-busPos)
	}
}

func TestDefaultInstanceIDsDifferBetweenRelaysOfOneHostAndProcess(t *testing.T) {
	e := newEnv(t, bus.StreamConfig{})
	a, err := New(Config{Store: e.store, Conn: e.nc})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{Store: e.store, Conn: e.nc})
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if a.cfg.InstanceID == b.cfg.InstanceID || !strings.HasPrefix(a.cfg.InstanceID, host+"-") {
		t.Errorf("instance ids %q and %q: want distinct, each starting with the hostname", a.cfg.InstanceID, b.cfg.InstanceID)
	}
}
