package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/icpservice/icp/platform/sqlite"
)

// openWriter opens a WAL database at path whose writer never checkpoints,
// with one table t of blobs.
func openWriter(t *testing.T, path string) *sql.DB {
	t.Helper()
	w, err := sqlite.Open(path, sqlite.Settings{Role: sqlite.Writer, BusyTimeout: 5 * time.Second}, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	w.SetMaxOpenConns(1)
	if _, err := w.ExecContext(context.Background(), `CREATE TABLE t (v BLOB)`); err != nil {
		t.Fatal(err)
	}
	return w
}

// A writer that never checkpoints keeps a bounded WAL when a Checkpointer
// runs beside it, and everything it committed is in the database file.
func TestCheckpointsKeepTheWriterWALBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.sqlite")
	w := openWriter(t, path)
	ctx := context.Background()
	// An interval the test never reaches: it checkpoints explicitly.
	c, err := sqlite.StartCheckpointer(path, 0, time.Hour, func(err error) { t.Error(err) })
	if err != nil {
		t.Fatal(err)
	}
	row := []byte(strings.Repeat("x", 4000))
	const rounds, perRound = 20, 250 // 1 MiB per round, 20 MiB in all
	var copied int
	for range rounds {
		for range perRound {
			if _, err := w.ExecContext(ctx, `INSERT INTO t VALUES (?)`, row); err != nil {
				t.Fatal(err)
			}
		}
		n, err := c.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		copied += n
	}
	if copied < rounds*perRound {
		t.Fatalf("checkpoints copied %d frames, want at least one per row (%d)", copied, rounds*perRound)
	}
	info, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	// Without checkpoints the WAL would hold all 20 MiB; with them it
	// starts over after each round.
	if info.Size() > 4<<20 {
		t.Fatalf("WAL is %d bytes after checkpoints, want it reused (< 4 MiB)", info.Size())
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := w.QueryRowContext(ctx, `SELECT COUNT(*) FROM t`).Scan(&n); err != nil || n != rounds*perRound {
		t.Fatalf("rows = %d, %v; want %d", n, err, rounds*perRound)
	}
}

func TestStartRefusesANegativeInterval(t *testing.T) {
	if _, err := sqlite.StartCheckpointer(filepath.Join(t.TempDir(), "x.db"), 0, -time.Second, nil); err == nil {
		t.Fatal("negative interval accepted")
	}
}

// With no interval, a Kick alone copies the WAL into the database file.
func TestKickCheckpoints(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.sqlite")
	w := openWriter(t, path)
	ctx := context.Background()
	c, err := sqlite.StartCheckpointer(path, 0, 0, func(err error) { t.Error(err) })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	row := []byte(strings.Repeat("x", 4000))
	for range 250 {
		if _, err := w.ExecContext(ctx, `INSERT INTO t VALUES (?)`, row); err != nil {
			t.Fatal(err)
		}
	}
	size := func() int64 {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return info.Size()
	}
	if s := size(); s >= 900_000 {
		t.Fatalf("database file is %d bytes before any checkpoint: the writer checkpointed", s)
	}
	c.Kick()
	deadline := time.Now().Add(10 * time.Second)
	for size() < 900_000 {
		if time.Now().After(deadline) {
			t.Fatalf("database file is %d bytes 10 s after the kick: no checkpoint ran", size())
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
}

// Under writes that never pause, the WAL still starts over: it stays near
// RestartFrames pages however much is written.
func TestTheWALStaysBoundedUnderSustainedWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.sqlite")
	w := openWriter(t, path)
	c, err := sqlite.StartCheckpointer(path, 5*time.Second, 5*time.Millisecond, func(err error) { t.Error(err) })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	row := []byte(strings.Repeat("x", 4000))
	const pageSize = 4096
	// Rows of about a page each: six times the bound, so that a WAL that
	// never started over would end at twice the size allowed below. The
	// allowance leaves the checkpointer, polling off the writer's path, a
	// late start on a busy machine.
	const total = 6 * sqlite.RestartFrames
	var largest int64
	written := 0
	for written < total {
		tx, err := w.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for range 50 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO t VALUES (?)`, row); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		written += 50
		if info, err := os.Stat(path + "-wal"); err == nil {
			largest = max(largest, info.Size())
		}
	}
	if bound := int64(3 * sqlite.RestartFrames * pageSize); largest > bound {
		t.Fatalf("the WAL grew to %d bytes while %d pages were written, want it to start over below %d", largest, total, bound)
	}
	var n int
	if err := w.QueryRowContext(ctx, `SELECT COUNT(*) FROM t`).Scan(&n); err != nil || n != written {
		t.Fatalf("rows = %d, %v; want %d", n, err, written)
	}
}
