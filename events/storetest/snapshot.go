package storetest

import (
	"bytes"
	"testing"

	"github.com/icpservice/icp/events"
)

// runSnapshots checks events.Snapshotter, for an adapter that implements it.
// The states are arbitrary bytes and the fold versions arbitrary numbers: a
// store keeps and returns them, and judges neither.
func runSnapshots(t *testing.T, open func(t *testing.T) events.Store) {
	if _, ok := open(t).(snapshotStore); !ok {
		t.Skip("the store does not implement events.Snapshotter")
	}
	runCases(t, open, []storeCase{
		{"KeptWithItsAppend", snapshotKeptWithItsAppend},
		{"RefusedAndRetriedAppendsKeepNoOlderSnapshot", snapshotRefusedAndRetriedAppendsKeepNoOlderSnapshot},
		{"InvisibleInTheGlobalLog", snapshotInvisibleInTheGlobalLog},
	})
}

func snapshotKeptWithItsAppend(t *testing.T, open func(t *testing.T) events.Store) {
	s := openSnapshotter(t, open)
	stream := newStream()
	wantNoSnapshot(t, s, stream, "a stream that does not exist")
	mustAppend(t, s, stream, events.NoStream, newEvent(1))
	wantNoSnapshot(t, s, stream, "a stream written by plain Appends")

	two := newEvents(2)
	res := mustAppendWithSnapshot(t, s, stream, 1, two, 4, []byte(`{"v":3}`))
	want := events.Snapshot{Version: 3, EventID: two[1].ID, Fold: 4, State: []byte(`{"v":3}`)}
	wantSnapshot(t, s, stream, want)
	if res.Version != 3 || len(res.Positions) != 2 {
		t.Fatalf("AppendWithSnapshot answered %+v, want version 3 and 2 positions", res)
	}
	if _, ok, err := s.ReadSnapshot(testCtx(t), stream, len(want.State)-1); err != nil || ok {
		t.Fatalf("ReadSnapshot(maxState %d) of a %d-byte state: ok %v, %v; want none", len(want.State)-1, len(want.State), ok, err)
	}
	// A plain Append moves the stream on and leaves the snapshot older.
	mustAppend(t, s, stream, 3, newEvent(4))
	wantSnapshot(t, s, stream, want)
	// Snapshots are per stream.
	other := newStream()
	mustAppend(t, s, other, events.NoStream, newEvent(1))
	mustAppendWithSnapshot(t, s, other, 1, []events.Proposed{newEvent(2)}, 4, []byte(`{"other":2}`))
	wantSnapshot(t, s, stream, want)
}

func snapshotRefusedAndRetriedAppendsKeepNoOlderSnapshot(t *testing.T, open func(t *testing.T) events.Store) {
	s := openSnapshotter(t, open)
	stream := newStream()
	mustAppend(t, s, stream, events.NoStream, newEvent(1))
	two := newEvents(2)
	mustAppendWithSnapshot(t, s, stream, 1, two, 7, []byte(`{"v":3}`))
	v3 := events.Snapshot{Version: 3, EventID: two[1].ID, Fold: 7, State: []byte(`{"v":3}`)}

	_, err := s.AppendWithSnapshot(testCtx(t), stream, 1, []events.Proposed{newEvent(9)}, 7, []byte(`{"v":"conflict"}`))
	wantConflict(t, err, stream, 1, 3)
	wantSnapshot(t, s, stream, v3)

	// A retry of the stream's last events: the snapshot stays at
	// their version and names the same event.
	res, err := s.AppendWithSnapshot(testCtx(t), stream, 1, two, 7, []byte(`{"v":"retry"}`))
	if err != nil || res.Version != 3 {
		t.Fatalf("retry of the last append: %+v %v, want version 3", res, err)
	}
	got := readSnapshot(t, s, stream)
	if got.Version != v3.Version || got.EventID != v3.EventID || got.Fold != v3.Fold {
		t.Fatalf("after a retry the snapshot is %+v, want version %d of event %s", got, v3.Version, v3.EventID)
	}

	// A retry of older events once the stream moved on keeps none.
	e4 := newEvent(4)
	mustAppendWithSnapshot(t, s, stream, 3, []events.Proposed{e4}, 7, []byte(`{"v":4}`))
	v4 := events.Snapshot{Version: 4, EventID: e4.ID, Fold: 7, State: []byte(`{"v":4}`)}
	if res, err := s.AppendWithSnapshot(testCtx(t), stream, 1, two, 7, []byte(`{"v":"old retry"}`)); err != nil || res.Version != 3 {
		t.Fatalf("retry of an older append: %+v %v, want version 3", res, err)
	}
	wantSnapshot(t, s, stream, v4)
}

