package sqlitemodel_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/icpservice/icp/projections"
	"github.com/icpservice/icp/projections/sqlitemodel"
)

// testdata/schema-v1.db was written by the first release of the read model
// schema (user_version 1) and is never regenerated: every later release must
// open it, migrate it at start, and serve its views byte for byte.
func TestOpensAndMigratesAFileFromTheFirstRelease(t *testing.T) {
	src, err := os.ReadFile("testdata/schema-v1.db")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "readmodel.db")
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m, err := sqlitemodel.Open(ctx, path, sqlitemodel.Options{})
	if err != nil {
		t.Fatalf("open a schema v1 file: %v", err)
	}
	defer m.Close()
	const id = "22222222-0000-4000-8000-000000000001"
	v, err := m.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if v.Version != 1 || v.Tenant != "org_fixture" || string(v.Doc) != `{"id":"`+id+`","name":"Fixture","n":12345678901234567890}` {
		t.Fatalf("view from the v1 file: %+v (doc %s)", v, v.Doc)
	}
	list, err := m.List(ctx, "org_fixture", "user_b", 0, 0)
	if err != nil || len(list) != 1 || list[0].ID != id {
		t.Fatalf("list from the v1 file: %v %v", list, err)
	}
	// The upgraded file takes the next version of that ICP.
	next := v
	next.Version, next.Doc = 2, []byte(`{"id":"`+id+`","name":"Renamed"}`)
	out, err := m.Apply(ctx, []projections.View{next})
	if err != nil || !out[0].Applied {
		t.Fatalf("apply onto the upgraded file: %+v %v", out, err)
	}
}
