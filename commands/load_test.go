package commands

import (
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/sqlitestore"
)

// TestLoadedStateIsTheFold builds random histories of creates, updates
// (changing or not), deletes, appends by a writer that keeps no snapshot,
// snapshots of an older fold version or that do not decode, and restarts,
// and checks after every step that the state a write decides on is exactly
// the fold of the whole stream.
func TestLoadedStateIsTheFold(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 1107))
	path := filepath.Join(t.TempDir(), "events.db")
	open := func() (*sqlitestore.Store, *Handler) {
		st, err := sqlitestore.Open(ctx, path, sqlitestore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		clk := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
		return st, NewHandler(st, WithClock(func() time.Time { clk = clk.Add(time.Second); return clk }))
	}
	st, h := open()
	t.Cleanup(func() { _ = st.Close() })
	alice := domain.Actor{UserID: "user_alice", Tenant: "org_acme"}

	var ids []string
	var kinds [8]int
	for step := range 300 {
		kind := rng.IntN(100)
		check := ids // after a restart, every ICP
		var target string
		if len(ids) > 0 {
			target = ids[rng.IntN(len(ids))]
			check = []string{target}
		}
		switch {
		case len(ids) < 8 && kind < 8:
			cmd, err := ParseCreate([]byte(randomBody(rng, true)), alice.UserID)
			if err != nil {
				t.Fatal(err)
			}
			res, err := h.Create(ctx, alice, cmd, "", RequestMeta{})
			if err != nil {
				t.Fatalf("step %d: create: %v", step, err)
			}
			ids = append(ids, res.State.ICP.ID)
			check = []string{res.State.ICP.ID}
			kinds[0]++
		case len(ids) == 0:
			continue
		case kind < 70:
			cmd, err := ParseUpdate([]byte(randomBody(rng, false)))
			if err != nil {
				t.Fatal(err)
			}
			_, err = h.Update(ctx, alice, target, cmd, nil, RequestMeta{})
			if err != nil && !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("step %d: update: %v", step, err)
			}
			kinds[1]++
		case kind < 72:
			if _, err := h.Delete(ctx, alice, target, nil, RequestMeta{}); err != nil && !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("step %d: delete: %v", step, err)
			}
			kinds[2]++
		case kind < 83: // another writer, which keeps no snapshot
			if appendRaw(t, st, target, rng, nil) {
				kinds[3]++
			}
		case kind < 88: // a snapshot of an older fold, holding a stale state
			if appendRaw(t, st, target, rng, func(before *domain.State) (int, []byte) {
				// At the right version, but without the change: only
				// its fold version tells it from a true one.
				stale := *before
				stale.Version++
				b, err := events.EncodeState(&stale)
				if err != nil {
					t.Fatal(err)
				}
				return domain.FoldVersion - 1, b
			}) {
				kinds[4]++
			}
		case kind < 91: // a snapshot of this fold that does not decode
			if appendRaw(t, st, target, rng, func(*domain.State) (int, []byte) {
				return domain.FoldVersion, []byte(`{"icp":`)
			}) {
				kinds[5]++
			}
		case kind < 95:
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			st, h = open()
			check = ids
			kinds[6]++
		default:
			kinds[7]++ // nothing: the check below runs again on the same history
		}
		for _, id := range check {
			stream := events.StreamID(id)
			cur, err := h.loadState(ctx, stream)
			if err != nil {
				t.Fatalf("step %d: load %s: %v", step, id, err)
			}
			all, err := st.ReadStream(ctx, stream, 0)
			if err != nil {
				t.Fatal(err)
			}
			want, err := events.Fold(all)
			if err != nil {
				t.Fatal(err)
			}
			last := all[len(all)-1]
			if !reflect.DeepEqual(cur.state, want) || cur.version != last.Version || cur.lastPosition != last.Position {
				t.Fatalf("step %d: %s loads as version %d at %d:\n%+v\nthe fold is version %d at %d:\n%+v",
					step, id, cur.version, cur.lastPosition, cur.state, last.Version, last.Position, want)
			}
		}
	}
	t.Logf("steps of each kind: %v", kinds)
	// Every kind of step ran, or the test proves less than it says.
	for k, n := range kinds {
		if n == 0 {
			t.Fatalf("step kind %d never ran: %v", k, kinds)
		}
	}
}

