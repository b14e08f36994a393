package consumer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/bus"
	"github.com/icpservice/icp/bus/bustest"
	"github.com/icpservice/icp/commands"
	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/consumer"
	"github.com/icpservice/icp/events/relay"
	"github.com/icpservice/icp/events/sqlitestore"
	"github.com/icpservice/icp/internal/natsserver"
	"github.com/icpservice/icp/internal/natsserver/natstest"
)

const budget = 30 * time.Second

// env is the real pipeline a worker sees: an SQLite event store, an
// embedded NATS server with the bus streams, and the relay publishing the
// store to the bus.
type env struct {
	t     testing.TB
	dir   string // the data directory: events.db, nats/
	srv   *natsserver.Server
	store *sqlitestore.Store
	cmds  *commands.Handler
	nc    *nats.Conn
	js    jetstream.JetStream
}

var caller = domain.Actor{UserID: "user_worker", Tenant: "org_worker"}

func newEnv(t testing.TB) *env {
	t.Helper()
	dir := t.TempDir()
	srv := natstest.Start(t, dir)
	store, err := sqlitestore.Open(context.Background(), filepath.Join(dir, "events.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	e := &env{t: t, dir: dir, srv: srv, store: store, cmds: commands.NewHandler(store)}
	e.nc = e.connect("test")
	if e.js, err = jetstream.New(e.nc); err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureStreams(context.Background(), e.nc, bus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	r, err := relay.New(relay.Config{Store: store, Conn: e.connect("relay"), InstanceID: "relay-" + uuid.NewString()[:8],
		LeaseTTL: time.Second, RetryMax: 100 * time.Millisecond, Logger: testLogger(t, "relay")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("relay: %v", err)
		}
	})
	return e
}

func (e *env) connect(name string) *nats.Conn {
	e.t.Helper()
	nc, err := nats.Connect(e.srv.ClientURL(), nats.Name(name), nats.MaxReconnects(-1))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(nc.Close)
	return nc
}

func testLogger(t testing.TB, part string) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})).With("part", part)
}

// create records n ICPs through the command handler and returns their
// ICPCreated events as stored, in store order.
func (e *env) create(n int) []events.Recorded {
	e.t.Helper()
	ctx := context.Background()
	var out []events.Recorded
	for i := range n {
		body := fmt.Sprintf(`{"name":"ICP %d","leadProviderCriteria":[{"provider":"baseProvider","type":"company","filters":{"n":%d}}],"leadsPerList":%d}`, i, i, i%50+1)
		cmd, err := commands.ParseCreate([]byte(body), caller.UserID)
		if err != nil {
			e.t.Fatal(err)
		}
		res, err := e.cmds.Create(ctx, caller, cmd, "", commands.RequestMeta{CorrelationID: fmt.Sprintf("req-%d", i)})
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, e.last(res.State.ICP.ID))
	}
	return out
}

// last returns the last stored event of an ICP.
func (e *env) last(id string) events.Recorded {
	e.t.Helper()
	recs, err := e.store.ReadStream(context.Background(), events.StreamID(id), 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return recs[len(recs)-1]
}

// appendRaw appends one event with any payload and schema version, as a
// release with other code (or a bug) could have written it.
func (e *env) appendRaw(id string, expected uint64, typ string, schemaVersion int, data string) events.Recorded {
	e.t.Helper()
	p := events.Proposed{ID: uuid.NewString(), Type: typ, SchemaVersion: schemaVersion, Data: []byte(data),
		Metadata: events.Metadata{Tenant: "org_worker", UserID: "user_worker"}.Encode()}
	if _, err := e.store.Append(context.Background(), events.StreamID(id), expected, []events.Proposed{p}); err != nil {
		e.t.Fatal(err)
	}
	return e.last(id)
}

// waitPublished waits until the relay has put the store's last event on the
// bus.
func (e *env) waitPublished() {
	e.t.Helper()
	ctx := context.Background()
	head, err := e.store.Head(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	eventually(e.t, "the relay to publish the store", func() bool {
		p, err := relay.BusPosition(ctx, e.nc)
		return err == nil && p == head
	})
}

// config is a consumer configuration for tests: fast retries.
func (e *env) config(durable string) consumer.Config {
	return consumer.Config{
		URL:           e.srv.ClientURL(),
		Durable:       durable,
		AckWait:       2 * time.Second,
		RetryDelay:    20 * time.Millisecond,
		MaxRetryDelay: 200 * time.Millisecond,
		Logger:        testLogger(e.t, durable),
	}
}

// running is a consumer whose Run goroutine the test controls.
type running struct {
	*consumer.Consumer
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// start runs c until stop (or the end of the test) and waits until it
// consumes.
func (e *env) start(c *consumer.Consumer) *running {
	e.t.Helper()
	r := &running{Consumer: c}
	r.cancel, r.done = bustest.Start(e.t, "the consumer to be ready", budget, c.Run, c.Ready)
	e.t.Cleanup(func() {
		if err := r.stop(); err != nil {
			e.t.Errorf("Run: %v", err)
		}
	})
	return r
}

// stop cancels Run and returns what it returned.
func (r *running) stop() error {
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(budget):
			r.err = fmt.Errorf("Run did not return within %s of cancel", budget)
		}
	})
	return r.err
}

