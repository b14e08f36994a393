package relay

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/bus"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/sqlitestore"
)

const waitLong = 30 * time.Second

func TestEveryStoredEventIsPublishedOnceInStoreOrderWithContractHeaders(t *testing.T) {
	e := newEnv(t, bus.StreamConfig{})
	ctx := context.Background()
	if err := e.appendEvents(ctx, 60); err != nil {
		t.Fatal(err)
	}
	r, _ := e.startRelay(Config{InstanceID: "a", BatchSize: 16})
	if err := e.appendEvents(ctx, 60); err != nil { // while it runs
		t.Fatal(err)
	}
	e.waitCaughtUp(waitLong)
	e.assertBusIsStore()

	msgs := e.readBus()
	first := msgs[0].Header
	for _, h := range []string{"ce-specversion", "ce-id", "ce-type", "ce-source", "ce-subject", "ce-time", "ce-icpversion", "ce-icpposition", "Nats-Msg-Id", "traceparent"} {
		if first.Get(h) == "" {
			t.Errorf("header %s missing", h)
		}
	}
	if got := first.Get("ce-type"); got != "icp.ICPCreated.v1" {
		t.Errorf("ce-type = %q, want icp.ICPCreated.v1", got)
	}
	// What a consumer rebuilds from the message is the stored event.
	want := e.storeEvents()
	for i, m := range msgs {
		rec, err := events.FromHeaders(m.Header.Get, m.Data)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if rec.ID != want[i].ID || rec.Position != want[i].Position || rec.Version != want[i].Version || rec.StreamID != want[i].StreamID {
			t.Fatalf("message %d decodes to %+v, want %+v", i, rec, want[i])
		}
	}

	st := r.Stats()
	if !st.Active || st.LastPosition != want[len(want)-1].Position || st.Published != uint64(len(want)) {
		t.Errorf("stats %+v, want active, last position %d, %d published", st, want[len(want)-1].Position, len(want))
	}
	if !r.Ready() {
		t.Error("an active relay is not ready")
	}
}

func TestRestartMidStreamLeavesNoDuplicateAndNoGap(t *testing.T) {
	e := newEnv(t, bus.StreamConfig{})
	wait := e.appendInBackground(200)
	r1, stop1 := e.startRelay(Config{InstanceID: "first", BatchSize: 8})
	eventually(t, waitLong, func() bool { return r1.Stats().Published >= 40 }, func() string { return "first relay published fewer than 40" })
	if err := stop1(); err != nil {
		t.Fatalf("graceful stop returned %v", err)
	}
	if s := r1.Stats().State; s != StateStopped {
		t.Errorf("state after Run returned: %s", s)
	}
	r2, _ := e.startRelay(Config{InstanceID: "second", BatchSize: 8})
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	e.waitCaughtUp(waitLong)
	e.assertBusIsStore()
	// The second relay resumed exactly after the first: nothing was
	// published twice (not even a duplicate that dedup dropped).
	if sum := r1.Stats().Published + r2.Stats().Published; sum != 200 {
		t.Errorf("relays published %d + %d events, want 200 in total", r1.Stats().Published, r2.Stats().Published)
	}
}

// deleteTail removes the last k messages ICP_EVENTS holds, as a NATS crash
// that lost its unsynced tail would.
func (e *env) deleteTail(k int) {
	e.t.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, events.BusStream)
	if err != nil {
		e.t.Fatal(err)
	}
	for seq := s.CachedInfo().State.LastSeq; k > 0 && seq > 0; seq-- {
		if _, err := s.GetMsg(ctx, seq); errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // deleted before
		}
		if err := s.DeleteMsg(ctx, seq); err != nil {
			e.t.Fatal(err)
		}
		k--
	}
}

