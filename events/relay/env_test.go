package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/bus"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/sqlitestore"
	"github.com/icpservice/icp/internal/natsserver"
)

// env is a real SQLite event store and a real embedded NATS server with the
// bus streams, plus a connection for the test to look at the bus with.
type env struct {
	t     testing.TB
	dir   string
	port  int
	mu    sync.Mutex
	srv   *natsserver.Server
	store *sqlitestore.Store
	nc    *nats.Conn
	js    jetstream.JetStream

	// streams and versions of the ICPs appended so far (appendEvents).
	icps     []string
	versions map[string]uint64
	n        int
}

func newEnv(t testing.TB, sc bus.StreamConfig) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), versions: map[string]uint64{}}
	srv, err := natsserver.Start(natsserver.Config{StoreDir: filepath.Join(e.dir, "nats")})
	if err != nil {
		t.Fatal(err)
	}
	e.srv, e.port = srv, srv.Port()
	t.Cleanup(func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.srv.Shutdown()
	})
	e.store, err = sqlitestore.Open(context.Background(), filepath.Join(e.dir, "events.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.store.Close() })
	e.nc = e.connect("test")
	if e.js, err = jetstream.New(e.nc); err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureStreams(context.Background(), e.nc, sc); err != nil {
		t.Fatal(err)
	}
	return e
}

// connect opens a connection that keeps reconnecting, quickly, across NATS
// restarts, as a relay's connection should. It is closed at cleanup.
func (e *env) connect(name string) *nats.Conn {
	e.t.Helper()
	nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", e.port),
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(20*time.Millisecond),
		nats.ReconnectJitter(0, 0),
	)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(nc.Close)
	return nc
}

// restartNATS stops the NATS server and starts it again on the same store
// directory and port: JetStream recovers what it had written to disk.
func (e *env) restartNATS() {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.srv.Shutdown()
	srv, err := natsserver.Start(natsserver.Config{StoreDir: filepath.Join(e.dir, "nats"), Port: e.port})
	if err != nil {
		e.t.Fatalf("restart NATS: %v", err)
	}
	e.srv = srv
}

// appendEvents appends n events, one append each, spread over a few ICP
// streams (creates, then updates), with metadata that carries a trace
// parent.
func (e *env) appendEvents(ctx context.Context, n int) error {
	for range n {
		if len(e.icps) < 8 || e.n%3 == 0 {
			e.icps = append(e.icps, uuid.NewString())
		}
		id := e.icps[e.n%len(e.icps)]
		stream := events.StreamID(id)
		v := e.versions[stream]
		typ := events.TypeICPUpdated
		if v == 0 {
			typ = events.TypeICPCreated
		}
		data, _ := json.Marshal(map[string]any{"n": e.n, "name": "ICP " + id, "pad": strings.Repeat("x", 400)})
		meta := events.Metadata{
			Tenant: "tenant-1", UserID: "user-1",
			TraceParent: fmt.Sprintf("00-%032x-%016x-01", e.n+1, e.n+1),
		}
		ev := events.Proposed{ID: uuid.NewString(), Type: typ, SchemaVersion: 1, Data: data, Metadata: meta.Encode()}
		res, err := e.store.Append(ctx, stream, v, []events.Proposed{ev})
		if err != nil {
			return err
		}
		e.versions[stream] = res.Version
		e.n++
	}
	return nil
}

// appendInBackground appends n events while the test goes on; wait returns
// the append error.
func (e *env) appendInBackground(n int) (wait func() error) {
	done := make(chan error, 1)
	go func() { done <- e.appendEvents(context.Background(), n) }()
	return func() error { return <-done }
}

// startRelay runs a relay on its own connection until the test ends (or
// stop is called). stop cancels Run and returns what Run returned.
func (e *env) startRelay(cfg Config) (r *Relay, stop func() error) {
	e.t.Helper()
	if cfg.Conn == nil {
		cfg.Conn = e.connect("relay-" + cfg.InstanceID)
	}
	if cfg.Store == nil {
		cfg.Store = e.store
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(e.t, cfg.InstanceID)
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = time.Second
	}
	if cfg.PublishTimeout == 0 {
		cfg.PublishTimeout = 2 * time.Second
	}
	if cfg.RetryMax == 0 {
		cfg.RetryMax = 200 * time.Millisecond
	}
	r, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
		})
		return runErr
	}
	e.t.Cleanup(func() { _ = stop() })
	return r, stop
}

