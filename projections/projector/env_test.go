package projector_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/icpservice/icp/bus/bustest"
	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/sqlitestore"
	"github.com/icpservice/icp/internal/natsserver/natstest"
	"github.com/icpservice/icp/projections"
	"github.com/icpservice/icp/projections/projector"
	"github.com/icpservice/icp/projections/sqlitemodel"
)

const budget = 20 * time.Second

// env is one embedded NATS server with the event stream, an event store and
// a read model, all real, in t.TempDir().
type env struct {
	t     testing.TB
	url   string
	nc    *nats.Conn
	js    nats.JetStreamContext
	store *sqlitestore.Store
	rm    *sqlitemodel.Model
}

// newEnv starts the environment; opts, when given, configure the read model.
func newEnv(t testing.TB, opts ...sqlitemodel.Options) *env {
	t.Helper()
	dir := t.TempDir()
	srv := natstest.Start(t, dir)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := nc.JetStream(nats.PublishAsyncMaxPending(4096))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.AddStream(&nats.StreamConfig{
		Name:       events.BusStream,
		Subjects:   []string{events.BusSubjects},
		Storage:    nats.FileStorage,
		Duplicates: 2 * time.Minute,
	}); err != nil {
		t.Fatal(err)
	}
	store, err := sqlitestore.Open(context.Background(), filepath.Join(dir, "events.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	var rmOpts sqlitemodel.Options
	if len(opts) > 0 {
		rmOpts = opts[0]
	}
	rm, err := sqlitemodel.Open(context.Background(), filepath.Join(dir, "rm.db"), rmOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rm.Close() })
	return &env{t: t, url: srv.ClientURL(), nc: nc, js: js, store: store, rm: rm}
}

func (e *env) config() projector.Config {
	return projector.Config{
		Conn:          e.nc,
		ReadModel:     e.rm,
		Store:         e.store,
		Concurrency:   16,
		AckWait:       5 * time.Second,
		RetryDelay:    20 * time.Millisecond,
		MaxRetryDelay: 100 * time.Millisecond,
		// Warnings and errors go to the test's output, shown when it fails.
		Logger: slog.New(slog.NewTextHandler(e.t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

// running is a projector whose Run goroutine the test controls.
type running struct {
	*projector.Projector
	cancel context.CancelFunc
	done   chan error
}

// start runs a projector until stop (or the end of the test).
func (e *env) start(cfg projector.Config) *running {
	e.t.Helper()
	p, err := projector.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	r := &running{Projector: p}
	r.cancel, r.done = bustest.Start(e.t, "projector ready", budget, p.Run, p.Ready)
	e.t.Cleanup(func() { r.stop(e.t) })
	return r
}

// failIfReturned fails the test when Run has returned by itself: a stalled
// projector then says why instead of timing out.
func (r *running) failIfReturned(t testing.TB) {
	t.Helper()
	select {
	case err := <-r.done:
		close(r.done)
		t.Fatalf("Run returned while the test still needed it: %v", err)
	default:
	}
}

// stop cancels Run and waits for its graceful return.
func (r *running) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok && err != nil {
			t.Errorf("Run: %v", err)
		}
		if ok {
			close(r.done)
		}
	case <-time.After(budget):
		t.Fatal("Run did not return after cancel")
	}
}

// eventually polls cond until it holds, failing the test after budget.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	bustest.Eventually(t, budget, what, cond)
}

func testICP(id string) domain.ICP {
	now := domain.NewTime(time.Now())
	return domain.ICP{
		ID: id, Name: "DACH Tech Leaders", CreatedAt: now, UpdatedAt: now,
		LeadProviderCriteria: []domain.LeadProviderCriterion{{
			Provider: "baseProvider",
			Filters:  json.RawMessage(`{"job_title":["CTO"],"location.country":["Germany"],"$n":12345678901234567890}`),
		}},
		CustomFilterCriteria: []domain.CustomFilter{{Type: "maxPeoplePerCompany", Value: json.RawMessage(`2`)}},
		UserIDs:              []string{"user_1"},
		LeadsPerList:         10,
	}
}

// appendEvent appends one event to the ICP's stream in the store and
// returns it as recorded.
func (e *env) appendEvent(id string, expected uint64, payload any) events.Recorded {
	e.t.Helper()
	p, err := events.Encode(uuid.NewString(), payload, events.Metadata{Tenant: "org_1", UserID: "user_1"})
	if err != nil {
		e.t.Fatal(err)
	}
	return e.appendRaw(id, expected, p)
}

// appendRaw appends p as it is, as another writer of the store might.
func (e *env) appendRaw(id string, expected uint64, p events.Proposed) events.Recorded {
	e.t.Helper()
	ctx := context.Background()
	res, err := e.store.Append(ctx, events.StreamID(id), expected, []events.Proposed{p})
	if err != nil {
		e.t.Fatal(err)
	}
	recs, err := e.store.ReadStream(ctx, events.StreamID(id), res.Version)
	if err != nil || len(recs) != 1 {
		e.t.Fatalf("ReadStream: %v, %d events", err, len(recs))
	}
	return recs[0]
}

func (e *env) create(id string) events.Recorded {
	return e.appendEvent(id, events.NoStream, domain.ICPCreatedV1{ICP: testICP(id), Tenant: "org_1", CreatedBy: "user_1"})
}

func (e *env) update(id string, expected uint64, name string, users ...string) events.Recorded {
	ch := domain.ICPChanges{Name: domain.Some(name)}
	if len(users) > 0 {
		ch.UserIDs = domain.Some(users)
	}
	return e.appendEvent(id, expected, domain.ICPUpdatedV1{ID: id, UpdatedAt: domain.NewTime(time.Now()), UpdatedBy: "user_1", Changes: ch})
}

func (e *env) delete(id string, expected uint64) events.Recorded {
	return e.appendEvent(id, expected, domain.ICPDeletedV1{ID: id, DeletedAt: domain.NewTime(time.Now()), DeletedBy: "user_1"})
}

// publish puts rec on the bus as the relay does; msgID overrides the
// Nats-Msg-Id (a redelivery by another path that dedup does not catch).
func (e *env) publish(rec events.Recorded, msgID ...string) {
	e.t.Helper()
	m := nats.NewMsg(events.Subject(rec.Type))
	for k, v := range events.Headers(rec) {
		m.Header.Set(k, v)
	}
	m.Header.Set(nats.MsgIdHdr, rec.ID)
	if len(msgID) > 0 {
		m.Header.Set(nats.MsgIdHdr, msgID[0])
	}
	// Like the relay, pin the stream sequence the message must follow: the
	// projector must not carry such JetStream control headers into copies
	// it publishes (dead letters).
	info, err := e.js.StreamInfo(events.BusStream)
	if err != nil {
		e.t.Fatal(err)
	}
	m.Header.Set(nats.ExpectedLastSeqHdr, strconv.FormatUint(info.State.LastSeq, 10))
	m.Data = rec.Data
	if _, err := e.js.PublishMsg(m); err != nil {
		e.t.Fatal(err)
	}
}

// waitVersion waits until the read model holds id at version >= v.
func (e *env) waitVersion(id string, v uint64) projections.View {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	if err := e.rm.WaitFor(ctx, id, v); err != nil {
		e.t.Fatalf("read model never reached %s v%d: %v", id, v, err)
	}
	got, err := e.rm.Get(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return got
}

// wantFolded checks the read model's view equals the fold of the stored stream.
func (e *env) wantFolded(id string) {
	e.t.Helper()
	stream, err := e.store.ReadStream(context.Background(), events.StreamID(id), 0)
	if err != nil {
		e.t.Fatal(err)
	}
	s, err := events.Fold(stream)
	if err != nil {
		e.t.Fatal(err)
	}
	want, err := projections.ViewOf(s)
	if err != nil {
		e.t.Fatal(err)
	}
	got := e.waitVersion(id, want.Version)
	if got.Version != want.Version || got.Deleted != want.Deleted || string(got.Doc) != string(want.Doc) ||
		got.Position != want.Position || got.Tenant != want.Tenant {
		e.t.Fatalf("read model view of %s:\n got  %+v\n want %+v", id, got, want)
	}
}

func (e *env) consumer(durable string) *nats.ConsumerInfo {
	e.t.Helper()
	info, err := e.js.ConsumerInfo(events.BusStream, durable)
	if err != nil {
		e.t.Fatal(err)
	}
	return info
}

// drained waits until the consumer has delivered every message of the stream
// and every delivery was acked: the projector's stats are then final.
func (e *env) drained(durable string) {
	e.t.Helper()
	// Nothing pending is not enough right after a publish: the consumer may
	// not have taken the new message into account yet. Drained means every
	// message the stream holds is acknowledged.
	eventually(e.t, "consumer drained", func() bool {
		stream, err := e.js.StreamInfo(events.BusStream)
		if err != nil {
			return false
		}
		info := e.consumer(durable)
		return info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= stream.State.LastSeq
	})
}

func (e *env) dlqCount() uint64 {
	e.t.Helper()
	info, err := e.js.StreamInfo(events.DLQStream)
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Msgs
}

// deadLetters returns the projector's dead letters by their event id.
func (e *env) deadLetters() map[string]*nats.RawStreamMsg {
	e.t.Helper()
	out := map[string]*nats.RawStreamMsg{}
	info, err := e.js.StreamInfo(events.DLQStream)
	if err != nil {
		e.t.Fatal(err)
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := e.js.GetMsg(events.DLQStream, seq)
		if err != nil {
			continue // deleted
		}
		out[m.Header.Get(events.HeaderID)] = m
	}
	return out
}