func TestTailLostInANATSCrashIsRepublishedInOrder(t *testing.T) {
	e := newEnv(t, bus.StreamConfig{})
	ctx := context.Background()
	if err := e.appendEvents(ctx, 40); err != nil {
		t.Fatal(err)
	}
	_, stop := e.startRelay(Config{InstanceID: "a"})
	e.waitCaughtUp(waitLong)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// NATS comes back from a crash without its last 10 messages.
	e.deleteTail(10)
	e.restartNATS()
	if got := len(e.readBus()); got != 30 {
		t.Fatalf("bus holds %d messages after losing its tail, want 30", got)
	}
	if err := e.appendEvents(ctx, 5); err != nil {
		t.Fatal(err)
	}
	r, _ := e.startRelay(Config{InstanceID: "b"})
	e.waitCaughtUp(waitLong)
	e.assertBusIsStore()
	if got := r.Stats().Published; got != 15 {
		t.Errorf("published %d events after the crash, want the 10 lost and the 5 new", got)
	}
}

// Without a NATS restart JetStream still remembers the ids of the deleted
// messages inside the Duplicates window, and acknowledges their re-publish as
// duplicates without storing them. The relay must notice and retry until the
// window has passed, not leave a hole.
func TestTailRemovedInsideTheDuplicatesWindowIsStillRepublished(t *testing.T) {
	e := newEnv(t, bus.StreamConfig{Duplicates: 500 * time.Millisecond})
	ctx := context.Background()
	if err := e.appendEvents(ctx, 20); err != nil {
		t.Fatal(err)
	}
	_, stop := e.startRelay(Config{InstanceID: "a"})
	e.waitCaughtUp(waitLong)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	e.deleteTail(1) // the last one: no later publish would reveal the hole
	_, stop = e.startRelay(Config{InstanceID: "b"})
	e.waitCaughtUp(waitLong)
	e.assertBusIsStore()
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	e.deleteTail(3) // then events follow in the same batches
	if err := e.appendEvents(ctx, 2); err != nil {
		t.Fatal(err)
	}
	e.startRelay(Config{InstanceID: "c"})
	e.waitCaughtUp(waitLong)
	e.assertBusIsStore()
}

func TestRelayRidesThroughANATSRestart(t *testing.T) {
	e := newEnv(t, bus.StreamConfig{})
	wait := e.appendInBackground(200)
	// A publish in flight when the server goes down gets no answer; the
	// relay notices at its timeout, kept short here.
	r, _ := e.startRelay(Config{InstanceID: "a", BatchSize: 8, PublishTimeout: 500 * time.Millisecond})
	eventually(t, waitLong, func() bool { return r.Stats().Published >= 40 }, func() string { return "fewer than 40 published" })
	sessions := r.Stats().Sessions
	e.restartNATS()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	e.waitCaughtUp(waitLong)
	e.assertBusIsStore()
	if r.Stats().Sessions == sessions {
		t.Error("the relay did not re-read the bus tail after NATS restarted")
	}
	eventually(t, waitLong, r.Ready, func() string { return "relay not ready after NATS restart" })
}

