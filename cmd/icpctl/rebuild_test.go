package main

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/icpservice/icp/events/esdbstore"
	"github.com/icpservice/icp/events/esdbstore/esdbtest"
	"github.com/icpservice/icp/events/sqlitestore"
	"github.com/icpservice/icp/platform/datadir"
	"github.com/icpservice/icp/projections/rebuild/historytest"
	"github.com/icpservice/icp/projections/sqlitemodel"
)

// A rebuild while icpd serves creates and updates loses none of them: every
// ICP acknowledged before, during and after the rebuild is in the rebuilt
// read model at the version the API answered, the service's projector
// carries on with the new tables, and verify passes.
func TestRebuildWhileServingLosesNoWrite(t *testing.T) {
	dir := t.TempDir()
	svc := startService(t, dir)
	ctx := context.Background()

	// A history for the rebuild to chew on, written by another process's
	// worth of store (the relay and projector pick it up meanwhile).
	other, err := sqlitestore.Open(ctx, filepath.Join(dir, datadir.EventsFile), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := historytest.Write(ctx, other, historytest.Spec{ICPs: 3000, UpdateEvery: 4, DeleteEvery: 9, Tenant: "org_bulk"}); err != nil {
		t.Fatal(err)
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}

	var (
		mu        sync.Mutex
		acked     = map[string]uint64{} // id -> version the API answered
		stop      = make(chan struct{})
		wg        sync.WaitGroup
		during    atomic.Int64
		rebuildOn atomic.Bool
	)
	for w := range 6 {
		wg.Go(func() {
			client := svc.client()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id, err := svc.create(client, fmt.Sprintf("w%d-%d", w, i))
				if err != nil {
					t.Error(err)
					return
				}
				version := uint64(1)
				if i%2 == 0 {
					if version, err = svc.rename(client, id, fmt.Sprintf("w%d-%d renamed", w, i)); err != nil {
						t.Error(err)
						return
					}
				}
				mu.Lock()
				acked[id] = version
				mu.Unlock()
				if rebuildOn.Load() {
					during.Add(1)
				}
			}
		})
	}
	waitFor(t, 30*time.Second, "writes before the rebuild", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 20
	})
	rebuildOn.Store(true)
	code, out, errOut := icpctl(t, "rebuild", "--data-dir", dir, "--progress", "lines")
	rebuildOn.Store(false)
	if code != 0 {
		close(stop)
		wg.Wait()
		t.Fatalf("rebuild: exit %d\n%s", code, errOut)
	}
	if !strings.Contains(out, "rebuilt "+filepath.Join(dir, datadir.ReadModelFile)) || !strings.Contains(errOut, "rebuild: history") {
		t.Errorf("rebuild output %q, progress %q", out, errOut)
	}
	// Writes go on after the swap, through the service's projector.
	mu.Lock()
	n := len(acked)
	mu.Unlock()
	waitFor(t, 30*time.Second, "writes after the rebuild", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= n+20
	})
	close(stop)
	wg.Wait()
	if during.Load() == 0 {
		t.Fatal("no write was acknowledged while the rebuild ran: the test proves nothing")
	}
	t.Logf("%d writes acknowledged, %d of them while the rebuild ran", len(acked), during.Load())

	model, err := sqlitemodel.Open(ctx, filepath.Join(dir, datadir.ReadModelFile), sqlitemodel.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer model.Close()
	for id, version := range acked {
		v, err := model.Get(ctx, id)
		if err != nil || v.Version != version {
			t.Errorf("ICP %s: read model has %+v, %v; the API answered version %d", id, v.Version, err, version)
		}
	}
	if code, out, errOut := icpctl(t, "verify", "--data-dir", dir, "--settle", "20s", "--progress", "none"); code != 0 {
		t.Fatalf("verify after the rebuild: exit %d\n%s%s", code, out, errOut)
	}
}

