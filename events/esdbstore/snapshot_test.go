package esdbstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/esdbstore"
	"github.com/icpservice/icp/events/esdbstore/esdbtest"
)

// onEachServer runs test against the in-process server and, when
// ICP_TEST_ESDB_URL names one, against a real EventStoreDB; without it the
// second run skips saying it was not verified there.
func onEachServer(t *testing.T, test func(t *testing.T, connString string)) {
	t.Run("InProcessServer", func(t *testing.T) { test(t, esdbtest.Start(t).ConnString()) })
	t.Run("RealServer", func(t *testing.T) {
		url := os.Getenv("ICP_TEST_ESDB_URL")
		if url == "" {
			t.Skip("not verified against a real EventStoreDB: set ICP_TEST_ESDB_URL")
		}
		test(t, url)
	})
}

// rawClient is the unmodified client, to look at what the adapter left on
// the server and to write what another writer would.
func rawClient(t *testing.T, connString string) *esdb.Client {
	t.Helper()
	cfg, err := esdb.ParseConnectionString(connString)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = esdb.NoopLogging()
	c, err := esdb.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func maxCountOf(t *testing.T, c *esdb.Client, stream string) (uint64, bool) {
	t.Helper()
	md, err := c.GetStreamMetadata(testCtx(t), stream, esdb.ReadStreamOptions{})
	if err != nil {
		t.Fatalf("metadata of %s: %v", stream, err)
	}
	if md.MaxCount() == nil {
		return 0, false
	}
	return *md.MaxCount(), true
}

func mustSnapshot(t *testing.T, s *esdbstore.Store, stream string) events.Snapshot {
	t.Helper()
	snap, ok, err := s.ReadSnapshot(testCtx(t), stream, 1<<20)
	if err != nil || !ok {
		t.Fatalf("ReadSnapshot(%s): ok %v, %v; want a snapshot", stream, ok, err)
	}
	return snap
}

func TestSnapshotsLiveInASideStreamThatKeepsOnlyTheLatest(t *testing.T) {
	onEachServer(t, testSideStream)
}

func testSideStream(t *testing.T, connString string) {
	s := openStore(t, connString, esdbstore.Options{})
	c := rawClient(t, connString)
	stream := newStream()
	side := esdbstore.SnapshotStream(stream)
	if want := "snapshot-" + stream; side != want || strings.HasPrefix(side, events.StreamPrefix) {
		t.Fatalf("snapshot stream %q, want %q (never starting with %q)", side, want, events.StreamPrefix)
	}
	mustAppend(t, s, stream, events.NoStream, newEvent(1))
	for v := uint64(1); v <= 3; v++ {
		ev := newEvent(int(v) + 1)
		if _, err := s.AppendWithSnapshot(testCtx(t), stream, v, []events.Proposed{ev}, 1, fmt.Appendf(nil, `{"v":%d}`, v+1)); err != nil {
			t.Fatal(err)
		}
		if snap := mustSnapshot(t, s, stream); snap.Version != v+1 || snap.EventID != ev.ID || string(snap.State) != fmt.Sprintf(`{"v":%d}`, v+1) {
			t.Fatalf("after version %d the snapshot is %+v", v+1, snap)
		}
	}
	if n, ok := maxCountOf(t, c, side); !ok || n != 1 {
		t.Fatalf("%s has $maxCount %d (set: %v), want 1", side, n, ok)
	}
	if n, err := readAllOf(t, c, side); err != nil || n != 1 {
		t.Fatalf("a read of %s from its start got %d events (%v), want the latest snapshot alone", side, n, err)
	}

	// Metadata removed by hand comes back within snapshotMetadataEvery
	// snapshots, and the reader never depends on it meanwhile.
	if _, err := c.SetStreamMetadata(testCtx(t), side, esdb.AppendToStreamOptions{}, esdb.StreamMetadata{}); err != nil {
		t.Fatal(err)
	}
	for v := uint64(4); v < 4+64; v++ {
		if _, err := s.AppendWithSnapshot(testCtx(t), stream, v, []events.Proposed{newEvent(int(v))}, 1, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		if snap := mustSnapshot(t, s, stream); snap.Version != v+1 {
			t.Fatalf("after version %d the snapshot is at %d", v+1, snap.Version)
		}
	}
	if n, ok := maxCountOf(t, c, side); !ok || n != 1 {
		t.Fatalf("after 64 more snapshots %s has $maxCount %d (set: %v), want 1 again", side, n, ok)
	}
}

func readAllOf(t *testing.T, c *esdb.Client, stream string) (int, error) {
	t.Helper()
	rs, err := c.ReadStream(testCtx(t), stream, esdb.ReadStreamOptions{}, 1000)
	if err != nil {
		return 0, err
	}
	defer rs.Close()
	n := 0
	for {
		if _, err := rs.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, err
		}
		n++
	}
}

// Whatever else lies last in a snapshot stream, ReadSnapshot finds no
// snapshot and no error: the reader folds the events.
func TestReadSnapshotTrustsOnlyItsOwnSnapshotsOfThatStream(t *testing.T) {
	onEachServer(t, testHostileSnapshots)
}

func testHostileSnapshots(t *testing.T, connString string) {
	s := openStore(t, connString, esdbstore.Options{})
	c := rawClient(t, connString)
	stream := newStream()
	write := func(typ string, data, meta []byte) {
		t.Helper()
		_, err := c.AppendToStream(testCtx(t), esdbstore.SnapshotStream(stream), esdb.AppendToStreamOptions{ExpectedRevision: esdb.Any{}},
			esdb.EventData{EventID: uuid.New(), EventType: typ, ContentType: esdb.ContentTypeBinary, Data: data, Metadata: meta})
		if err != nil {
			t.Fatal(err)
		}
	}
	ev := newEvent(1)
	mustAppend(t, s, stream, events.NoStream, ev)
	meta := func(stream string, version any, eventID string) []byte {
		return fmt.Appendf(nil, `{"stream":%q,"version":%v,"eventId":%q,"fold":1}`, stream, version, eventID)
	}
	state := []byte(`{"v":1}`)
	for _, tc := range []struct {
		name, typ  string
		data, meta []byte
	}{
		{"another type", "Other", state, meta(stream, 1, ev.ID)},
		{"metadata that is not JSON", "Snapshot", state, []byte(`{"stream":`)},
		{"metadata with more after it", "Snapshot", state, append(meta(stream, 1, ev.ID), `{}`...)},
		{"an unknown member", "Snapshot", state, []byte(`{"stream":"` + stream + `","version":1,"eventId":"` + ev.ID + `","fold":1,"x":1}`)},
		{"another stream", "Snapshot", state, meta(newStream(), 1, ev.ID)},
		{"version 0", "Snapshot", state, meta(stream, 0, ev.ID)},
		{"a negative version", "Snapshot", state, meta(stream, -1, ev.ID)},
		{"an event id that is not a UUID", "Snapshot", state, meta(stream, 1, "not-a-uuid")},
		{"an upper-case event id", "Snapshot", state, meta(stream, 1, strings.ToUpper(ev.ID))},
		{"no state", "Snapshot", nil, meta(stream, 1, ev.ID)},
		{"a state larger than asked for", "Snapshot", bytes.Repeat([]byte("x"), 1<<10+1), meta(stream, 1, ev.ID)},
	} {
		write(tc.typ, tc.data, tc.meta)
		snap, ok, err := s.ReadSnapshot(testCtx(t), stream, 1<<10)
		if err != nil || ok {
			t.Fatalf("%s: ReadSnapshot answered %+v, ok %v, %v; want no snapshot and no error", tc.name, snap, ok, err)
		}
	}
	// The same event written right is read: the cases above fail for what
	// they change alone.
	write("Snapshot", state, meta(stream, 1, ev.ID))
	if snap := mustSnapshot(t, s, stream); snap.Version != 1 || snap.EventID != ev.ID || snap.Fold != 1 || string(snap.State) != string(state) {
		t.Fatalf("a well-formed snapshot read back as %+v", snap)
	}
}

// lockedBuffer collects log lines written from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The events are the truth: a snapshot the server refuses (here its stream
// is hard-deleted, so it always will) leaves the append successful, is
// logged, and the stream reads as without a snapshot.
func TestASnapshotTheServerRefusesIsLoggedAndTheAppendStands(t *testing.T) {
	srv := esdbtest.Start(t)
	var logs lockedBuffer
	s := openStore(t, srv.ConnString(), esdbstore.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	stream := newStream()
	mustAppend(t, s, stream, events.NoStream, newEvent(1))
	if _, err := s.AppendWithSnapshot(testCtx(t), stream, 1, []events.Proposed{newEvent(2)}, 1, []byte(`{"v":2}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.HardDeleteStream(esdbstore.SnapshotStream(stream)); err != nil {
		t.Fatal(err)
	}
	res, err := s.AppendWithSnapshot(testCtx(t), stream, 2, []events.Proposed{newEvent(3)}, 1, []byte(`{"v":3}`))
	if err != nil || res.Version != 3 || len(res.Positions) != 1 {
		t.Fatalf("append whose snapshot is refused: %+v %v, want version 3", res, err)
	}
	if recs, err := s.ReadStream(testCtx(t), stream, 0); err != nil || len(recs) != 3 {
		t.Fatalf("the stream holds %d events (%v), want 3", len(recs), err)
	}
	if snap, ok, err := s.ReadSnapshot(testCtx(t), stream, 1<<20); err != nil || ok {
		t.Fatalf("ReadSnapshot of a hard-deleted snapshot stream: %+v, ok %v, %v; want none", snap, ok, err)
	}
	if out := logs.String(); !strings.Contains(out, "snapshot not kept") || !strings.Contains(out, stream) {
		t.Fatalf("the refused snapshot was not logged with its stream; log:\n%s", out)
	}
}

// A soft-deleted snapshot stream costs one write that folds: the next
// snapshot continues it.
func TestADeletedSnapshotStreamIsWrittenAgain(t *testing.T) {
	srv := esdbtest.Start(t)
	s := openStore(t, srv.ConnString(), esdbstore.Options{})
	stream := newStream()
	mustAppend(t, s, stream, events.NoStream, newEvent(1))
	if _, err := s.AppendWithSnapshot(testCtx(t), stream, 1, []events.Proposed{newEvent(2)}, 1, []byte(`{"v":2}`)); err != nil {
		t.Fatal(err)
	}
	if err := srv.DeleteStream(esdbstore.SnapshotStream(stream)); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.ReadSnapshot(testCtx(t), stream, 1<<20); err != nil || ok {
		t.Fatalf("ReadSnapshot of a deleted snapshot stream: ok %v, %v; want none", ok, err)
	}
	ev := newEvent(3)
	if _, err := s.AppendWithSnapshot(testCtx(t), stream, 2, []events.Proposed{ev}, 1, []byte(`{"v":3}`)); err != nil {
		t.Fatal(err)
	}
	if snap := mustSnapshot(t, s, stream); snap.Version != 3 || snap.EventID != ev.ID {
		t.Fatalf("after the delete the next write kept %+v, want version 3", snap)
	}
}
