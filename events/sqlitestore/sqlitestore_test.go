package sqlitestore_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/sqlitestore"
	"github.com/icpservice/icp/events/storetest"
	"github.com/icpservice/icp/platform/sqlite"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) events.Store {
		return openStore(t, filepath.Join(t.TempDir(), "events.db"), sqlitestore.Options{})
	})
}

func openStore(t *testing.T, path string, opts sqlitestore.Options) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func event(n int) events.Proposed {
	return events.Proposed{
		ID:            uuid.NewString(),
		Type:          events.TypeICPCreated,
		SchemaVersion: 1,
		Data:          []byte(`{"n":` + strconv.Itoa(n) + `}`),
		Metadata:      []byte(`{"tenant":"t1","userId":"u1"}`),
	}
}

func TestReopenAfterCloseKeepsEverything(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.db")
	s, err := sqlitestore.Open(ctx, path, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var want []events.Recorded
	for i := range 20 {
		stream := "icp-" + uuid.NewString()
		evs := []events.Proposed{event(i), event(i + 1)}
		res, err := s.Append(ctx, stream, events.NoStream, evs)
		if err != nil {
			t.Fatal(err)
		}
		for j, e := range evs {
			want = append(want, events.Recorded{ID: e.ID, Type: e.Type, SchemaVersion: e.SchemaVersion, Data: e.Data,
				Metadata: e.Metadata, StreamID: stream, Version: uint64(j + 1), Position: res.Positions[j]})
		}
	}
	before, err := s.ReadAll(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openStore(t, path, sqlitestore.Options{})
	got, err := s.ReadAll(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("after reopening: %d events, want %d", len(got), len(want))
	}
	for i, r := range got {
		w := want[i]
		if r.ID != w.ID || r.StreamID != w.StreamID || r.Version != w.Version || r.Position != w.Position ||
			string(r.Data) != string(w.Data) || string(r.Metadata) != string(w.Metadata) || r.Type != w.Type ||
			!r.Time.Equal(before[i].Time) {
			t.Fatalf("after reopening, event %d is %+v, want %+v (time %v)", i, r, w, before[i].Time)
		}
	}
	// The reopened store goes on where the old one stopped.
	res, err := s.Append(ctx, want[0].StreamID, 2, []events.Proposed{event(3)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Positions[0] != want[len(want)-1].Position+1 {
		t.Fatalf("first append after reopening at position %d, want %d", res.Positions[0], want[len(want)-1].Position+1)
	}
	// A retry of an append made before the restart is still recognised.
	again, err := s.Append(ctx, want[0].StreamID, events.NoStream, []events.Proposed{
		{ID: want[0].ID, Type: want[0].Type, SchemaVersion: 1, Data: want[0].Data},
		{ID: want[1].ID, Type: want[1].Type, SchemaVersion: 1, Data: want[1].Data},
	})
	if err != nil || again.Version != 2 || again.Positions[0] != want[0].Position {
		t.Fatalf("retry after reopening: %+v, %v; want the original result", again, err)
	}
}

func TestCloseFinishesQueuedAppends(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.db")
	s, err := sqlitestore.Open(ctx, path, sqlitestore.Options{BatchMax: 4})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	type ack struct {
		stream string
		res    events.AppendResult
		err    error
	}
	acks := make(chan ack, n)
	started := make(chan struct{}, n)
	for i := range n {
		go func() {
			stream := "icp-" + uuid.NewString()
			started <- struct{}{}
			res, err := s.Append(ctx, stream, events.NoStream, []events.Proposed{event(i)})
			acks <- ack{stream, res, err}
		}()
	}
	for range n {
		<-started
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	var ok []ack
	for range n {
		a := <-acks
		switch {
		case a.err == nil:
			ok = append(ok, a)
		case errors.Is(a.err, sqlitestore.ErrClosed) && errors.Is(a.err, events.ErrUnavailable):
		default:
			t.Fatalf("append during Close: %v, want success or ErrClosed", a.err)
		}
	}
	s2 := openStore(t, path, sqlitestore.Options{})
	all, err := s2.ReadAll(ctx, 0, n+1)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(ok) {
		t.Fatalf("%d appends acknowledged, %d stored", len(ok), len(all))
	}
	for _, a := range ok {
		recs, err := s2.ReadStream(ctx, a.stream, 0)
		if err != nil || len(recs) != 1 || recs[0].Position != a.res.Positions[0] {
			t.Fatalf("acknowledged append to %s at %d: stored %v, %v", a.stream, a.res.Positions[0], recs, err)
		}
	}
}

func TestFollowEndsWhenStoreCloses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	s, err := sqlitestore.Open(context.Background(), path, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	delivered := make(chan struct{}, 1)
	go func() {
		done <- s.Follow(context.Background(), 0, 10, func([]events.Recorded) error {
			delivered <- struct{}{}
			return nil
		})
	}()
	if _, err := s.Append(context.Background(), "icp-x", events.NoStream, []events.Proposed{event(1)}); err != nil {
		t.Fatal(err)
	}
	<-delivered // Follow is caught up and waiting
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, sqlitestore.ErrClosed) || !errors.Is(err, events.ErrUnavailable) {
			t.Fatalf("Follow returned %v when the store closed, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Follow still running after Close")
	}
}

// Two stores on one file stand for two processes: neither wakes the other's
// followers, so the poll must pick the other's appends up.
func TestFollowSeesAnotherWriterOfTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	reader := openStore(t, path, sqlitestore.Options{PollInterval: 20 * time.Millisecond})
	writer := openStore(t, path, sqlitestore.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan events.Recorded, 100)
	done := make(chan error, 1)
	go func() {
		done <- reader.Follow(ctx, 0, 10, func(b []events.Recorded) error {
			for _, r := range b {
				got <- r
			}
			return nil
		})
	}()
	var want []uint64
	for i := range 5 {
		res, err := writer.Append(ctx, "icp-shared", uint64(i), []events.Proposed{event(i)})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, res.Positions[0])
	}
	for i, p := range want {
		select {
		case r := <-got:
			if r.Position != p {
				t.Fatalf("event %d delivered at position %d, want %d", i, r.Position, p)
			}
		case err := <-done:
			t.Fatalf("Follow returned: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatalf("the other writer's event %d was not seen", i)
		}
	}
	// Both stores write the same file; the positions stay one sequence.
	res, err := reader.Append(ctx, "icp-shared", 5, []events.Proposed{event(5)})
	if err != nil || res.Positions[0] != want[4]+1 {
		t.Fatalf("append through the second store: %+v, %v; want position %d", res, err, want[4]+1)
	}
}

func TestOpenValidatesOptions(t *testing.T) {
	_, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "x.db"),
		sqlitestore.Options{BatchMax: -1, QueueSize: -2, PollInterval: -time.Second, BusyTimeout: -time.Second, Linger: -time.Second})
	if err == nil {
		t.Fatal("negative options accepted")
	}
	for _, field := range []string{"BatchMax", "QueueSize", "PollInterval", "BusyTimeout", "Linger"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error %q does not name %s", err, field)
		}
	}
	if _, err := sqlitestore.Open(context.Background(), "", sqlitestore.Options{}); err == nil {
		t.Error("empty path accepted")
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	s, err := sqlitestore.Open(context.Background(), path, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = sqlitestore.Open(context.Background(), path, sqlitestore.Options{})
	if !errors.Is(err, sqlite.ErrNewerSchema) || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a file with schema version 99: %v, want a refusal as ErrNewerSchema", err)
	}
}

func TestInvalidAppendIsErrInvalidAppend(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "events.db"), sqlitestore.Options{})
	_, err := s.Append(context.Background(), "", events.NoStream, []events.Proposed{{ID: "nope"}})
	if !errors.Is(err, sqlitestore.ErrInvalidAppend) {
		t.Fatalf("Append with bad arguments: %v, want ErrInvalidAppend", err)
	}
	for _, want := range []string{"empty stream name", `id "nope"`, "empty type", "schema version 0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not report %q", err, want)
		}
	}
}

