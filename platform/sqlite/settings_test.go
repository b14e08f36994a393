package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/icpservice/icp/platform/sqlite"
)

// A writer's connection is durable and a reader's cannot write; a writer
// asked for synchronous=NORMAL is caught by CheckDurable.
func TestRolesGetTheirPragmas(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db.sqlite")
	w, err := sqlite.Open(path, sqlite.Settings{Role: sqlite.Writer, BusyTimeout: 5 * time.Second}, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := sqlite.CheckDurable(ctx, w); err != nil {
		t.Fatalf("writer: %v", err)
	}
	if _, err := w.ExecContext(ctx, `CREATE TABLE t (v INTEGER)`); err != nil {
		t.Fatal(err)
	}
	if n := w.Stats().MaxOpenConnections; n != 1 {
		t.Fatalf("writer pool of %d connections, want 1", n)
	}

	r, err := sqlite.Open(path, sqlite.Settings{Role: sqlite.Reader, BusyTimeout: 5 * time.Second, CacheKiB: 256}, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.ExecContext(ctx, `INSERT INTO t VALUES (1)`); err == nil {
		t.Fatal("a reader's connection wrote")
	}
	var cache int
	if err := r.QueryRowContext(ctx, `PRAGMA cache_size`).Scan(&cache); err != nil || cache != -256 {
		t.Fatalf("reader cache_size = %d (%v), want -256", cache, err)
	}

	lax, err := sqlite.Open(path, sqlite.Settings{Role: sqlite.Writer, Sync: sqlite.SyncNormal}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer lax.Close()
	if err := sqlite.CheckDurable(ctx, lax); err == nil {
		t.Fatal("CheckDurable accepted synchronous=NORMAL")
	}
}

// A path whose characters mean something in a URI names the file it says.
func TestPathsWithURICharacters(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "a?b#c%20d")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "db.sqlite")
	db, err := sqlite.Open(path, sqlite.Settings{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (v INTEGER)`); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the file was not created where the path says: %v", err)
	}
	ro, err := sqlite.Open(path, sqlite.Settings{Role: sqlite.ReadOnlyFile}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.ExecContext(ctx, `INSERT INTO t VALUES (1)`); err == nil {
		t.Fatal("a read-only file was written")
	}
}