func TestOneActiveRelayAndASpareThatTakesOverAfterACrash(t *testing.T) {
	e := newEnv(t, bus.StreamConfig{})
	const ttl = time.Second
	connA := e.connect("relay-a")
	a, stopA := e.startRelay(Config{InstanceID: "a", LeaseTTL: ttl, Conn: connA, BatchSize: 8})
	eventually(t, waitLong, func() bool { return a.Stats().Active }, func() string { return "first relay never active" })
	b, _ := e.startRelay(Config{InstanceID: "b", LeaseTTL: ttl, BatchSize: 8})
	eventually(t, waitLong, func() bool { return b.Stats().State == StateSpare }, func() string { return "second relay never a spare" })
	if !b.Ready() {
		t.Error("a healthy spare is not ready")
	}

	wait := e.appendInBackground(120)
	eventually(t, waitLong, func() bool { return a.Stats().Published >= 30 }, func() string { return "active relay published fewer than 40" })
	if got := b.Stats().Published; got != 0 {
		t.Errorf("the spare published %d events while the other relay was active", got)
	}
	// Crash: the process dies with its connection; the lease is not released.
	connA.Close()
	crashed := time.Now()
	if b.Stats().Active {
		t.Fatal("the spare took over before the lease expired")
	}
	tookOver := make(chan time.Duration, 1)
	go func() {
		for !b.Stats().Active {
			time.Sleep(5 * time.Millisecond) // polling interval of the observer
		}
		tookOver <- time.Since(crashed)
	}()
	_ = stopA()
	select {
	case took := <-tookOver:
		// The lease was last renewed at most a third of its TTL before
		// the crash, so the spare cannot take over sooner than this.
		if took < ttl/2 {
			t.Errorf("the spare took over %s after the crash, before the lease could expire", took)
		}
	case <-time.After(waitLong):
		t.Fatal("the spare never took over")
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	e.waitCaughtUp(waitLong)
	e.assertBusIsStore()
	if b.Stats().Published == 0 {
		t.Error("the spare published nothing after taking over")
	}
}

func TestRelayThatLosesItsLeaseStopsPublishing(t *testing.T) {
	e := newEnv(t, bus.StreamConfig{})
	ctx := context.Background()
	a, _ := e.startRelay(Config{InstanceID: "a", LeaseTTL: time.Second})
	eventually(t, waitLong, func() bool { return a.Stats().Active }, func() string { return "relay never active" })
	kv, err := e.js.KeyValue(ctx, DefaultLeaseBucket)
	if err != nil {
		t.Fatal(err)
	}
	// Another relay (unseen here) takes the lease, as after a partition.
	if _, err := kv.Put(ctx, LeaseKey, []byte("intruder")); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitLong, func() bool { return a.Stats().State == StateSpare }, func() string { return "relay kept publishing without the lease: " + string(a.Stats().State) })
	published := a.Stats().Published
	if err := e.appendEvents(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if got := a.Stats().Published; got != published {
		t.Fatalf("a spare published %d events", got-published)
	}
	// The intruder's lease ends (it expires, or here: is released).
	if err := kv.Delete(ctx, LeaseKey); err != nil {
		t.Fatal(err)
	}
	e.waitCaughtUp(waitLong)
	e.assertBusIsStore()
}

func TestGracefulStopHandsTheLeaseOverAtOnce(t *testing.T) {
	e := newEnv(t, bus.StreamConfig{})
	const ttl = 30 * time.Second // far longer than the test may wait
	a, stopA := e.startRelay(Config{InstanceID: "a", LeaseTTL: ttl})
	eventually(t, waitLong, func() bool { return a.Stats().Active }, func() string { return "first relay never active" })
	b, _ := e.startRelay(Config{InstanceID: "b", LeaseTTL: ttl})
	eventually(t, waitLong, func() bool { return b.Stats().State == StateSpare }, func() string { return "second relay never a spare" })
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool { return b.Stats().Active }, func() string { return "the spare did not take the released lease" })
	if err := e.appendEvents(context.Background(), 10); err != nil {
		t.Fatal(err)
	}
	e.waitCaughtUp(waitLong)
	e.assertBusIsStore()
}

func TestRestartedRelayRetakesItsOwnLeaseWithoutWaitingForTheTTL(t *testing.T) {
	e := newEnv(t, bus.StreamConfig{})
	const ttl = 30 * time.Second
	conn := e.connect("relay-a")
	a, stop := e.startRelay(Config{InstanceID: "a", LeaseTTL: ttl, Conn: conn})
	eventually(t, waitLong, func() bool { return a.Stats().Active }, func() string { return "relay never active" })
	conn.Close() // crash, lease kept
	_ = stop()
	a2, _ := e.startRelay(Config{InstanceID: "a", LeaseTTL: ttl})
	eventually(t, 10*time.Second, func() bool { return a2.Stats().Active }, func() string { return "restarted relay did not retake its lease" })
}

// The lease keeps relays from contending; order does not depend on it. Two
// relays that both believe they are active (here: different lease buckets)
// still leave the stream in store order, without duplicates.
func TestTwoActiveRelaysStillKeepStoreOrder(t *testing.T) {
	e := newEnv(t, bus.StreamConfig{})
	wait := e.appendInBackground(150)
	a, _ := e.startRelay(Config{InstanceID: "a", LeaseBucket: "LEASE_A", BatchSize: 4})
	b, _ := e.startRelay(Config{InstanceID: "b", LeaseBucket: "LEASE_B", BatchSize: 4})
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	e.waitCaughtUp(waitLong)
	e.assertBusIsStore()
	if a.Stats().Published+b.Stats().Published < 150 {
		t.Errorf("relays published %d + %d events, fewer than the 150 stored", a.Stats().Published, b.Stats().Published)
	}
}