// appendRaw appends a random update to ICP id as another writer would,
// bypassing the handler, with the snapshot snap returns (nil: plain Append).
// It reports false when the ICP is deleted.
func appendRaw(t *testing.T, st *sqlitestore.Store, id string, rng *rand.Rand, snap func(before *domain.State) (int, []byte)) bool {
	t.Helper()
	ctx := context.Background()
	all, err := st.ReadStream(ctx, events.StreamID(id), 0)
	if err != nil {
		t.Fatal(err)
	}
	before, err := events.Fold(all)
	if err != nil {
		t.Fatal(err)
	}
	if before.Deleted {
		return false
	}
	cmd, err := ParseUpdate([]byte(randomBody(rng, false)))
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Changes.Empty() {
		cmd.Changes.LeadsPerList = domain.Some(rng.IntN(1000) + 1)
	}
	ev, err := events.Encode(uuid.NewString(), domain.ICPUpdatedV1{ID: id, UpdatedAt: domain.NewTime(time.Now()),
		UpdatedBy: "user_other", Changes: cmd.Changes}, events.Metadata{Tenant: "org_acme", UserID: "user_other"})
	if err != nil {
		t.Fatal(err)
	}
	if snap == nil {
		_, err = st.Append(ctx, events.StreamID(id), before.Version, []events.Proposed{ev})
	} else {
		fold, state := snap(before)
		_, err = st.AppendWithSnapshot(ctx, events.StreamID(id), before.Version, []events.Proposed{ev}, fold, state)
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// randomBody returns a create body (all required members) or a PATCH body
// with a random subset of members, from small value sets so that updates
// often set a value the ICP already has.
func randomBody(rng *rand.Rand, create bool) string {
	pick := func(vals ...string) string { return vals[rng.IntN(len(vals))] }
	members := []string{
		`"name":` + pick(`"A"`, `"B"`, `" B "`),
		`"description":` + pick(`null`, `"d1"`, `"d2"`),
		`"leadProviderCriteria":` + pick(`[]`, `[{"provider":"baseProvider","filters":{"a":1}}]`, `[{"provider":"baseProvider","type":"company","filters":{"a":1.0,"b":[1,2]}}]`),
		`"customFilterCriteria":` + pick(`[]`, `[{"type":"maxPeoplePerCompany","value":2}]`),
		`"crmFilters":` + pick(`null`, `{"provider":"hubspot"}`, `{"textSearch":"x*","filters":[{"path":"s","mode":"eq","value":"a"}]}`),
		`"userIds":` + pick(`["user_alice"]`, `["user_alice","user_bob"]`, `["user_bob","user_alice"]`),
		`"leadsPerList":` + pick(`10`, `20`),
		`"activeUntil":` + pick(`null`, `"2030-01-01T00:00:00Z"`, `"2030-01-01T00:00:00.000Z"`),
	}
	body := "{"
	for i, m := range members {
		if (create && (i == 0 || i == 2)) || rng.IntN(3) == 0 {
			if len(body) > 1 {
				body += ","
			}
			body += m
		}
	}
	return body + "}"
}

// countingStore counts the events the store serves to reads of one stream.
type countingStore struct {
	*sqlitestore.Store
	served int
}

func (c *countingStore) ReadStream(ctx context.Context, stream string, from uint64) ([]events.Recorded, error) {
	recs, err := c.Store.ReadStream(ctx, stream, from)
	c.served += len(recs)
	return recs, err
}

func (c *countingStore) ReadStreamPage(ctx context.Context, stream string, from uint64, limit int) ([]events.Recorded, error) {
	recs, err := c.Store.ReadStreamPage(ctx, stream, from, limit)
	c.served += len(recs)
	return recs, err
}

// A PATCH, a DELETE and an Idempotency-Key retry read as many events on an
// ICP with thousands of versions as on a new one, after a restart too, once
// one write has left a snapshot (the first write after other writers
// appended without one folds the stream once).
func TestWritesReadBoundedEventsWhateverTheHistory(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.db")
	st, err := sqlitestore.Open(ctx, path, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	alice := domain.Actor{UserID: "user_alice", Tenant: "org_acme"}
	h := NewHandler(st)
	cmd, err := ParseCreate([]byte(`{"name":"A","leadProviderCriteria":[]}`), alice.UserID)
	if err != nil {
		t.Fatal(err)
	}
	created, err := h.Create(ctx, alice, cmd, "key-1", RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	id := created.State.ICP.ID
	const history = 3000
	batch := make([]events.Proposed, 0, 100)
	for v := uint64(1); v < history; v += uint64(len(batch)) {
		batch = batch[:0]
		for i := 0; i < 100 && v+uint64(i) < history; i++ {
			ev, err := events.Encode(uuid.NewString(), domain.ICPUpdatedV1{ID: id, UpdatedAt: domain.NewTime(time.Now()),
				UpdatedBy: "user_alice", Changes: domain.ICPChanges{LeadsPerList: domain.Some(int(v) + i)}}, events.Metadata{Tenant: "org_acme", UserID: "user_alice"})
			if err != nil {
				t.Fatal(err)
			}
			batch = append(batch, ev)
		}
		if _, err := st.Append(ctx, events.StreamID(id), v, batch); err != nil {
			t.Fatal(err)
		}
	}
	patch := func(h *Handler, name string) {
		t.Helper()
		u, err := ParseUpdate([]byte(`{"name":"` + name + `"}`))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.Update(ctx, alice, id, u, nil, RequestMeta{}); err != nil {
			t.Fatal(err)
		}
	}
	// The first write folds the history the other writer left, once.
	patch(h, "first")
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = sqlitestore.Open(ctx, path, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	cs := &countingStore{Store: st}
	h = NewHandler(cs)

	// A PATCH reads the snapshot's own event; its state comes from the
	// snapshot.
	patch(h, "second")
	if cs.served > 2 {
		t.Fatalf("a PATCH after a restart read %d events of a stream of %d versions", cs.served, history+1)
	}
	cs.served = 0
	res, err := h.Create(ctx, alice, cmd, "key-1", RequestMeta{})
	if err != nil || !res.Replayed {
		t.Fatalf("replay: %+v %v", res, err)
	}
	if cs.served != 1 {
		t.Fatalf("an Idempotency-Key retry read %d events, want the first one only", cs.served)
	}
	cs.served = 0
	del, err := h.Delete(ctx, alice, id, nil, RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	if cs.served > 2 || del.State.Version != history+3 {
		t.Fatalf("a DELETE read %d events and answered version %d", cs.served, del.State.Version)
	}
}
