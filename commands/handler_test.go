package commands_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/icpservice/icp/commands"
	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/sqlitestore"
	"github.com/icpservice/icp/projections"
)

func openStore(t *testing.T) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "events.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// clock is a test clock that moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var alice = domain.Actor{UserID: "user_alice", Tenant: "org_acme"}

func parse(t *testing.T, body string, p domain.Actor) domain.CreateICP {
	t.Helper()
	cmd, err := commands.ParseCreate([]byte(body), p.UserID)
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

const body1 = `{"name":"DACH Tech Leaders","leadProviderCriteria":[{"provider":"baseProvider","type":"person","filters":{"job_title":["CTO"],"n":12345678901234567890}}],"userIds":["user_bob"]}`

func doc(t *testing.T, s *domain.State) string {
	t.Helper()
	b, err := events.MarshalJSON(s.ICP)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readStream(t *testing.T, st events.Store, id string) []events.Recorded {
	t.Helper()
	evs, err := st.ReadStream(context.Background(), events.StreamID(id), 0)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// Ids of creates without a key sort in creation order, which keeps the
// stores' id indexes growing at one end.
func TestCreatesWithoutAKeyGetIdsInCreationOrder(t *testing.T) {
	ctx := context.Background()
	h := commands.NewHandler(openStore(t))
	var prev string
	for i := range 50 {
		res, err := h.Create(ctx, alice, parse(t, body1, alice), "", commands.RequestMeta{})
		if err != nil {
			t.Fatal(err)
		}
		if id := res.State.ICP.ID; id <= prev {
			t.Fatalf("create %d got id %s, not after %s", i, id, prev)
		} else {
			prev = id
		}
	}
}

func TestCreateRecordsOneEventThatFoldsToTheAnsweredICP(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	clk := &clock{t: time.Date(2024, 1, 15, 10, 30, 0, 999_999_999, time.UTC)}
	h := commands.NewHandler(st, commands.WithClock(clk.now))

	res, err := h.Create(ctx, alice, parse(t, body1, alice), "", commands.RequestMeta{CorrelationID: "req-1"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed || res.State.Version != 1 || res.Position == 0 || res.State.CreatedPosition != res.Position {
		t.Fatalf("result %+v", res)
	}
	if doc, err := events.MarshalJSON(res.State.ICP); err != nil || string(res.Doc) != string(doc) {
		t.Fatalf("result doc %s, want the ICP as encoded, %s (%v)", res.Doc, doc, err)
	}
	id := res.State.ICP.ID
	if u, err := uuid.Parse(id); err != nil || u.String() != id || u.Version() != 7 {
		t.Fatalf("id %q is not a lowercase time-ordered UUID", id)
	}
	evs := readStream(t, st, id)
	if len(evs) != 1 || evs[0].Type != events.TypeICPCreated || evs[0].Version != 1 || evs[0].Position != res.Position {
		t.Fatalf("stream %+v", evs)
	}
	md, err := events.DecodeMetadata(evs[0].Metadata)
	if err != nil {
		t.Fatal(err)
	}
	if md.Tenant != "org_acme" || md.UserID != "user_alice" || md.CorrelationID != "req-1" || md.CommandHash != "" || md.IdempotencyKey != "" {
		t.Errorf("metadata %+v", md)
	}
	// The answer is byte for byte what the read model will serve.
	folded, err := events.Fold(evs)
	if err != nil {
		t.Fatal(err)
	}
	view, err := projections.ViewOf(folded)
	if err != nil {
		t.Fatal(err)
	}
	if got := doc(t, res.State); got != string(view.Doc) {
		t.Errorf("answer\n%s\nread model doc\n%s", got, view.Doc)
	}
	want := `{"id":"` + id + `","name":"DACH Tech Leaders","description":null,"createdAt":"2024-01-15T10:30:00.999Z","updatedAt":"2024-01-15T10:30:00.999Z",` +
		`"leadProviderCriteria":[{"provider":"baseProvider","type":"person","filters":{"job_title":["CTO"],"n":12345678901234567890}}],` +
		`"customFilterCriteria":[],"crmFilters":null,"userIds":["user_bob","user_alice"],"leadsPerList":10,"activeUntil":null}`
	if got := string(view.Doc); got != want {
		t.Errorf("doc\n got %s\nwant %s", got, want)
	}
	if folded.Tenant != "org_acme" || folded.CreatedBy != "user_alice" {
		t.Errorf("tenant %q createdBy %q", folded.Tenant, folded.CreatedBy)
	}

	other, err := h.Create(ctx, alice, parse(t, body1, alice), "", commands.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	if other.State.ICP.ID == id {
		t.Fatal("two creates without a key got the same id")
	}
}

func TestCreateRetryWithTheSameKeyAnswersTheFirstResult(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	clk := &clock{t: time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)}
	h := commands.NewHandler(st, commands.WithClock(clk.now))

	first, err := h.Create(ctx, alice, parse(t, body1, alice), "key-1", commands.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	id := first.State.ICP.ID
	if id != commands.ICPIDForKey("org_acme", "user_alice", "key-1") {
		t.Fatalf("id %s is not derived from tenant, user and key", id)
	}

	md, err := events.DecodeMetadata(readStream(t, st, id)[0].Metadata)
	if err != nil || md.IdempotencyKey != "key-1" || md.CommandHash != commands.HashCreate(parse(t, body1, alice)) {
		t.Fatalf("metadata %+v (%v), want the key and the command's hash", md, err)
	}

	// The ICP changes after it was created; a retry still answers the ICP
	// as it was created.
	upd, err := events.Encode(uuid.NewString(), domain.ICPUpdatedV1{
		ID: id, UpdatedAt: domain.NewTime(clk.now()), UpdatedBy: "user_alice",
		Changes: domain.ICPChanges{Name: domain.Some("Renamed")},
	}, events.Metadata{Tenant: "org_acme", UserID: "user_alice"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, events.StreamID(id), 1, []events.Proposed{upd}); err != nil {
		t.Fatal(err)
	}
	clk.add(time.Hour)

	// Whitespace and member order do not make it another body.
	again := `{ "userIds": ["user_bob"], "leadProviderCriteria": [ {"filters": {"job_title": ["CTO"], "n": 12345678901234567890}, "type": "person", "provider": "baseProvider"} ], "name": "DACH Tech Leaders" }`
	retry, err := h.Create(ctx, alice, parse(t, again, alice), "key-1", commands.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	if !retry.Replayed || retry.State.ICP.ID != id || retry.State.Version != 1 || retry.Position != first.Position || retry.Doc != nil {
		t.Fatalf("retry %+v, want a replay of version 1 at position %d", retry, first.Position)
	}
	if doc(t, retry.State) != doc(t, first.State) {
		t.Errorf("retry answered\n%s\nfirst answered\n%s", doc(t, retry.State), doc(t, first.State))
	}
	if n := len(readStream(t, st, id)); n != 2 {
		t.Errorf("stream has %d events, want the create and the update only", n)
	}
}

func TestCreateWithAKeyReusedForAnotherBodyIsRefused(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	h := commands.NewHandler(st)
	first, err := h.Create(ctx, alice, parse(t, body1, alice), "key-1", commands.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	other := `{"name":"Other","leadProviderCriteria":[]}`
	if _, err := h.Create(ctx, alice, parse(t, other, alice), "key-1", commands.RequestMeta{}); !errors.Is(err, commands.ErrIdempotencyKeyReused) {
		t.Fatalf("err = %v, want ErrIdempotencyKeyReused", err)
	}
	if n := len(readStream(t, st, first.State.ICP.ID)); n != 1 {
		t.Errorf("stream has %d events, want 1", n)
	}
}

func TestTheSameKeyOfAnotherUserOrTenantIsAnotherICP(t *testing.T) {
	ctx := context.Background()
	h := commands.NewHandler(openStore(t))
	ids := map[string]domain.Actor{}
	for _, p := range []domain.Actor{
		alice,
		{UserID: "user_bob", Tenant: "org_acme"},
		{UserID: "user_alice", Tenant: "org_other"},
		{UserID: "user_alice", Tenant: "personal:user_alice"},
	} {
		res, err := h.Create(ctx, p, parse(t, body1, p), "shared-key", commands.RequestMeta{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Replayed {
			t.Errorf("%+v: replayed another caller's create", p)
		}
		if q, dup := ids[res.State.ICP.ID]; dup {
			t.Errorf("%+v and %+v got the same ICP", p, q)
		}
		ids[res.State.ICP.ID] = p
		if res.State.Tenant != p.Tenant {
			t.Errorf("tenant %q, want %q", res.State.Tenant, p.Tenant)
		}
	}
}

func TestConcurrentRetriesWithOneKeyCreateOneICP(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	h := commands.NewHandler(st)
	cmd := parse(t, body1, alice)
	const n = 50
	var (
		wg      sync.WaitGroup
		results [n]commands.Result
		errs    [n]error
		start   = make(chan struct{})
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = h.Create(ctx, alice, cmd, "same-key", commands.RequestMeta{})
		}()
	}
	close(start)
	wg.Wait()
	created := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("attempt %d: %v", i, errs[i])
		}
		if !results[i].Replayed {
			created++
		}
		if doc(t, results[i].State) != doc(t, results[0].State) || results[i].Position != results[0].Position {
			t.Fatalf("attempt %d answered %s at %d, attempt 0 %s at %d", i, doc(t, results[i].State), results[i].Position, doc(t, results[0].State), results[0].Position)
		}
	}
	if created != 1 {
		t.Errorf("%d attempts reported creating the ICP, want 1", created)
	}
	all, err := st.ReadAll(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 {
		t.Fatalf("store holds %d events, want 1", len(all))
	}
}

func TestCreateOnAClosedStoreIsUnavailable(t *testing.T) {
	st := openStore(t)
	h := commands.NewHandler(st)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := h.Create(context.Background(), alice, parse(t, body1, alice), "", commands.RequestMeta{})
	if !errors.Is(err, events.ErrUnavailable) {
		t.Fatalf("err = %v, want one wrapping events.ErrUnavailable", err)
	}
}
