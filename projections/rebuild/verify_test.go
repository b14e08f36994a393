package rebuild_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/icpservice/icp/projections"
	"github.com/icpservice/icp/projections/rebuild"
	"github.com/icpservice/icp/projections/rebuild/historytest"
	"github.com/icpservice/icp/projections/sqlitemodel"
)

// Verify finds each kind of difference that was made behind the read
// model's back, and nothing else.
func TestVerifyReportsEachKindOfDifference(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	icps := writeHistory(t, st, historytest.Spec{ICPs: 50, UpdateEvery: 5, DeleteEvery: 10})
	livePath := filepath.Join(dir, "readmodel.db")
	rebuildInto(t, st, livePath, rebuild.Options{})
	scratchPath := filepath.Join(dir, "scratch.db")
	rebuildInto(t, st, scratchPath, rebuild.Options{})
	live, scratch := openModel(t, livePath), openModel(t, scratchPath)
	ctx := context.Background()

	res, err := rebuild.Verify(ctx, st, scratch, live, rebuild.VerifyOptions{})
	if err != nil || len(res.Differences) != 0 || res.Compared != 50 {
		t.Fatalf("untouched read model: %+v, %v", res, err)
	}

	db, err := sql.Open("sqlite", "file:"+livePath+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	// icps[1..4] are live and not updated; icps[10] is deleted.
	exec(`UPDATE icps SET doc = CAST('{"id":"x"}' AS BLOB) WHERE id = ?`, icps[1].ID)
	exec(`UPDATE icps SET version = version + 1 WHERE id = ?`, icps[2].ID)
	exec(`DELETE FROM icps WHERE id = ?`, icps[3].ID)
	exec(`UPDATE icps SET deleted = 1, doc = NULL WHERE id = ?`, icps[4].ID)
	exec(`UPDATE icps SET deleted = 0, doc = CAST('{}' AS BLOB) WHERE id = ?`, icps[10].ID)
	extra := uuid.NewString()
	exec(`INSERT INTO icps (id, tenant, version, position, deleted, created_by, user_ids, doc) VALUES (?, 'org_hist', 1, 1, 0, 'u', '[]', CAST('{}' AS BLOB))`, extra)

	res, err = rebuild.Verify(ctx, st, scratch, live, rebuild.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]rebuild.Kind{
		icps[1].ID: rebuild.Content, icps[2].ID: rebuild.WrongVersion, icps[3].ID: rebuild.Missing,
		icps[4].ID: rebuild.Tombstone, icps[10].ID: rebuild.Tombstone, extra: rebuild.Extra,
	}
	if len(res.Differences) != len(want) {
		t.Fatalf("differences %v, want %d", res.Differences, len(want))
	}
	for _, d := range res.Differences {
		if want[d.ID] != d.Kind || d.Detail == "" {
			t.Errorf("%v: want kind %q", d, want[d.ID])
		}
	}
}

// A read model that is only behind (a projector still applying) is not
// reported once it catches up within the settle time; one that stays behind
// is.
func TestVerifyLetsALaggingReadModelSettle(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	icps := writeHistory(t, st, historytest.Spec{ICPs: 20})
	livePath := filepath.Join(dir, "readmodel.db")
	rebuildInto(t, st, livePath, rebuild.Options{})
	live := openModel(t, livePath)
	ctx := context.Background()

	// Two more events: the history replayed for the audit has them, the
	// live read model does not yet.
	p, err := historytest.Updated(icps[0].ID, "org_hist", "user_0", 0)
	appendEvent(t, st, icps[0].ID, 1, p, err)
	p, err = historytest.Updated(icps[1].ID, "org_hist", "user_1", 0)
	appendEvent(t, st, icps[1].ID, 1, p, err)
	scratchPath := filepath.Join(dir, "scratch.db")
	rebuildInto(t, st, scratchPath, rebuild.Options{})
	scratch := openModel(t, scratchPath)

	// The projector catches up with icps[0] once Verify has found it
	// behind.
	sl := &signalLive{Model: live, id: icps[0].ID, seen: make(chan struct{})}
	v := wantView(t, st, icps[0].ID)
	applied := make(chan error, 1)
	go func() {
		<-sl.seen
		_, err := live.Apply(ctx, []projections.View{*v})
		applied <- err
	}()
	res, err := rebuild.Verify(ctx, st, scratch, sl, rebuild.VerifyOptions{Settle: 500 * time.Millisecond, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-applied; err != nil {
		t.Fatal(err)
	}
	if len(res.Differences) != 1 || res.Differences[0].ID != icps[1].ID || res.Differences[0].Kind != rebuild.WrongVersion {
		t.Fatalf("differences %v: want only %s behind", res.Differences, icps[1].ID)
	}
}

func TestCompareNamesTheFieldsThatDiffer(t *testing.T) {
	want := projections.View{ID: "a", Tenant: "t", Version: 2, Position: 5, UserIDs: []string{"u"}, Doc: []byte(`{"a":1}`), CreatedBy: "u"}
	got := want
	got.Tenant, got.UserIDs = "other", []string{"v"}
	kind, detail, same := rebuild.Compare(&want, &got)
	if same || kind != rebuild.Content || detail != `at version 2 these differ: tenant (read model "other", history "t"); members (read model ["v"], history ["u"])` {
		t.Fatalf("%v %q %v", kind, detail, same)
	}
	got = want
	got.Doc = []byte(`{"a": 1}`) // same JSON value, other bytes: the API would serve other bytes
	if kind, _, same := rebuild.Compare(&want, &got); same || kind != rebuild.Content {
		t.Fatalf("doc bytes: %v %v", kind, same)
	}
	tomb := projections.View{ID: "a", Tenant: "t", Version: 3, Position: 5, Deleted: true, CreatedBy: "u"}
	gotTomb := tomb
	gotTomb.UserIDs = []string{} // how the SQLite read model returns a tombstone's members
	if _, _, same := rebuild.Compare(&tomb, &gotTomb); !same {
		t.Fatal("equal tombstones differ")
	}
}

// signalLive closes seen after its first Get of id.
type signalLive struct {
	*sqlitemodel.Model
	id   string
	once sync.Once
	seen chan struct{}
}

func (s *signalLive) Get(ctx context.Context, id string) (projections.View, error) {
	v, err := s.Model.Get(ctx, id)
	if id == s.id {
		s.once.Do(func() { close(s.seen) })
	}
	return v, err
}

// A read model that differs everywhere is audited in bounded memory: the
// differences listed stop at MaxDifferences, every differing ICP is still
// counted, and progress is reported page by page.
func TestVerifyBoundsTheDifferencesItKeeps(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	writeHistory(t, st, historytest.Spec{ICPs: 50, UpdateEvery: 5})
	scratchPath := filepath.Join(dir, "scratch.db")
	rebuildInto(t, st, scratchPath, rebuild.Options{})
	livePath := filepath.Join(dir, "readmodel.db")
	rebuildInto(t, st, livePath, rebuild.Options{})
	db, err := sql.Open("sqlite", "file:"+livePath+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM icps`); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	live, scratch := openModel(t, livePath), openModel(t, scratchPath)

	var progress []uint64
	res, err := rebuild.Verify(context.Background(), st, scratch, live, rebuild.VerifyOptions{
		PageSize: 8, MaxDifferences: 10,
		Progress: func(n uint64) { progress = append(progress, n) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Compared != 50 || res.Differing != 50 || len(res.Differences) != 10 {
		t.Fatalf("compared %d, differing %d, listed %d; want 50, 50, 10", res.Compared, res.Differing, len(res.Differences))
	}
	for _, d := range res.Differences {
		if d.Kind != rebuild.Missing {
			t.Errorf("%v: want missing", d)
		}
	}
	if len(progress) < 50/8 || progress[len(progress)-1] != 50 {
		t.Errorf("progress reports %v: want one per page of 8, ending at 50", progress)
	}
}
