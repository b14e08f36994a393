package sqlitemodel

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/icpservice/icp/projections"
)

// Calls that arrive while a commit is in progress are written together in the
// next transaction. The file's write lock is held from another connection so
// that the writer is stuck on its first call while the others queue up; this
// makes the coalescing deterministic.
func TestGroupCommitCoalescesQueuedCalls(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rm.db")
	m, err := Open(context.Background(), path, Options{BusyTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	locker, err := sql.Open("sqlite", "file:"+path+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close()
	lock, err := locker.Begin()
	if err != nil {
		t.Fatal(err)
	}

	const callers = 50
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := projections.View{ID: fmt.Sprintf("id-%d", i), Tenant: "t", Version: 1, Position: uint64(i + 1),
				UserIDs: []string{"u"}, Doc: []byte(`{}`)}
			out, err := m.Apply(context.Background(), []projections.View{v})
			if err == nil && !out[0].Applied {
				err = fmt.Errorf("%s not applied", v.ID)
			}
			errs <- err
		}()
	}
	// Wait until every call is either in the writer's stuck batch or queued.
	deadline := time.Now().Add(10 * time.Second)
	for int(m.taken.Load())+len(m.reqs) < callers {
		if time.Now().After(deadline) {
			t.Fatalf("only %d calls taken and %d queued", m.taken.Load(), len(m.reqs))
		}
		runtime.Gosched()
	}
	if err := lock.Rollback(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// One transaction for the stuck batch, one for all that queued behind.
	if s := m.Stats(); s.Commits > 2 || s.Written != callers {
		t.Fatalf("stats = %+v, want at most 2 commits for %d views", s, callers)
	}
}