// busMsg is a message as ICP_EVENTS holds it.
type busMsg struct {
	Seq     uint64
	Subject string
	Header  nats.Header
	Data    []byte
}

// readBus returns every message ICP_EVENTS holds, in stream order.
func (e *env) readBus() []busMsg {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, events.BusStream)
	if err != nil {
		e.t.Fatal(err)
	}
	n := int(s.CachedInfo().State.Msgs)
	out := make([]busMsg, 0, n)
	if n == 0 {
		return out
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		e.t.Fatal(err)
	}
	for len(out) < n {
		batch, err := c.Fetch(n-len(out), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			e.t.Fatal(err)
		}
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err != nil {
				e.t.Fatal(err)
			}
			out = append(out, busMsg{Seq: md.Sequence.Stream, Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
		}
		if err := batch.Error(); err != nil {
			e.t.Fatalf("reading the bus after %d of %d messages: %v", len(out), n, err)
		}
	}
	return out
}

// storeEvents returns the store's whole global log.
func (e *env) storeEvents() []events.Recorded {
	e.t.Helper()
	var out []events.Recorded
	var after uint64
	for {
		recs, err := e.store.ReadAll(context.Background(), after, 1000)
		if err != nil {
			e.t.Fatal(err)
		}
		if len(recs) == 0 {
			return out
		}
		out = append(out, recs...)
		after = recs[len(recs)-1].Position
	}
}

// waitCaughtUp waits until the last event on the bus is the store's last
// event.
func (e *env) waitCaughtUp(timeout time.Duration) {
	e.t.Helper()
	var pos, head uint64
	var err error
	eventually(e.t, timeout, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if head, err = e.store.Head(ctx); err != nil {
			return false
		}
		pos, err = BusPosition(ctx, e.nc)
		return err == nil && pos == head
	}, func() string { return fmt.Sprintf("bus at position %d, store head %d (err %v)", pos, head, err) })
}

// assertBusIsStore checks that ICP_EVENTS holds exactly the store's events,
// once each, in store order, each with the contract's subject, body and
// headers.
func (e *env) assertBusIsStore() {
	e.t.Helper()
	want := e.storeEvents()
	got := e.readBus()
	if len(got) != len(want) {
		e.t.Fatalf("bus holds %d messages, store %d events; bus positions %v", len(got), len(want), positions(got))
	}
	for i, w := range want {
		g := got[i]
		if p := g.Header.Get(events.HeaderPosition); p != fmt.Sprint(w.Position) {
			e.t.Fatalf("bus message %d (seq %d) has position %s, want %d; bus positions %v", i, g.Seq, p, w.Position, positions(got))
		}
		if g.Subject != "icp.events."+w.Type {
			e.t.Errorf("event %d: subject %q, want icp.events.%s", w.Position, g.Subject, w.Type)
		}
		if string(g.Data) != string(w.Data) {
			e.t.Errorf("event %d: body %q, want %q", w.Position, g.Data, w.Data)
		}
		if id := g.Header.Get(nats.MsgIdHdr); id != w.ID {
			e.t.Errorf("event %d: Nats-Msg-Id %q, want %q", w.Position, id, w.ID)
		}
		for k, v := range events.Headers(w) {
			if got := g.Header.Get(k); got != v {
				e.t.Errorf("event %d: header %s = %q, want %q", w.Position, k, got, v)
			}
		}
	}
}

func positions(msgs []busMsg) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.Header.Get(events.HeaderPosition)
	}
	return out
}

// eventually polls cond until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, describe())
		}
		<-tick.C
	}
}

// testLogger logs through t, so a failing test shows what the relay did.
func testLogger(t testing.TB, name string) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})).With("relay", name)
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