// While another process holds the file's write lock, appends queue up; an
// append whose ctx ends meanwhile gives up with the context's error and is
// never written, and the others complete once the lock is released.
func TestAppendGivesUpWithContextWhileWriterIsBlocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	s := openStore(t, path, sqlitestore.Options{QueueSize: 1, BatchMax: 1, BusyTimeout: 30 * time.Second})

	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	lock, err := other.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec("INSERT INTO events (stream, version, event_id, type, schema_version, data, metadata, recorded_at) VALUES ('lock', 1, 'x', 'T', 1, x'', x'', 0)"); err != nil {
		t.Fatal(err) // takes the write lock until Rollback
	}

	ctx := context.Background()
	type ack struct {
		stream string
		err    error
	}
	acks := make(chan ack, 2)
	for i := range 2 { // one in the writer's hands, one in the queue
		go func() {
			stream := "icp-" + uuid.NewString()
			_, err := s.Append(ctx, stream, events.NoStream, []events.Proposed{event(i)})
			acks <- ack{stream, err}
		}()
	}
	late := "icp-late"
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = s.Append(tctx, late, events.NoStream, []events.Proposed{event(3)})
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, events.ErrUnavailable) {
		t.Fatalf("append while the writer is blocked: %v, want the deadline wrapped in ErrUnavailable", err)
	}

	if err := lock.Rollback(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case a := <-acks:
			if a.err != nil {
				t.Fatalf("append queued behind the lock: %v", a.err)
			}
			if _, err := s.ReadStream(ctx, a.stream, 0); err != nil {
				t.Fatalf("acknowledged append missing: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("queued appends did not complete after the lock was released")
		}
	}
	if _, err := s.ReadStream(ctx, late, 0); !errors.Is(err, events.ErrStreamNotFound) {
		t.Fatalf("the append that gave up was written (ReadStream: %v)", err)
	}
}

