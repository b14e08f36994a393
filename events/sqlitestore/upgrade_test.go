package sqlitestore_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/sqlitestore"
)

// testdata/schema-v1.db was written by the first release of the schema
// (user_version 1) and is never regenerated: every later release must open
// it, migrate it at start, and serve its events unchanged. A new migration is
// exercised here from a real older file.
func TestOpensAndMigratesAFileFromTheFirstRelease(t *testing.T) {
	src, err := os.ReadFile("testdata/schema-v1.db")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "events.db")
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, path, sqlitestore.Options{})
	if err != nil {
		t.Fatalf("open a schema v1 file: %v", err)
	}
	defer s.Close()

	all, err := s.ReadAll(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 {
		t.Fatalf("the v1 file holds 3 events, read %d", len(all))
	}
	for i, r := range all {
		if r.Position != uint64(i+1) || r.Version != 1 || r.Type != events.TypeICPCreated || string(r.Metadata) != `{"tenant":"org_fixture"}` {
			t.Errorf("event %d read back as %+v", i, r)
		}
	}
	// A retry of a v1 append is still recognised, and new appends continue
	// the global order.
	first := all[0]
	res, err := s.Append(ctx, first.StreamID, events.NoStream, []events.Proposed{{ID: first.ID, Type: first.Type, SchemaVersion: 1, Data: first.Data, Metadata: first.Metadata}})
	if err != nil || res.Positions[0] != first.Position {
		t.Fatalf("retry of an append from the v1 file: %+v %v", res, err)
	}
	res, err = s.Append(ctx, events.StreamID(uuid.NewString()), events.NoStream, []events.Proposed{{ID: uuid.NewString(), Type: events.TypeICPCreated, SchemaVersion: 1, Data: []byte(`{}`), Metadata: []byte(`{}`)}})
	if err != nil || res.Positions[0] != 4 {
		t.Fatalf("append after the upgrade: %+v %v", res, err)
	}
	s.Close()

	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v < 1 {
		t.Fatalf("schema version after the upgrade: %d %v", v, err)
	}
}
