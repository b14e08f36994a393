package sqlitestore_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/sqlitestore"
)

// A store has a generation from its first open, keeps it across reopens,
// and gets a different one from NewGeneration; a file of the first schema
// release gets one when it is migrated.
func TestGenerationIsKeptAndReplaced(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.db")
	s, err := sqlitestore.Open(ctx, path, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	g1, err := s.Generation(ctx)
	if err != nil || len(g1) != 32 || events.CheckGeneration(g1) != nil {
		t.Fatalf("generation of a new store: %q %v", g1, err)
	}
	s.Close()

	s, err = sqlitestore.Open(ctx, path, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if g, err := s.Generation(ctx); err != nil || g != g1 {
		t.Fatalf("generation after reopening: %q %v, want %q", g, err, g1)
	}
	g2, err := s.NewGeneration(ctx)
	if err != nil || g2 == g1 || len(g2) != 32 {
		t.Fatalf("NewGeneration: %q %v (was %q)", g2, err, g1)
	}
	if g, err := s.Generation(ctx); err != nil || g != g2 {
		t.Fatalf("generation after NewGeneration: %q %v, want %q", g, err, g2)
	}

	src, err := os.ReadFile("testdata/schema-v1.db")
	if err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(t.TempDir(), "events.db")
	if err := os.WriteFile(old, src, 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := sqlitestore.Open(ctx, old, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if g, err := o.Generation(ctx); err != nil || len(g) != 32 || g == g2 {
		t.Fatalf("generation of a migrated v1 file: %q %v", g, err)
	}
}

func TestCheckGenerationRefusesHostileHeaders(t *testing.T) {
	for _, g := range []string{"a b", "x\n", string(make([]byte, events.MaxGenerationLen+1)), "é"} {
		if events.CheckGeneration(g) == nil {
			t.Errorf("CheckGeneration(%q) accepted it", g)
		}
	}
	for _, g := range []string{"", "0123abcdef", "A-b"} {
		if err := events.CheckGeneration(g); err != nil {
			t.Errorf("CheckGeneration(%q): %v", g, err)
		}
	}
}