// The path is handed to SQLite as a file: URI; characters that mean
// something in a URI must still name the file as given.
func TestOpenPathWithURICharacters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a b?c#d%e&f.db")
	s := openStore(t, path, sqlitestore.Options{})
	if _, err := s.Append(context.Background(), "icp-1", events.NoStream, []events.Proposed{event(1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the store did not create %q: %v", path, err)
	}
}

// A follower on a store whose own commits it takes from memory still gets
// every event of the file, in order and once, when another process writes
// the same file between those commits.
func TestFollowInterleavedWithAnotherWriterHasNoHole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	local := openStore(t, path, sqlitestore.Options{PollInterval: 10 * time.Millisecond})
	other := openStore(t, path, sqlitestore.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan events.Recorded, 1000)
	done := make(chan error, 1)
	go func() {
		done <- local.Follow(ctx, 0, 7, func(b []events.Recorded) error {
			for _, r := range b {
				got <- r
			}
			return nil
		})
	}()
	const rounds = 40
	want := map[uint64]string{}
	for i := range rounds {
		w := local
		if i%3 == 2 {
			w = other
		}
		ev := event(i)
		res, err := w.Append(ctx, "icp-"+strconv.Itoa(i), events.NoStream, []events.Proposed{ev, event(i)})
		if err != nil {
			t.Fatal(err)
		}
		want[res.Positions[0]] = ev.ID
	}
	var last uint64
	for n := 0; n < 2*rounds; n++ {
		select {
		case r := <-got:
			if r.Position != last+1 {
				t.Fatalf("after position %d the follower got %d", last, r.Position)
			}
			if id, ok := want[r.Position]; ok && r.ID != id {
				t.Fatalf("position %d holds event %s, want %s", r.Position, r.ID, id)
			}
			last = r.Position
		case err := <-done:
			t.Fatalf("Follow returned: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d events delivered", n, 2*rounds)
		}
	}
}
