package sqlitemodel

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/icpservice/icp/projections"
)

// openHeld opens a read model whose writer gets stuck on its next
// transaction until release is called: the file's write lock is held from
// another connection, so calls queue up behind the stuck one and what
// happens to them is deterministic.
func openHeld(t *testing.T) (m *Model, path string, release func()) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "rm.db")
	m, err := Open(context.Background(), path, Options{BusyTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	locker, err := sql.Open("sqlite", "file:"+path+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = locker.Close() })
	lock, err := locker.Begin()
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			if err := lock.Rollback(); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(release)
	return m, path, release
}

// waitTakenOrQueued returns once n Apply calls are in the writer's stuck
// batch or queued behind it.
func waitTakenOrQueued(t *testing.T, m *Model, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for int(m.taken.Load())+len(m.reqs) < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d calls taken and %d queued, want %d", m.taken.Load(), len(m.reqs), n)
		}
		runtime.Gosched()
	}
}

func create(i int) projections.View {
	return projections.View{ID: fmt.Sprintf("id-%d", i), Tenant: "t", Version: 1, Position: uint64(i + 1),
		UserIDs: []string{"u"}, Doc: []byte(`{}`)}
}

// applyAsync applies views on a goroutine of its own and reports on errs.
func applyAsync(m *Model, errs chan<- error, views ...projections.View) {
	go func() {
		out, err := m.Apply(context.Background(), views)
		for i := 0; err == nil && i < len(out); i++ {
			if !out[i].Applied {
				err = fmt.Errorf("%s not applied: %+v", views[i].ID, out[i])
			}
		}
		errs <- err
	}()
}

// Calls that arrive while a commit is in progress are written together in the
// next transaction, and the statistics count them by the time Apply returns.
func TestGroupCommitCoalescesQueuedCalls(t *testing.T) {
	m, _, release := openHeld(t)
	const callers = 50
	errs := make(chan error, callers)
	for i := range callers {
		applyAsync(m, errs, create(i))
	}
	waitTakenOrQueued(t, m, callers)
	release()
	for range callers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// One transaction for the stuck batch, one for all that queued behind.
	if s := m.Stats(); s.Commits > 2 || s.Written != callers {
		t.Fatalf("stats = %+v, want at most 2 commits for %d views", s, callers)
	}
}

// Close writes the calls already queued before it closes the file; a call
// made after Close is refused with ErrClosed and not written.
func TestCloseFinishesQueuedApplies(t *testing.T) {
	m, path, release := openHeld(t)
	const queued = 5
	errs := make(chan error, queued)
	for i := range queued {
		applyAsync(m, errs, create(i))
	}
	waitTakenOrQueued(t, m, queued)
	closed := make(chan error, 1)
	go func() { closed <- m.Close() }()
	deadline := time.Now().Add(10 * time.Second)
	for !m.closed() {
		if time.Now().After(deadline) {
			t.Fatal("Close did not start")
		}
		runtime.Gosched()
	}
	late := create(queued)
	if _, err := m.Apply(context.Background(), []projections.View{late}); !errors.Is(err, ErrClosed) ||
		!errors.Is(err, projections.ErrUnavailable) {
		t.Fatalf("Apply during Close = %v, want ErrClosed wrapped in ErrUnavailable", err)
	}
	release()
	for range queued {
		if err := <-errs; err != nil {
			t.Fatalf("a call queued before Close: %v", err)
		}
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}

	m2, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	for i := range queued {
		if _, err := m2.Get(context.Background(), create(i).ID); err != nil {
			t.Fatalf("view queued before Close, after reopen: %v", err)
		}
	}
	if _, err := m2.Get(context.Background(), late.ID); !errors.Is(err, projections.ErrNotFound) {
		t.Fatalf("view refused during Close, after reopen: %v, want ErrNotFound", err)
	}
}
