package sqlitestore_test

import (
	"context"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/sqlitestore"
)

// What ReadRecent hands out from memory is what ReadAll reads from the file,
// field for field, for single and multi-event commits alike; it never hands
// out what it does not hold.
func TestReadRecentIsWhatTheFileHolds(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "events.db"), sqlitestore.Options{})
	for i := range 30 {
		evs := []events.Proposed{event(i)}
		if i%4 == 0 {
			evs = append(evs, event(i), event(i))
		}
		if _, err := s.Append(ctx, "icp-"+strconv.Itoa(i), events.NoStream, evs); err != nil {
			t.Fatal(err)
		}
	}
	head, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for after := uint64(0); after < head; after += 3 {
		for _, limit := range []int{1, 5, 100} {
			recent, ok := s.ReadRecent(after, limit)
			if !ok {
				t.Fatalf("ReadRecent(%d, %d) held nothing after this process's own commits", after, limit)
			}
			stored, err := s.ReadAll(ctx, after, limit)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(recent, stored) {
				t.Fatalf("ReadRecent(%d, %d) = %+v\nReadAll = %+v", after, limit, recent, stored)
			}
		}
	}
	if recs, ok := s.ReadRecent(head, 10); ok || recs != nil {
		t.Fatalf("ReadRecent at the head = %d events, %v; want none, false", len(recs), ok)
	}
	if recs, ok := s.ReadRecent(0, 0); ok || recs != nil {
		t.Fatalf("ReadRecent with limit 0 = %d events, %v; want none, false", len(recs), ok)
	}
}

// A store opened on an existing file holds none of its events in memory:
// a reader is sent to the file (ReadAll) rather than told the log is empty.
func TestReadRecentAfterReopenSendsToTheFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.db")
	first, err := sqlitestore.Open(ctx, path, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Append(ctx, "icp-1", events.NoStream, []events.Proposed{event(1), event(2)}); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := first.ReadRecent(0, 10); ok {
		t.Fatal("a closed store handed out events from memory")
	}
	s := openStore(t, path, sqlitestore.Options{})
	if recs, ok := s.ReadRecent(0, 10); ok {
		t.Fatalf("a reopened store handed out %d events from memory", len(recs))
	}
	res, err := s.Append(ctx, "icp-2", events.NoStream, []events.Proposed{event(3)})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.ReadRecent(0, 10); ok {
		t.Fatal("events committed before the reopen were handed out from memory")
	}
	recs, ok := s.ReadRecent(res.Positions[0]-1, 10)
	if !ok || len(recs) != 1 || recs[0].Position != res.Positions[0] {
		t.Fatalf("ReadRecent before this process's commit = %+v, %v; want its one event", recs, ok)
	}
}
