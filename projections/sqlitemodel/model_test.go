package sqlitemodel_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/icpservice/icp/platform/sqlite"
	"github.com/icpservice/icp/projections"
	"github.com/icpservice/icp/projections/readmodeltest"
	"github.com/icpservice/icp/projections/sqlitemodel"
)

func open(t *testing.T, path string, opts sqlitemodel.Options) *sqlitemodel.Model {
	t.Helper()
	m, err := sqlitemodel.Open(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func TestConformance(t *testing.T) {
	readmodeltest.Run(t, func(t *testing.T) projections.ReadModel {
		return open(t, filepath.Join(t.TempDir(), "rm.db"), sqlitemodel.Options{})
	})
}

func view(id string, version uint64) projections.View {
	return projections.View{ID: id, Tenant: "org_a", Version: version, Position: 7,
		UserIDs: []string{"user_1"}, Doc: []byte(`{"id":"` + id + `"}`), CreatedBy: "user_1"}
}

func mustApply(t *testing.T, m projections.ReadModel, v projections.View) {
	t.Helper()
	out, err := m.Apply(context.Background(), []projections.View{v})
	if err != nil || !out[0].Applied {
		t.Fatalf("Apply %s v%d: %+v, %v", v.ID, v.Version, out, err)
	}
}

// What an Apply reported as done is still there after the file is reopened.
func TestAppliedViewsSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rm.db")
	m, err := sqlitemodel.Open(context.Background(), path, sqlitemodel.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, m, view("a", 1))
	mustApply(t, m, view("a", 2))
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	m = open(t, path, sqlitemodel.Options{})
	v, err := m.Get(context.Background(), "a")
	if err != nil || v.Version != 2 {
		t.Fatalf("after reopen: %+v, %v", v, err)
	}
}

// A writer in another process is seen by WaitFor through polling: two
// Models on one file stand in for two processes (they share no memory).
func TestWaitForSeesAnotherWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rm.db")
	writer := open(t, path, sqlitemodel.Options{})
	reader := open(t, path, sqlitemodel.Options{PollInterval: 10 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- reader.WaitFor(ctx, "x", 1) }()
	mustApply(t, writer, view("x", 1))
	if err := <-done; err != nil {
		t.Fatalf("WaitFor across models: %v", err)
	}
}

// With polling effectively off, only the in-process wake-up can end the wait:
// a lost wake-up would hang until the deadline.
func TestWaitForWakesWithoutPolling(t *testing.T) {
	m := open(t, filepath.Join(t.TempDir(), "rm.db"), sqlitemodel.Options{PollInterval: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const waiters = 20
	done := make(chan error, waiters)
	for range waiters {
		go func() { done <- m.WaitFor(ctx, "w", 3) }()
	}
	for v := uint64(1); v <= 3; v++ {
		mustApply(t, m, view("w", v))
	}
	for range waiters {
		if err := <-done; err != nil {
			t.Fatalf("WaitFor: %v", err)
		}
	}
}

func TestCloseEndsWaitsAndRefusesCalls(t *testing.T) {
	m, err := sqlitemodel.Open(context.Background(), filepath.Join(t.TempDir(), "rm.db"), sqlitemodel.Options{PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.WaitFor(context.Background(), "never", 1) }()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, projections.ErrUnavailable) {
		t.Fatalf("WaitFor across Close: %v, want ErrUnavailable", err)
	}
	if _, err := m.Apply(context.Background(), []projections.View{view("a", 1)}); !errors.Is(err, projections.ErrUnavailable) {
		t.Fatalf("Apply after Close: %v, want ErrUnavailable", err)
	}
	if err := m.Ping(context.Background()); !errors.Is(err, projections.ErrUnavailable) {
		t.Fatalf("Ping after Close: %v, want ErrUnavailable", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestApplyRefusesMalformedViews(t *testing.T) {
	m := open(t, filepath.Join(t.TempDir(), "rm.db"), sqlitemodel.Options{MaxDocBytes: 64})
	bad := map[string]projections.View{
		"no id":       {Tenant: "t", Version: 1, Doc: []byte(`{}`)},
		"no tenant":   {ID: "a", Version: 1, Doc: []byte(`{}`)},
		"version 0":   {ID: "a", Tenant: "t", Doc: []byte(`{}`)},
		"no doc":      {ID: "a", Tenant: "t", Version: 1},
		"invalid doc": {ID: "a", Tenant: "t", Version: 1, Doc: []byte(`{"a":`)},
		"huge pos":    {ID: "a", Tenant: "t", Version: 1, Position: 1 << 63, Doc: []byte(`{}`)},
		"empty user":  {ID: "a", Tenant: "t", Version: 1, Doc: []byte(`{}`), UserIDs: []string{""}},
		"doc too big": {ID: "a", Tenant: "t", Version: 1, Doc: []byte(`"` + strings.Repeat("a", 64) + `"`)},
	}
	for name, v := range bad {
		// A malformed view refuses the whole call, even beside a good one.
		_, err := m.Apply(context.Background(), []projections.View{view("good", 1), v})
		if !errors.Is(err, projections.ErrRefused) || errors.Is(err, projections.ErrUnavailable) {
			t.Errorf("%s: err = %v, want a refusal, not an unavailability", name, err)
		}
		if !projections.RefusedView(err, v.ID) || projections.RefusedView(err, "good") {
			t.Errorf("%s: refusal %v does not name the refused view", name, err)
		}
	}
	if _, err := m.Get(context.Background(), "good"); !errors.Is(err, projections.ErrNotFound) {
		t.Fatalf("a refused call wrote its good view: %v", err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rm.db")
	m, err := sqlitemodel.Open(context.Background(), path, sqlitemodel.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = m.Close()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	m, err = sqlitemodel.Open(context.Background(), path, sqlitemodel.Options{})
	if err == nil {
		_ = m.Close()
		t.Fatal("opened a file with a newer schema")
	}
	if !errors.Is(err, sqlite.ErrNewerSchema) {
		t.Fatalf("Open of a newer file: %v, want ErrNewerSchema", err)
	}
}

func TestOpenValidatesOptions(t *testing.T) {
	_, err := sqlitemodel.Open(context.Background(), filepath.Join(t.TempDir(), "rm.db"),
		sqlitemodel.Options{PollInterval: -1, MaxBatch: -1})
	if err == nil {
		t.Fatal("negative options accepted")
	}
	if _, err := sqlitemodel.Open(context.Background(), "", sqlitemodel.Options{}); err == nil {
		t.Fatal("empty path accepted")
	}
}

// A wait that starts after this process committed the version ends at once,
// even with polling off: the writer keeps what it made durable for later
// waiters.
func TestWaitForAfterTheCommitEndsWithoutPolling(t *testing.T) {
	m := open(t, filepath.Join(t.TempDir(), "rm.db"), sqlitemodel.Options{PollInterval: time.Hour})
	mustApply(t, m, view("c", 1))
	mustApply(t, m, view("c", 2))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, v := range []uint64{1, 2} {
		if err := m.WaitFor(ctx, "c", v); err != nil {
			t.Fatalf("WaitFor v%d after its commit: %v", v, err)
		}
	}
}

// While this process's writer is busy, a version written by another process
// is still found (by the poll).
func TestWaitForSeesAnotherWriterWhileWritingItself(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rm.db")
	other := open(t, path, sqlitemodel.Options{})
	local := open(t, path, sqlitemodel.Options{PollInterval: 200 * time.Millisecond})
	mustApply(t, other, view("x", 1))
	mustApply(t, local, view("busy", 1))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := local.WaitFor(ctx, "x", 1); err != nil {
		t.Fatalf("WaitFor of another process's write: %v", err)
	}
}