func TestRelayRecreatesAStreamTheBusLost(t *testing.T) {
	e := newEnv(t, bus.StreamConfig{})
	ctx := context.Background()
	if err := e.appendEvents(ctx, 10); err != nil {
		t.Fatal(err)
	}
	_, stop := e.startRelay(Config{InstanceID: "a"})
	e.waitCaughtUp(waitLong)
	_ = stop()
	if err := e.js.DeleteStream(ctx, events.BusStream); err != nil {
		t.Fatal(err)
	}
	e.startRelay(Config{InstanceID: "a"})
	e.waitCaughtUp(waitLong)
	e.assertBusIsStore()
}

func TestRelayRefusesABusAheadOfTheStore(t *testing.T) {
	e := newEnv(t, bus.StreamConfig{})
	if err := e.appendEvents(context.Background(), 5); err != nil {
		t.Fatal(err)
	}
	_, stop := e.startRelay(Config{InstanceID: "a"})
	e.waitCaughtUp(waitLong)
	_ = stop()

	// The same bus, but an empty event store (e.g. the wrong data dir).
	other, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "other.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	r, err := New(Config{Store: other, Conn: e.connect("relay-b"), Logger: testLogger(t, "b"), LeaseTTL: time.Second, RetryMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	eventually(t, waitLong, func() bool { return strings.Contains(r.Stats().LastError, ErrBusAhead.Error()) },
		func() string { return "no bus-ahead error: " + r.Stats().LastError })
	if r.Ready() {
		t.Error("a relay that refuses to publish reports ready")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v", err)
	}
	if got := len(e.readBus()); got != 5 {
		t.Errorf("bus holds %d messages, want the 5 it had", got)
	}
}

func TestRunStopsWhenTheConnectionIsClosed(t *testing.T) {
	e := newEnv(t, bus.StreamConfig{})
	conn := e.connect("relay")
	r, err := New(Config{Store: e.store, Conn: conn, Logger: testLogger(t, "a"), LeaseTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if err := r.Run(context.Background()); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("Run on a closed connection returned %v, want ErrConnClosed", err)
	}
}

func TestConfigValidationReportsEveryProblem(t *testing.T) {
	_, err := New(Config{BatchSize: -1, LeaseTTL: time.Millisecond, LeaseBucket: "bad.name", PublishTimeout: -1, RetryMax: -1})
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"Store", "Conn", "BatchSize", "LeaseTTL", "LeaseBucket", "PublishTimeout", "RetryMax"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
}

// A size-bounded ICP_EVENTS drops its oldest messages, never the newest: the
// relay's resume point stays on the bus, and a relay started later publishes
// only what is new.
func TestSizeBoundedStreamKeepsTheResumePoint(t *testing.T) {
	e := newEnv(t, bus.StreamConfig{MaxBytes: bus.MinMaxBytes})
	ctx := context.Background()
	// About 0.7 KB per message: more than the bound holds.
	if err := e.appendEvents(ctx, 2000); err != nil {
		t.Fatal(err)
	}
	_, stop := e.startRelay(Config{InstanceID: "first", BatchSize: 64})
	e.waitCaughtUp(waitLong)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	s, err := e.js.Stream(ctx, events.BusStream)
	if err != nil {
		t.Fatal(err)
	}
	st := s.CachedInfo().State
	if st.Bytes > uint64(bus.MinMaxBytes) || st.FirstSeq <= 1 || st.LastSeq != 2000 || st.Msgs == 0 {
		t.Fatalf("stream state %+v: want at most %d bytes, the oldest messages dropped, the last (2000) kept", st, bus.MinMaxBytes)
	}

	if err := e.appendEvents(ctx, 10); err != nil {
		t.Fatal(err)
	}
	r, _ := e.startRelay(Config{InstanceID: "second", BatchSize: 64})
	e.waitCaughtUp(waitLong)
	if got := r.Stats().Published; got != 10 {
		t.Errorf("the relay started on a trimmed stream published %d events, want the 10 new ones", got)
	}
}
