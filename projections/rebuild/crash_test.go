package rebuild_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/icpservice/icp/events/sqlitestore"
	"github.com/icpservice/icp/projections"
	"github.com/icpservice/icp/projections/rebuild"
	"github.com/icpservice/icp/projections/rebuild/historytest"
	"github.com/icpservice/icp/projections/sqlitemodel"
)

// crashChildDir, set in a process started from this test binary, makes it
// run crashChild on that directory instead of the tests.
const crashChildDir = "REBUILD_TEST_CRASH_CHILD_DIR"

// crashChild rebuilds the read model of dir with a cache small enough that
// states are written in bulk early, prints "WRITING" once the first write is
// on its way, and then never finishes the replay: the parent kills it.
func crashChild(dir string) int {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, "events.db"), sqlitestore.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	b, err := sqlitemodel.OpenBuilder(ctx, filepath.Join(dir, "readmodel.db"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	_, err = rebuild.Rebuild(ctx, st, b, rebuild.Options{MaxStates: 100, Progress: func(rebuild.Progress) {
		fmt.Println("WRITING")
		select {} // the writer goroutine goes on; this one waits for SIGKILL
	}})
	fmt.Fprintln(os.Stderr, "rebuild returned:", err)
	return 1
}

// A rebuild killed half way (SIGKILL, after some of its bulk writes were
// committed) leaves the live read model as it was, serving, and the file
// sound; the next rebuild starts empty, discards the dead one's tables, and
// swaps in the whole history.
func TestKilledRebuildLeavesTheLiveModelAndIsDiscarded(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	icps := writeHistory(t, st, historytest.Spec{ICPs: 2000})
	path := filepath.Join(dir, "readmodel.db")
	m := openModel(t, path)
	ctx := context.Background()
	live := projections.View{ID: "live", Tenant: "org_hist", Version: 1, Position: 1, Doc: []byte(`{"live":true}`), CreatedBy: "u", UserIDs: []string{"user_live"}}
	if _, err := m.Apply(ctx, []projections.View{live}); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildDir+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "WRITING" {
		t.Fatalf("child printed %q, %v", line, err)
	}
	// Kill it once some of its bulk writes are committed.
	shadow, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer shadow.Close()
	eventually(t, "the child's first commit", func() bool {
		var n int
		return shadow.QueryRow(`SELECT count(*) FROM icps_rebuild`).Scan(&n) == nil && n > 0
	})
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed = true
	if err := cmd.Wait(); err == nil {
		t.Fatal("the child exited normally")
	}

	// The live model serves what it had, and only that.
	if v, err := m.Get(ctx, "live"); err != nil || v.Version != 1 || string(v.Doc) != `{"live":true}` {
		t.Fatalf("live view after the crash: %+v, %v", v, err)
	}
	if _, err := m.Get(ctx, icps[0].ID); !errors.Is(err, projections.ErrNotFound) {
		t.Fatalf("a view of the dead rebuild is live: %v", err)
	}
	if l, err := m.List(ctx, "org_hist", "user_live", 0, 0); err != nil || len(l) != 1 {
		t.Fatalf("List after the crash: %+v, %v", l, err)
	}
	var check string
	if err := shadow.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check: %q, %v", check, err)
	}

	// The next rebuild starts empty and swaps in the history.
	b, err := sqlitemodel.OpenBuilder(ctx, path)
	if err != nil {
		t.Fatalf("a rebuild after the crash: %v", err)
	}
	if got, err := b.Load(ctx, []string{icps[0].ID}); err != nil || len(got) != 0 {
		t.Fatalf("the dead rebuild's rows are in the new one: %v, %v", got, err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	rebuildInto(t, st, path, rebuild.Options{})
	checkModel(t, st, m, idsOf(icps))
}

// eventually polls cond until it holds, failing the test after 30 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}