// With icpd stopped, rebuild recreates a lost or damaged read model.
func TestRebuildReplacesADamagedReadModel(t *testing.T) {
	dir := t.TempDir()
	icps := seedStore(t, dir, historytest.Spec{ICPs: 200, UpdateEvery: 3, DeleteEvery: 4})

	// No read model at all: rebuild creates it.
	if code, _, errOut := icpctl(t, "rebuild", "--data-dir", dir, "--progress", "none"); code != 0 {
		t.Fatalf("rebuild: exit %d %s", code, errOut)
	}
	if code, out, errOut := icpctl(t, "verify", "--data-dir", dir, "--settle", "0s", "--progress", "none"); code != 0 {
		t.Fatalf("verify: exit %d %s %s", code, out, errOut)
	}
	// Damage it behind everyone's back, then rebuild again.
	path := filepath.Join(dir, datadir.ReadModelFile)
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM icps WHERE id = ?; UPDATE icps SET version = 7; DELETE FROM icp_members`, icps[5].ID); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if code, out, _ := icpctl(t, "verify", "--data-dir", dir, "--settle", "0s", "--progress", "none"); code == 0 || !strings.Contains(out, "missing\t"+icps[5].ID) {
		t.Fatalf("verify of the damaged model: exit %d %s", code, out)
	}
	if code, _, errOut := icpctl(t, "rebuild", "--data-dir", dir, "--progress", "none"); code != 0 {
		t.Fatalf("rebuild: exit %d %s", code, errOut)
	}
	if code, out, errOut := icpctl(t, "verify", "--data-dir", dir, "--settle", "0s", "--progress", "none"); code != 0 {
		t.Fatalf("verify after the rebuild: exit %d %s %s", code, out, errOut)
	}
	model, err := sqlitemodel.Open(context.Background(), path, sqlitemodel.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer model.Close()
	l, err := model.List(context.Background(), "org_hist", "user_added", 0, 0)
	if err != nil || len(l) == 0 {
		t.Fatalf("List after the rebuild: %d, %v", len(l), err)
	}
}

func TestRebuildRefusesInvalidFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--data-dir", t.TempDir(), "--max-states", "10"}, "--max-states"},
		{[]string{"--data-dir", t.TempDir(), "--progress", "loud"}, "--progress"},
		{[]string{"--data-dir", filepath.Join(t.TempDir(), "nope")}, "data directory"},
		{[]string{"--data-dir", t.TempDir()}, "no event store at"},
		{[]string{"--data-dir", t.TempDir(), "--read-model", "mongodb://u:secret@db:27017/icp"}, "only the embedded SQLite read model"},
	} {
		code, _, errOut := icpctl(t, append([]string{"rebuild"}, tc.args...)...)
		if code == 0 || !strings.Contains(errOut, tc.want) || strings.Contains(errOut, "secret") {
			t.Errorf("%v: exit %d, stderr %q; want it to mention %q (and no password)", tc.args, code, errOut, tc.want)
		}
	}
}

// rebuild and verify read the history from EventStoreDB when asked (an
// in-process server speaking its gRPC protocol); the read model stays the
// SQLite file in --data-dir.
func TestRebuildAndVerifyFromEventStoreDB(t *testing.T) {
	srv := esdbtest.Start(t)
	ctx := context.Background()
	st, err := esdbstore.Open(ctx, srv.ConnString(), esdbstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := historytest.Write(ctx, st, historytest.Spec{ICPs: 40, UpdateEvery: 3, DeleteEvery: 5, Writers: 4}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if code, out, errOut := icpctl(t, "rebuild", "--data-dir", dir, "--event-store", srv.ConnString(), "--progress", "none"); code != 0 || !strings.Contains(out, "from 76 events") {
		t.Fatalf("rebuild: exit %d %q %q", code, out, errOut)
	}
	if code, out, errOut := icpctl(t, "verify", "--data-dir", dir, "--event-store", srv.ConnString(), "--settle", "0s", "--progress", "none"); code != 0 || !strings.Contains(errOut, "40 ICPs compared, 0 differ") {
		t.Fatalf("verify: exit %d %q %q", code, out, errOut)
	}
}