func snapshotInvisibleInTheGlobalLog(t *testing.T, open func(t *testing.T) events.Store) {
	s := openSnapshotter(t, open)
	head := mustHead(t, s)
	stream := newStream()
	first := mustAppend(t, s, stream, events.NoStream, newEvent(1))
	next := mustAppendWithSnapshot(t, s, stream, 1, newEvents(2), 1, []byte(`{"v":3}`))
	want := append(append([]uint64(nil), first.Positions...), next.Positions...)
	if h := mustHead(t, s); h != want[2] {
		t.Fatalf("Head %d after an append with a snapshot, want its last event's position %d", h, want[2])
	}
	if got := positionsOf(readAllAfter(t, s, head)); !equalPositions(got, want) {
		t.Fatalf("ReadAll after %d: positions %v, want the stream's events %v alone", head, got, want)
	}
	// Follow sees the events and then the sentinel, nothing between.
	f := startFollow(t, s, head, 100)
	sentinel := mustAppend(t, s, newStream(), events.NoStream, newEvent(9))
	wantPositions(t, f.next(t, 4, 100), append(want, sentinel.Positions...))
}

// snapshotStore is a store that keeps snapshots.
type snapshotStore interface {
	events.Store
	events.Snapshotter
}

// openSnapshotter opens a store that runSnapshots found to keep snapshots.
func openSnapshotter(t *testing.T, open func(t *testing.T) events.Store) snapshotStore {
	return open(t).(snapshotStore)
}

func mustAppendWithSnapshot(t *testing.T, s events.Snapshotter, stream string, expected uint64, evs []events.Proposed, fold int, state []byte) events.AppendResult {
	t.Helper()
	res, err := s.AppendWithSnapshot(testCtx(t), stream, expected, evs, fold, state)
	if err != nil {
		t.Fatalf("AppendWithSnapshot(%s, expected %d, %d events): %v", stream, expected, len(evs), err)
	}
	if want := expected + uint64(len(evs)); res.Version != want {
		t.Fatalf("AppendWithSnapshot(%s, expected %d, %d events): version %d, want %d", stream, expected, len(evs), res.Version, want)
	}
	return res
}

func readSnapshot(t *testing.T, s events.Snapshotter, stream string) events.Snapshot {
	t.Helper()
	snap, ok, err := s.ReadSnapshot(testCtx(t), stream, 1<<20)
	if err != nil {
		t.Fatalf("ReadSnapshot(%s): %v", stream, err)
	}
	if !ok {
		t.Fatalf("ReadSnapshot(%s): no snapshot", stream)
	}
	return snap
}

func wantSnapshot(t *testing.T, s events.Snapshotter, stream string, want events.Snapshot) {
	t.Helper()
	got := readSnapshot(t, s, stream)
	if got.Version != want.Version || got.EventID != want.EventID || got.Fold != want.Fold || !bytes.Equal(got.State, want.State) {
		t.Fatalf("snapshot of %s: version %d event %s fold %d state %q, want %d %s %d %q", stream,
			got.Version, got.EventID, got.Fold, got.State, want.Version, want.EventID, want.Fold, want.State)
	}
}

func wantNoSnapshot(t *testing.T, s events.Snapshotter, stream, what string) {
	t.Helper()
	snap, ok, err := s.ReadSnapshot(testCtx(t), stream, 1<<20)
	if err != nil {
		t.Fatalf("ReadSnapshot(%s) of %s: %v, want no snapshot and no error", stream, what, err)
	}
	if ok {
		t.Fatalf("%s has a snapshot: %+v", what, snap)
	}
}
