package sqlitestore_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/sqlitestore"
)

// A snapshot is kept with the append that reaches its version, survives a
// reopen, names the append's last event, and is left alone by a refused
// append, by a retry of stored events and by a plain Append.
func TestSnapshotIsKeptWithItsAppend(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.db")
	s := openStore(t, path, sqlitestore.Options{})
	const stream = "icp-s1"
	read := func(s *sqlitestore.Store, max int) (events.Snapshot, bool) {
		t.Helper()
		snap, ok, err := s.ReadSnapshot(ctx, stream, max)
		if err != nil {
			t.Fatal(err)
		}
		return snap, ok
	}
	if _, ok := read(s, 1<<20); ok {
		t.Fatal("a snapshot of a stream that does not exist")
	}
	if _, err := s.Append(ctx, stream, events.NoStream, []events.Proposed{event(1)}); err != nil {
		t.Fatal(err)
	}
	if _, ok := read(s, 1<<20); ok {
		t.Fatal("a plain Append kept a snapshot")
	}
	two := []events.Proposed{event(2), event(3)}
	res, err := s.AppendWithSnapshot(ctx, stream, 1, two, 4, []byte(`{"v":3}`))
	if err != nil || res.Version != 3 {
		t.Fatalf("append with snapshot: %+v %v", res, err)
	}
	want := events.Snapshot{Version: 3, EventID: two[1].ID, Fold: 4, State: []byte(`{"v":3}`)}
	check := func(s *sqlitestore.Store) {
		t.Helper()
		got, ok := read(s, 1<<20)
		if !ok || got.Version != want.Version || got.EventID != want.EventID || got.Fold != want.Fold || string(got.State) != string(want.State) {
			t.Fatalf("snapshot %+v %v, want %+v", got, ok, want)
		}
	}
	check(s)

	// A retry of the same events is answered from the store and writes no
	// snapshot; a conflicting append writes none either.
	if _, err := s.AppendWithSnapshot(ctx, stream, 1, two, 4, []byte(`{"v":"retry"}`)); err != nil {
		t.Fatalf("retry: %v", err)
	}
	check(s)
	if _, err := s.AppendWithSnapshot(ctx, stream, 1, []events.Proposed{event(9)}, 4, []byte(`{"v":"conflict"}`)); !errors.Is(err, events.ErrConflict) {
		t.Fatalf("conflicting append: %v", err)
	}
	check(s)
	// A plain Append moves the stream on and leaves the snapshot older.
	if _, err := s.Append(ctx, stream, 3, []events.Proposed{event(4)}); err != nil {
		t.Fatal(err)
	}
	check(s)
	if _, ok := read(s, len(want.State)-1); ok {
		t.Fatal("a snapshot larger than asked for was returned")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check(openStore(t, path, sqlitestore.Options{}))
}