// durableState returns the durable's state on the server. (nats.go's
// newer jetstream API only looks up pull consumers; the durable is a push
// consumer.)
func (e *env) durableState(durable string) *nats.ConsumerInfo {
	e.t.Helper()
	return e.durableStateOn(events.BusStream, durable)
}

// durableStateOn is durableState for a durable of another stream.
func (e *env) durableStateOn(stream, durable string) *nats.ConsumerInfo {
	e.t.Helper()
	js, err := e.nc.JetStream()
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := js.ConsumerInfo(stream, durable)
	if err != nil {
		e.t.Fatal(err)
	}
	return info
}

// settled waits until the durable has nothing pending, delivered or not:
// every message on the bus was acknowledged, so no further handler call can
// come.
func (e *env) settled(durable string) *nats.ConsumerInfo {
	e.t.Helper()
	return e.settledOn(events.BusStream, durable)
}

// settledOn is settled for a durable of another stream.
func (e *env) settledOn(stream, durable string) *nats.ConsumerInfo {
	e.t.Helper()
	var info *nats.ConsumerInfo
	eventually(e.t, "the durable to acknowledge everything", func() bool {
		info = e.durableStateOn(stream, durable)
		return info.NumPending == 0 && info.NumAckPending == 0
	})
	return info
}

// deadLetters returns the messages on icp.dlq.<durable>.
func (e *env) deadLetters(durable string) []*jetstream.RawStreamMsg {
	e.t.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, events.DLQStream)
	if err != nil {
		e.t.Fatal(err)
	}
	st := s.CachedInfo().State
	var out []*jetstream.RawStreamMsg
	for seq := st.FirstSeq; seq <= st.LastSeq && st.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			e.t.Fatal(err)
		}
		if m.Subject == events.DLQSubject(durable) {
			out = append(out, m)
		}
	}
	return out
}

// recorder collects handler calls.
type recorder struct {
	mu    sync.Mutex
	calls []consumer.Envelope
	names map[string]string // ICP id -> name of its ICPCreated payload
}

// recordCreates registers on c a handler of ICPCreated that records each
// event's envelope and succeeds, and returns what it records into.
func recordCreates(c *consumer.Consumer) *recorder {
	rec := &recorder{}
	c.OnCreated(func(_ context.Context, ev consumer.Event[domain.ICPCreatedV1]) error {
		rec.add(ev.Envelope)
		return nil
	})
	return rec
}

func (r *recorder) add(env consumer.Envelope) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, env)
}

func (r *recorder) snapshot() []consumer.Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

// eventually polls cond until it holds, failing the test after budget.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	bustest.Eventually(t, budget, what, cond)
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func natsMsg(subject string, headers map[string]string, data []byte) *nats.Msg {
	m := nats.NewMsg(subject)
	for k, v := range headers {
		m.Header.Set(k, v)
	}
	m.Data = data
	return m
}

// streamState returns a stream's state on the server.
func (e *env) streamState(name string) jetstream.StreamState {
	e.t.Helper()
	s, err := e.js.Stream(context.Background(), name)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State
}
