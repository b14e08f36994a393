package consumer_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/icpservice/icp/commands"
	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/consumer"
)

func TestWorkerStartedAfter100CreatesReceivesEachOnceInStoreOrder(t *testing.T) {
	e := newEnv(t)
	want := e.create(100)
	e.waitPublished()

	c, err := consumer.New(e.config("late"))
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{names: map[string]string{}}
	c.OnCreated(func(_ context.Context, ev consumer.Event[domain.ICPCreatedV1]) error {
		rec.mu.Lock()
		rec.names[ev.ICPID] = ev.Payload.ICP.Name
		rec.mu.Unlock()
		rec.add(ev.Envelope)
		return nil
	})
	e.start(c)
	eventually(t, "100 handler calls", func() bool { return rec.count() >= 100 })
	info := e.settled("late")

	got := rec.snapshot()
	if len(got) != 100 {
		t.Fatalf("%d handler calls, want 100", len(got))
	}
	for i, ev := range got {
		w := want[i]
		if ev.ID != w.ID || ev.Position != w.Position || ev.ICPID != w.ICPID() || ev.Version != 1 {
			t.Fatalf("call %d: event %s at position %d (ICP %s v%d), store order says %s at %d", i, ev.ID, ev.Position, ev.ICPID, ev.Version, w.ID, w.Position)
		}
		if ev.Delivery != 1 || ev.Type != events.TypeICPCreated || ev.SchemaVersion != 1 || !ev.Time.Equal(domain.NewTime(w.Time).Time) {
			t.Fatalf("call %d: envelope %+v", i, ev)
		}
		if ev.Metadata.Tenant != "org_worker" || ev.Metadata.UserID != "user_worker" || ev.Metadata.CorrelationID == "" {
			t.Fatalf("call %d: metadata %+v", i, ev.Metadata)
		}
	}
	if rec.names[want[7].ICPID()] != "ICP 7" {
		t.Errorf("payload of the 8th ICP names %q", rec.names[want[7].ICPID()])
	}
	if info.NumRedelivered != 0 || info.AckFloor.Stream != uint64(len(want)) {
		t.Errorf("durable: %d redelivered, ack floor %d; want 0 and %d", info.NumRedelivered, info.AckFloor.Stream, len(want))
	}
	if s := c.Stats(); s.Handled != 100 || s.Retried != 0 || s.DeadLettered != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestHandlersGetEachKindTypedAndKindsWithoutHandlerAreSkipped(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	created := e.create(1)[0]
	id := created.ICPID()
	upd, err := commands.ParseUpdate([]byte(`{"name":"renamed","description":"described","leadsPerList":7}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.cmds.Update(ctx, caller, id, upd, nil, commands.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cmds.Delete(ctx, caller, id, nil, commands.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	other := e.create(1)[0]
	e.waitPublished()

	c, err := consumer.New(e.config("kinds"))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		seen []string
	)
	note := func(s string) { mu.Lock(); seen = append(seen, s); mu.Unlock() }
	c.OnUpdated(func(_ context.Context, ev consumer.Event[domain.ICPUpdatedV1]) error {
		ch := ev.Payload.Changes
		if ev.ICPID != id || ev.Version != 2 || ch.Name.V != "renamed" || ch.Description.V != "described" || ch.LeadsPerList.V != 7 || ch.UserIDs.Set {
			t.Errorf("update event %+v changes %+v", ev.Envelope, ch)
		}
		note("updated")
		return nil
	})
	c.OnDeleted(func(_ context.Context, ev consumer.Event[domain.ICPDeletedV1]) error {
		if ev.ICPID != id || ev.Version != 3 || ev.Payload.DeletedBy != caller.UserID {
			t.Errorf("delete event %+v payload %+v", ev.Envelope, ev.Payload)
		}
		note("deleted")
		return nil
	})
	e.start(c)
	e.settled("kinds")
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(seen, ",") != "updated,deleted" {
		t.Errorf("handler calls %v, want the update then the delete", seen)
	}
	if s := c.Stats(); s.Skipped != 2 || s.Handled != 2 {
		t.Errorf("stats %+v: want the two creates (%s, %s) skipped and 2 handled", s, id, other.ICPID())
	}
}

func TestFailingHandlerIsRetriedWithBackoffThenDeadLetteredWithItsReason(t *testing.T) {
	e := newEnv(t)
	evs := e.create(4)
	flaky, broken := evs[1], evs[2]
	e.waitPublished()

	cfg := e.config("retry")
	cfg.MaxAttempts = 3
	cfg.RetryDelay = 50 * time.Millisecond
	c, err := consumer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	type call struct {
		id       string
		delivery int
		at       time.Time
	}
	var (
		mu    sync.Mutex
		calls []call
	)
	c.OnCreated(func(_ context.Context, ev consumer.Event[domain.ICPCreatedV1]) error {
		mu.Lock()
		calls = append(calls, call{ev.ID, ev.Delivery, time.Now()})
		mu.Unlock()
		switch {
		case ev.ID == flaky.ID && ev.Delivery < 3:
			return errors.New("lead provider timed out")
		case ev.ID == broken.ID && ev.Delivery == 2:
			panic("nil map in handler")
		case ev.ID == broken.ID:
			return errors.New("lead provider rejected the filters")
		}
		return nil
	})
	e.start(c)
	e.settled("retry")

	mu.Lock()
	var order []string
	for _, cl := range calls {
		order = append(order, cl.id)
	}
	mu.Unlock()
	wantOrder := []string{evs[0].ID, flaky.ID, flaky.ID, flaky.ID, broken.ID, broken.ID, broken.ID, evs[3].ID}
	if strings.Join(order, " ") != strings.Join(wantOrder, " ") {
		t.Fatalf("handler calls in order:\n got  %v\n want %v (the failing event holds back the next one)", order, wantOrder)
	}
	// Backoff: the second delivery waits RetryDelay, the third twice that.
	if d := calls[2].at.Sub(calls[1].at); d < 45*time.Millisecond {
		t.Errorf("second delivery %s after the first, want >= 50ms", d)
	}
	if d := calls[3].at.Sub(calls[2].at); d < 95*time.Millisecond {
		t.Errorf("third delivery %s after the second, want >= 100ms", d)
	}

	dl := e.deadLetters("retry")
	if len(dl) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dl))
	}
	m := dl[0]
	if m.Header.Get(events.HeaderID) != broken.ID || string(m.Data) != string(broken.Data) {
		t.Errorf("dead letter is event %s with body %s, want %s unchanged", m.Header.Get(events.HeaderID), m.Data, broken.ID)
	}
	reason := m.Header.Get(events.HeaderDLQReason)
	if !strings.Contains(reason, "lead provider rejected the filters") || !strings.Contains(reason, "delivery 3") {
		t.Errorf("reason %q: want the handler's error and the attempt", reason)
	}
	if m.Header.Get(consumer.HeaderDLQDeliveries) != "3" || m.Header.Get(consumer.HeaderDLQConsumer) != "retry" ||
		m.Header.Get(consumer.HeaderDLQSubject) != events.Subject(events.TypeICPCreated) || m.Header.Get(consumer.HeaderDLQStreamSeq) != "3" {
		t.Errorf("dead letter headers %v", m.Header)
	}
	if m.Header.Get(events.HeaderICPVersion) != "1" || m.Header.Get(events.HeaderType) != "icp.ICPCreated.v1" {
		t.Errorf("dead letter lost the original headers: %v", m.Header)
	}
	if s := c.Stats(); s.Handled != 3 || s.Retried != 4 || s.DeadLettered != 1 {
		t.Errorf("stats %+v, want 3 handled, 4 retried, 1 dead-lettered", s)
	}
}

func TestCorruptEventsAreDeadLetteredAtOnceWithoutCallingTheHandler(t *testing.T) {
	e := newEnv(t)
	good := e.create(1)[0]
	// Valid JSON that no release can read as an ICPCreated v1.
	missing := e.appendRaw(uuid.NewString(), events.NoStream, events.TypeICPCreated, 1, `{"icp":{"name":"no id"}}`)
	notJSON := e.appendRaw(uuid.NewString(), events.NoStream, events.TypeICPCreated, 1, `{"icp":`)
	otherICP := e.appendRaw(uuid.NewString(), events.NoStream, events.TypeICPCreated, 1,
		mustJSON(domain.ICPCreatedV1{ICP: domain.ICP{ID: uuid.NewString(), Name: "x"}, Tenant: "t", CreatedBy: "u"}))
	after := e.create(1)[0]
	e.waitPublished()

	c, err := consumer.New(e.config("corrupt"))
	if err != nil {
		t.Fatal(err)
	}
	rec := recordCreates(c)
	e.start(c)
	e.settled("corrupt")

	got := rec.snapshot()
	if len(got) != 2 || got[0].ID != good.ID || got[1].ID != after.ID {
		t.Fatalf("handler calls %+v, want only %s and %s", got, good.ID, after.ID)
	}
	dl := e.deadLetters("corrupt")
	if len(dl) != 3 {
		t.Fatalf("%d dead letters, want 3", len(dl))
	}
	for i, want := range []events.Recorded{missing, notJSON, otherICP} {
		m := dl[i]
		reason := m.Header.Get(events.HeaderDLQReason)
		if m.Header.Get(events.HeaderID) != want.ID || !strings.Contains(reason, events.ErrCorrupt.Error()) {
			t.Errorf("dead letter %d: event %s reason %q, want %s as corrupt", i, m.Header.Get(events.HeaderID), reason, want.ID)
		}
		if m.Header.Get(consumer.HeaderDLQDeliveries) != "1" {
			t.Errorf("dead letter %d after %s deliveries, want 1 (at once)", i, m.Header.Get(consumer.HeaderDLQDeliveries))
		}
	}
	if s := c.Stats(); s.DeadLettered != 3 || s.Retried != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestMessageWithBrokenHeadersIsDeadLetteredAtOnce(t *testing.T) {
	e := newEnv(t)
	c, err := consumer.New(e.config("headers"))
	if err != nil {
		t.Fatal(err)
	}
	rec := recordCreates(c)
	e.start(c)
	// Published by something other than the relay, with no ce-icpversion.
	good := e.create(1)[0]
	e.waitPublished()
	h := events.Headers(good)
	delete(h, events.HeaderICPVersion)
	m := natsMsg(events.Subject(events.TypeICPCreated), h, good.Data)
	if _, err := e.js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	// Another service's event, on our subjects.
	h = events.Headers(good)
	h[events.HeaderSource] = "/another-service"
	if _, err := e.js.PublishMsg(context.Background(), natsMsg(events.Subject(events.TypeICPCreated), h, good.Data)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the dead letters", func() bool { return len(e.deadLetters("headers")) == 2 })
	e.settled("headers")
	dl := e.deadLetters("headers")
	if reason := dl[0].Header.Get(events.HeaderDLQReason); !strings.Contains(reason, events.HeaderICPVersion) {
		t.Errorf("reason %q does not name the missing header", reason)
	}
	if reason := dl[1].Header.Get(events.HeaderDLQReason); !strings.Contains(reason, events.HeaderSource) {
		t.Errorf("reason %q does not name the foreign source", reason)
	}
	if by := dl[1].Header.Get(events.HeaderDLQBy); by != events.DLQByConsumer {
		t.Errorf("%s = %q, want %q", events.HeaderDLQBy, by, events.DLQByConsumer)
	}
	if rec.count() != 1 {
		t.Errorf("%d handler calls, want 1 (the relay's copy only)", rec.count())
	}
}

func TestEventOfANewerSchemaVersionIsRetriedLaterNeverDeadLettered(t *testing.T) {
	e := newEnv(t)
	newer := e.appendRaw(uuid.NewString(), events.NoStream, events.TypeICPCreated, 2, `{"icp":{"id":"x"},"shape":"of v2"}`)
	next := e.create(1)[0]
	e.waitPublished()

	c, err := consumer.New(e.config("newer"))
	if err != nil {
		t.Fatal(err)
	}
	rec := recordCreates(c)
	e.start(c)
	eventually(t, "four deliveries of the newer event", func() bool { return c.Stats().Deferred >= 4 })
	// Past MaxAttempts? Not an attempt: a worker upgrade will read it. And
	// nothing after it is handled meanwhile: skipping it would break order.
	if s := c.Stats(); s.DeadLettered != 0 || s.Handled != 0 || rec.count() != 0 {
		t.Errorf("stats %+v, %d handler calls: want nothing dead-lettered and nothing after %s handled", s, rec.count(), newer.ID)
	}
	if n := len(e.deadLetters("newer")); n != 0 {
		t.Errorf("%d dead letters", n)
	}
	info := e.durableState("newer")
	if info.NumAckPending != 1 || info.NumPending != 1 {
		t.Errorf("durable: %d outstanding, %d waiting; want the newer event outstanding and %s waiting", info.NumAckPending, info.NumPending, next.ID)
	}
}

func TestGracefulStopFinishesTheHandlerInFlightAndAcknowledgesIt(t *testing.T) {
	e := newEnv(t)
	evs := e.create(3)
	e.waitPublished()

	c, err := consumer.New(e.config("graceful"))
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	var finished atomic.Bool
	c.OnCreated(func(ctx context.Context, ev consumer.Event[domain.ICPCreatedV1]) error {
		if ev.ID != evs[0].ID {
			return nil
		}
		close(entered)
		<-release
		finished.Store(true)
		return ctx.Err() // a stop does not cancel the handler
	})
	r := e.start(c)
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- r.stop() }()
	eventually(t, "the consumer to stop taking messages", func() bool { return !c.Ready() })
	close(release)
	if err := <-stopped; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !finished.Load() {
		t.Fatal("Run returned before the handler in flight finished")
	}
	info := e.durableState("graceful")
	if info.AckFloor.Stream != 1 || info.NumAckPending != 0 {
		t.Fatalf("durable after the stop: ack floor %d, %d outstanding; want the event in flight acknowledged", info.AckFloor.Stream, info.NumAckPending)
	}

	// A new process of the same durable resumes after it.
	c2, err := consumer.New(e.config("graceful"))
	if err != nil {
		t.Fatal(err)
	}
	rec := recordCreates(c2)
	e.start(c2)
	e.settled("graceful")
	got := rec.snapshot()
	if len(got) != 2 || got[0].ID != evs[1].ID || got[1].ID != evs[2].ID {
		t.Fatalf("after the restart the handler saw %+v, want %s and %s only", got, evs[1].ID, evs[2].ID)
	}
}

func TestConcurrentHandlersRunInParallelAndEachEventIsHandledOnce(t *testing.T) {
	e := newEnv(t)
	evs := e.create(40)
	e.waitPublished()
	cfg := e.config("parallel")
	cfg.Concurrency = 4
	c, err := consumer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var (
		inFlight, peak atomic.Int32
		twoAtOnce      = make(chan struct{})
		once           sync.Once
	)
	rec := &recorder{}
	c.OnCreated(func(ctx context.Context, ev consumer.Event[domain.ICPCreatedV1]) error {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		if n >= 2 {
			once.Do(func() { close(twoAtOnce) })
		}
		// The first handlers wait a little for another one to run beside
		// them (well within AckWait: a message can wait in this process
		// behind a handler of its subscription, and its AckWait runs).
		select {
		case <-twoAtOnce:
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
		rec.add(ev.Envelope)
		return nil
	})
	e.start(c)
	e.settled("parallel")
	if peak.Load() < 2 {
		t.Errorf("at most %d handler ran at once", peak.Load())
	}
	seen := map[string]int{}
	for _, ev := range rec.snapshot() {
		seen[ev.ID]++
	}
	for _, ev := range evs {
		if seen[ev.ID] != 1 {
			t.Errorf("event %s handled %d times", ev.ID, seen[ev.ID])
		}
	}
}

func TestConfigReportsEveryProblemAtOnce(t *testing.T) {
	_, err := consumer.New(consumer.Config{Durable: "a.b", Concurrency: -1, AckWait: time.Millisecond, StartAt: "middle", MaxRetryDelay: time.Millisecond, RetryDelay: time.Second})
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"URL is required", "Durable \"a.b\"", "Concurrency -1", "AckWait 1ms", "StartAt \"middle\"", "MaxRetryDelay 1ms"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not report %q", err, want)
		}
	}
	c, err := consumer.New(consumer.Config{URL: "nats://127.0.0.1:1", Durable: "ok"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "no handler") {
		t.Errorf("Run without handlers: %v", err)
	}
}
