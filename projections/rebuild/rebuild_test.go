package rebuild_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/sqlitestore"
	"github.com/icpservice/icp/projections"
	"github.com/icpservice/icp/projections/rebuild"
	"github.com/icpservice/icp/projections/rebuild/historytest"
	"github.com/icpservice/icp/projections/sqlitemodel"
)

func openStore(t *testing.T, dir string) *sqlitestore.Store {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(dir, "events.db"), sqlitestore.Options{PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func openModel(t *testing.T, path string) *sqlitemodel.Model {
	t.Helper()
	m, err := sqlitemodel.Open(context.Background(), path, sqlitemodel.Options{PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func writeHistory(t *testing.T, st events.Store, spec historytest.Spec) []historytest.ICP {
	t.Helper()
	icps, err := historytest.Write(context.Background(), st, spec)
	if err != nil {
		t.Fatal(err)
	}
	return icps
}

func rebuildInto(t *testing.T, st events.Store, path string, opts rebuild.Options) rebuild.Result {
	t.Helper()
	b, err := sqlitemodel.OpenBuilder(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := b.Close(); err != nil {
			t.Errorf("close builder: %v", err)
		}
	}()
	res, err := rebuild.Rebuild(context.Background(), st, b, opts)
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	return res
}

// wantView is the view of an ICP as the fold of its whole stream.
func wantView(t *testing.T, st events.Store, id string) *projections.View {
	t.Helper()
	recs, err := st.ReadStream(context.Background(), events.StreamID(id), 0)
	if err != nil {
		t.Fatal(err)
	}
	s, err := rebuild.FoldStream(recs)
	if err != nil {
		t.Fatal(err)
	}
	if s == nil {
		return nil
	}
	v, err := projections.ViewOf(s)
	if err != nil {
		t.Fatal(err)
	}
	return &v
}

// checkModel fails unless the read model holds every ICP of the store as the
// fold of its stream, and nothing else.
func checkModel(t *testing.T, st events.Store, m *sqlitemodel.Model, ids []string) {
	t.Helper()
	ctx := context.Background()
	for _, id := range ids {
		want := wantView(t, st, id)
		var got *projections.View
		v, err := m.Get(ctx, id)
		switch {
		case errors.Is(err, projections.ErrNotFound):
		case err != nil:
			t.Fatal(err)
		default:
			got = &v
		}
		if kind, detail, same := rebuild.Compare(want, got); !same {
			t.Fatalf("ICP %s: %s: %s", id, kind, detail)
		}
	}
	all, err := m.Scan(ctx, "", 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(ids) {
		t.Fatalf("read model holds %d ICPs, the history %d", len(all), len(ids))
	}
}

func idsOf(icps []historytest.ICP) []string {
	ids := make([]string, len(icps))
	for i, c := range icps {
		ids[i] = c.ID
	}
	return ids
}

// A rebuild writes every ICP as the fold of its stream: created, updated
// (fields and members), deleted (tombstones), free-form JSON byte for byte;
// and List serves the members' ICPs in creation order. A cache far smaller
// than the history makes states leave memory and come back from the target.
func TestRebuildMatchesTheFoldOfEveryStream(t *testing.T) {
	for _, tc := range []struct {
		name        string
		maxStates   int
		small       bool
		globalOrder bool // a store that cannot be read by stream
	}{
		{"defaults", 0, false, false}, {"small cache", 40, false, false}, {"small cache and steps", 40, true, false},
		{"global order", 0, false, true}, {"global order, small cache and steps", 40, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.small {
				rebuild.SmallSteps(t)
			}
			maxStates := tc.maxStates
			dir := t.TempDir()
			sqlite := openStore(t, dir)
			var st events.Store = sqlite
			if tc.globalOrder {
				st = globalOrderOnly{sqlite}
			}
			icps := writeHistory(t, st, historytest.Spec{ICPs: 500, UpdateEvery: 3, DeleteEvery: 7})
			path := filepath.Join(dir, "readmodel.db")
			var progress []rebuild.Progress
			res := rebuildInto(t, st, path, rebuild.Options{MaxStates: maxStates, Progress: func(p rebuild.Progress) { progress = append(progress, p) }})
			head, _ := st.Head(context.Background())
			if res.Last != head || res.Skipped != 0 {
				t.Fatalf("result %+v, store head %d", res, head)
			}
			// Read by stream, every ICP is folded whole and written once,
			// however small the cache.
			if !tc.globalOrder && res.Views != uint64(len(icps)) {
				t.Errorf("%d views written for %d ICPs: some were written twice", res.Views, len(icps))
			}
			if len(progress) == 0 || progress[len(progress)-1].Position != head {
				t.Fatalf("progress %+v does not end at the head %d", progress, head)
			}
			m := openModel(t, path)
			checkModel(t, st, m, idsOf(icps))

			// user_added was added by the first update and kept by the
			// second; deleted ICPs are not listed.
			var want []string
			for i, c := range icps {
				if i%3 == 0 && !c.Deleted {
					want = append(want, c.ID)
				}
			}
			list, err := m.List(context.Background(), "org_hist", "user_added", 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			var last uint64
			for _, v := range list {
				if v.Position <= last {
					t.Fatalf("List out of creation order at %s", v.ID)
				}
				last = v.Position
				got = append(got, v.ID)
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("List(user_added): %d ICPs, want %d", len(got), len(want))
			}
		})
	}
}

// globalOrderOnly is an event store that cannot be read by stream, as
// EventStoreDB's cannot.
type globalOrderOnly struct{ events.Store }

func appendRaw(t *testing.T, st events.Store, id string, expected uint64, typ string, schema int, data string) {
	t.Helper()
	_, err := st.Append(context.Background(), events.StreamID(id), expected, []events.Proposed{{
		ID: uuid.NewString(), Type: typ, SchemaVersion: schema, Data: []byte(data), Metadata: []byte(`{}`),
	}})
	if err != nil {
		t.Fatal(err)
	}
}

func appendEvent(t *testing.T, st events.Store, id string, expected uint64, p events.Proposed, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(context.Background(), events.StreamID(id), expected, []events.Proposed{p}); err != nil {
		t.Fatal(err)
	}
}

// An event the projector would dead-letter leaves its ICP at its last good
// version and skips the ICP's later events; other ICPs are not affected.
func TestRebuildSkipsWhatTheProjectorDeadLetters(t *testing.T) {
	rebuild.SmallSteps(t) // the bad events and those after them fall in different chunks
	dir := t.TempDir()
	st := openStore(t, dir)
	ok, corrupt, misnamed, afterDelete, badCreate := uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()
	for i, id := range []string{ok, corrupt, misnamed, afterDelete} {
		p, err := historytest.Created(id, "org_x", "user_1", i)
		appendEvent(t, st, id, 0, p, err)
	}
	appendRaw(t, st, corrupt, 1, events.TypeICPUpdated, 1, `{"id":`) // not JSON
	p, err := historytest.Updated(corrupt, "org_x", "user_1", 0)
	appendEvent(t, st, corrupt, 2, p, err) // valid, but after the bad one
	p, err = historytest.Updated(uuid.NewString(), "org_x", "user_1", 0)
	appendEvent(t, st, misnamed, 1, p, err) // names another ICP
	p, err = historytest.Deleted(afterDelete, "org_x", "user_1")
	appendEvent(t, st, afterDelete, 1, p, err)
	p, err = historytest.Updated(afterDelete, "org_x", "user_1", 0)
	appendEvent(t, st, afterDelete, 2, p, err) // cannot fold onto a deleted ICP
	appendRaw(t, st, badCreate, 0, events.TypeICPCreated, 1, `{"icp":{}}`)
	p, err = historytest.Updated(ok, "org_x", "user_1", 0)
	appendEvent(t, st, ok, 1, p, err)

	path := filepath.Join(dir, "readmodel.db")
	res := rebuildInto(t, st, path, rebuild.Options{})
	if res.Skipped != 5 || len(res.Problems) != 5 {
		t.Fatalf("skipped %d, problems %v; want 5", res.Skipped, res.Problems)
	}
	m := openModel(t, path)
	for id, want := range map[string]struct {
		version uint64
		deleted bool
	}{ok: {2, false}, corrupt: {1, false}, misnamed: {1, false}, afterDelete: {2, true}} {
		v, err := m.Get(context.Background(), id)
		if err != nil || v.Version != want.version || v.Deleted != want.deleted {
			t.Errorf("ICP %s: %+v, %v; want version %d deleted %t", id, v, err, want.version, want.deleted)
		}
	}
	if _, err := m.Get(context.Background(), badCreate); !errors.Is(err, projections.ErrNotFound) {
		t.Errorf("an ICP whose creation cannot be decoded is in the read model: %v", err)
	}
}

// Past the cap on the ICPs a replay remembers as broken, an ICP that breaks
// is not remembered, yet its later events are still skipped (Evolve's
// version rule refuses them) and counted: the read model and the count are
// those of a replay within the cap; only the reason listed differs.
func TestRebuildPastTheBrokenCapStillSkipsLaterEvents(t *testing.T) {
	rebuild.SmallBrokenCap(t, 2)
	dir := t.TempDir()
	st := openStore(t, dir)
	var ids []string
	for i := range 5 {
		id := uuid.NewString()
		ids = append(ids, id)
		p, err := historytest.Created(id, "org_x", "user_1", i)
		appendEvent(t, st, id, 0, p, err)
		appendRaw(t, st, id, 1, events.TypeICPUpdated, 1, `{"id":`) // not JSON
		p, err = historytest.Updated(id, "org_x", "user_1", 0)
		appendEvent(t, st, id, 2, p, err) // valid, but after the bad one
	}
	for name, store := range map[string]events.Store{"by stream": st, "global order": globalOrderOnly{st}} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "readmodel.db")
			res := rebuildInto(t, store, path, rebuild.Options{})
			if res.Skipped != 10 || len(res.Problems) != 10 {
				t.Fatalf("skipped %d, problems %v; want 10", res.Skipped, res.Problems)
			}
			remembered, refused := 0, 0
			for _, pr := range res.Problems {
				switch {
				case pr.Version != 3:
				case pr.Reason == "an earlier event of this ICP could not be applied":
					remembered++
				case strings.Contains(pr.Reason, "version 3 onto 1"):
					refused++
				default:
					t.Errorf("problem %s: unexpected reason", pr)
				}
			}
			if remembered != 2 || refused != 3 {
				t.Errorf("later events skipped as of a broken ICP: %d, by the version rule: %d; want 2 and 3", remembered, refused)
			}
			m := openModel(t, path)
			for _, id := range ids {
				if v, err := m.Get(context.Background(), id); err != nil || v.Version != 1 {
					t.Errorf("ICP %s: %+v, %v; want version 1", id, v, err)
				}
			}
		})
	}
}

// An event of a newer release stops the rebuild before the swap: the live
// read model stays as it was.
func TestRebuildStopsAtAnEventOfANewerRelease(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	icps := writeHistory(t, st, historytest.Spec{ICPs: 20})
	appendRaw(t, st, icps[3].ID, 1, events.TypeICPUpdated, 2, `{"id":"`+icps[3].ID+`","whatever":1}`)
	path := filepath.Join(dir, "readmodel.db")
	m := openModel(t, path)
	old := projections.View{ID: "old", Tenant: "org_old", Version: 1, Position: 1, Doc: []byte(`{}`), CreatedBy: "u"}
	if _, err := m.Apply(context.Background(), []projections.View{old}); err != nil {
		t.Fatal(err)
	}

	b, err := sqlitemodel.OpenBuilder(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = rebuild.Rebuild(context.Background(), st, b, rebuild.Options{})
	if !errors.Is(err, rebuild.ErrNewerRelease) || !errors.Is(err, events.ErrUnknownVersion) {
		t.Fatalf("rebuild: %v, want ErrNewerRelease", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	all, err := m.Scan(context.Background(), "", 100)
	if err != nil || len(all) != 1 || all[0].ID != "old" {
		t.Fatalf("live read model after a failed rebuild: %+v, %v", all, err)
	}
}

// A rebuild swaps its tables in under a running read model: the model's
// reads and its writer (prepared statements included) carry on with the
// new tables, and its writes during the rebuild are superseded by the
// rebuild only where the history says so.
func TestRebuildSwapsUnderARunningModel(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	icps := writeHistory(t, st, historytest.Spec{ICPs: 300, UpdateEvery: 2})
	path := filepath.Join(dir, "readmodel.db")
	m := openModel(t, path)
	ctx := context.Background()
	// The live model has been applying: a wrong view, and one the history
	// does not have.
	wrong := projections.View{ID: icps[0].ID, Tenant: "org_hist", Version: 1, Position: 1, Doc: []byte(`{"wrong":true}`), CreatedBy: "u", UserIDs: []string{"user_wrong"}}
	stray := projections.View{ID: "stray", Tenant: "org_hist", Version: 1, Position: 2, Doc: []byte(`{}`), CreatedBy: "u"}
	if _, err := m.Apply(ctx, []projections.View{wrong, stray}); err != nil {
		t.Fatal(err)
	}

	rebuildInto(t, st, path, rebuild.Options{})
	checkModel(t, st, m, idsOf(icps))
	if l, err := m.List(ctx, "org_hist", "user_wrong", 0, 0); err != nil || len(l) != 0 {
		t.Fatalf("the old membership index still answers: %v, %v", l, err)
	}

	// The running writer applies the next event onto the rebuilt view.
	p, err := historytest.Updated(icps[1].ID, "org_hist", "user_1", 5)
	appendEvent(t, st, icps[1].ID, icps[1].Version, p, err)
	next := wantView(t, st, icps[1].ID)
	out, err := m.Apply(ctx, []projections.View{*next})
	if err != nil || !out[0].Applied || out[0].Stored != next.Version-1 {
		t.Fatalf("Apply after the swap: %+v, %v", out, err)
	}
	// And a create of an ICP the rebuild has not seen.
	id := uuid.NewString()
	p, err = historytest.Created(id, "org_hist", "user_new", 1)
	appendEvent(t, st, id, 0, p, err)
	created := wantView(t, st, id)
	if out, err := m.Apply(ctx, []projections.View{*created}); err != nil || !out[0].Applied {
		t.Fatalf("Apply a create after the swap: %+v, %v", out, err)
	}
	if err := m.WaitFor(ctx, id, 1); err != nil {
		t.Fatal(err)
	}
	if l, err := m.List(ctx, "org_hist", "user_new", 0, 0); err != nil || len(l) != 1 || l[0].ID != id {
		t.Fatalf("List after the swap: %+v, %v", l, err)
	}
	// A second process opening the file sees the same.
	other := openModel(t, path)
	checkModel(t, st, other, append(idsOf(icps), id))
}

// Events appended while a rebuild runs, and applied meanwhile to the live
// model by a projector-like follower (version v only onto v-1), end up in
// the rebuilt read model exactly once: none lost at the swap, none applied
// twice.
func TestRebuildLosesNothingAppendedWhileItRuns(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	icps := writeHistory(t, st, historytest.Spec{ICPs: 1000, UpdateEvery: 4})
	path := filepath.Join(dir, "readmodel.db")
	m := openModel(t, path)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var followed atomic.Uint64
	followErr := make(chan error, 1)
	go func() { followErr <- project(ctx, st, m, &followed) }()

	var (
		mu      sync.Mutex
		created []string
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := uuid.NewString()
				p, err := historytest.Created(id, "org_hist", fmt.Sprintf("user_%d", w), i)
				if err == nil {
					_, err = st.Append(ctx, events.StreamID(id), 0, []events.Proposed{p})
				}
				if err == nil {
					p, err = historytest.Updated(id, "org_hist", "user_x", 0)
				}
				if err == nil {
					_, err = st.Append(ctx, events.StreamID(id), 1, []events.Proposed{p})
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				created = append(created, id)
				mu.Unlock()
			}
		})
	}
	rebuildInto(t, st, path, rebuild.Options{SwapBelow: 64})
	close(stop)
	wg.Wait()

	head, err := st.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for followed.Load() < head {
		select {
		case err := <-followErr:
			t.Fatalf("follower: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("follower at %d, head %d", followed.Load(), head)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
	mu.Lock()
	defer mu.Unlock()
	if len(created) < 10 {
		t.Fatalf("only %d ICPs were created while the rebuild ran: the test proves nothing", len(created))
	}
	t.Logf("%d ICPs created during the rebuild", len(created))
	checkModel(t, st, m, append(idsOf(icps), created...))
}

// project is a stand-in for the projector: it follows the store and applies
// each event onto the stored version by the projector's rule.
func project(ctx context.Context, st events.Store, m *sqlitemodel.Model, at *atomic.Uint64) error {
	err := st.Follow(ctx, 0, 256, func(recs []events.Recorded) error {
		for _, r := range recs {
			var state *domain.State
			if r.Version > 1 {
				v, err := m.Get(ctx, r.ICPID())
				if err != nil {
					return err
				}
				if v.Version >= r.Version {
					continue
				}
				if state, err = projections.StateOf(v); err != nil {
					return err
				}
			}
			next, err := events.EvolveRecorded(state, r)
			if err != nil {
				return err
			}
			view, err := projections.ViewOf(next)
			if err != nil {
				return err
			}
			out, err := m.Apply(ctx, []projections.View{view})
			if err != nil {
				return err
			}
			if !out[0].Applied && out[0].Stored < r.Version {
				return fmt.Errorf("%s v%d refused onto v%d", r.ICPID(), r.Version, out[0].Stored)
			}
		}
		at.Store(recs[len(recs)-1].Position)
		return nil
	})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// One rebuild at a time per read model file.
func TestOnlyOneBuilderPerFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "readmodel.db")
	b, err := sqlitemodel.OpenBuilder(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sqlitemodel.OpenBuilder(context.Background(), path); !errors.Is(err, sqlitemodel.ErrLocked) {
		t.Fatalf("second builder: %v, want ErrLocked", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b, err = sqlitemodel.OpenBuilder(context.Background(), path)
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// failingTarget fails every Put after the first ok ones.
type failingTarget struct {
	rebuild.Swapper
	ok, puts int
}

var errPutFailed = errors.New("disk full")

func (f *failingTarget) Put(ctx context.Context, created, replaced []projections.View) error {
	if f.puts++; f.puts > f.ok {
		return errPutFailed
	}
	return f.Swapper.Put(ctx, created, replaced)
}

// A write that fails while more batches are in flight (a full disk, or the
// operator's Ctrl-C cancelling the Put) ends the rebuild with that error;
// it does not wait for the batches behind it.
func TestRebuildStopsAtAFailedWriteWithBatchesInFlight(t *testing.T) {
	rebuild.SmallSteps(t)
	dir := t.TempDir()
	st := openStore(t, dir)
	writeHistory(t, st, historytest.Spec{ICPs: 300, UpdateEvery: 3})
	b, err := sqlitemodel.OpenBuilder(context.Background(), filepath.Join(dir, "readmodel.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	done := make(chan error, 1)
	go func() {
		_, err := rebuild.Rebuild(context.Background(), st, &failingTarget{Swapper: b, ok: 3}, rebuild.Options{MaxStates: 1000})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, errPutFailed) {
			t.Fatalf("rebuild returned %v, want the failed write's error", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the rebuild did not return after a failed write")
	}
}
