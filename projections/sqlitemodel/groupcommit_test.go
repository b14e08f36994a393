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

// queueHeld opens a read model whose writer is stuck on its next
// transaction until release is called (the file's write lock is held from
// another connection), and returns once n creates, applied each on a
// goroutine of its own, are in the stuck batch or queued behind it: what
// happens to them is then deterministic. Each call reports on errs.
func queueHeld(t *testing.T, n int) (m *Model, path string, release func(), errs <-chan error) {
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

	ch := make(chan error, n)
	for i := range n {
		go func() {
			v := create(i)
			out, err := m.Apply(context.Background(), []projections.View{v})
			if err == nil && !out[0].Applied {
				err = fmt.Errorf("%s not applied: %+v", v.ID, out[0])
			}
			ch <- err
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for int(m.taken.Load())+len(m.reqs) < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d calls taken and %d queued, want %d", m.taken.Load(), len(m.reqs), n)
		}
		runtime.Gosched()
	}
	return m, path, release, ch
}

func create(i int) projections.View {
	return projections.View{ID: fmt.Sprintf("id-%d", i), Tenant: "t", Version: 1, Position: uint64(i + 1),
		UserIDs: []string{"u"}, Doc: []byte(`{}`)}
}

// Calls that arrive while a commit is in progress are written together in the
// next transaction, and the statistics count them by the time Apply returns.
func TestGroupCommitCoalescesQueuedCalls(t *testing.T) {
	const callers = 50
	m, _, release, errs := queueHeld(t, callers)
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
	const queued = 5
	m, path, release, errs := queueHeld(t, queued)
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
