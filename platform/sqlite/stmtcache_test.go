package sqlite_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/icpservice/icp/platform/sqlite"
)

// readerPair opens a writer with a table t(v) and a one-connection reader
// pool on the same file, so every reader query runs on the same connection
// and meets the statements earlier queries left.
func readerPair(t *testing.T) (w, r *sql.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "db.sqlite")
	w, err := sqlite.Open(path, sqlite.Settings{Role: sqlite.Writer, BusyTimeout: 5 * time.Second}, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	if _, err := w.Exec(`CREATE TABLE t (v INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	r, err = sqlite.Open(path, sqlite.Settings{Role: sqlite.Reader, BusyTimeout: 5 * time.Second}, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return w, r
}

func count(t *testing.T, r *sql.DB) int {
	t.Helper()
	var n int
	if err := r.QueryRow(`SELECT count(*) FROM t WHERE v > ?`, -1).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A reused statement reads what was committed since its last run, and holds
// no read transaction between queries: a checkpoint that must wait for
// every reader (TRUNCATE) completes.
func TestAReaderQueryRepeatedSeesNewCommitsAndHoldsNoSnapshot(t *testing.T) {
	w, r := readerPair(t)
	for i := 1; i <= 3; i++ {
		if _, err := w.Exec(`INSERT INTO t VALUES (?)`, i); err != nil {
			t.Fatal(err)
		}
		if n := count(t, r); n != i {
			t.Fatalf("after %d inserts the reader counts %d", i, n)
		}
	}
	var busy, logFrames, done int
	if err := w.QueryRow(`PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &done); err != nil {
		t.Fatal(err)
	}
	if busy != 0 {
		t.Fatal("a TRUNCATE checkpoint was blocked: the reader's statement still holds a snapshot")
	}
}

// Two queries of the same text open at once on one connection each read
// their own rows.
func TestTheSameQueryTwiceAtOnceOnOneConnection(t *testing.T) {
	w, r := readerPair(t)
	if _, err := w.Exec(`INSERT INTO t VALUES (1), (2), (3)`); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := r.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const q = `SELECT v FROM t WHERE v >= ? ORDER BY v`
	outer, err := conn.QueryContext(ctx, q, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer outer.Close()
	var got []string
	for outer.Next() {
		var v int
		if err := outer.Scan(&v); err != nil {
			t.Fatal(err)
		}
		inner, err := conn.QueryContext(ctx, q, v)
		if err != nil {
			t.Fatal(err)
		}
		var vs []int
		for inner.Next() {
			var x int
			if err := inner.Scan(&x); err != nil {
				t.Fatal(err)
			}
			vs = append(vs, x)
		}
		if err := inner.Close(); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprint(v, vs))
	}
	if err := outer.Err(); err != nil {
		t.Fatal(err)
	}
	if want := "[1 [1 2 3] 2 [2 3] 3 [3]]"; fmt.Sprint(got) != want {
		t.Fatalf("read %v, want %v", got, want)
	}
}

// A query that fails leaves the connection able to run it again, and more
// distinct queries than a connection keeps statements for all answer.
func TestFailedAndManyDistinctQueries(t *testing.T) {
	w, r := readerPair(t)
	if _, err := w.Exec(`INSERT INTO t VALUES (7)`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.QueryContext(ctx, `SELECT count(*) FROM t WHERE v > ?`, -1); !errors.Is(err, context.Canceled) {
		t.Fatalf("a query under a cancelled context: %v, want context.Canceled", err)
	}
	if n := count(t, r); n != 1 {
		t.Fatalf("after a failed query the reader counts %d, want 1", n)
	}
	for i := 0; i < 100; i++ {
		var v int
		if err := r.QueryRow(fmt.Sprintf(`SELECT v + %d FROM t`, i)).Scan(&v); err != nil || v != 7+i {
			t.Fatalf("distinct query %d: %d, %v", i, v, err)
		}
	}
	conn, err := r.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		rows, err := dc.(driver.QueryerContext).QueryContext(context.Background(), `SELECT v FROM t WHERE v > ?`, []driver.NamedValue{{Ordinal: 1, Value: int64(0)}})
		if err != nil {
			return err
		}
		defer rows.Close()
		row := make([]driver.Value, 1)
		if err := rows.Next(row); err != nil || row[0] != int64(7) {
			return fmt.Errorf("driver-level read %v, %v", row[0], err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
