package sqlitestore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/sqlitestore"
)

// Paged on the last event read, ReadAllByStream returns every event up to
// the bound exactly once, each stream's events together and in version
// order, streams in bytewise order; events after the bound are left out.
func TestReadAllByStreamReadsEachStreamTogether(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "events.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	streams := []string{"icp-c", "icp-a", "icp-b"}
	versions := map[string]uint64{}
	for round := range 3 { // interleaved in the global order
		for _, s := range streams {
			ev := events.Proposed{ID: uuid.NewString(), Type: "T", SchemaVersion: 1, Data: []byte(fmt.Sprintf(`{"r":%d}`, round)), Metadata: []byte(`{}`)}
			res, err := st.Append(ctx, s, versions[s], []events.Proposed{ev})
			if err != nil {
				t.Fatal(err)
			}
			versions[s] = res.Version
		}
	}
	const to = 8 // the ninth event, icp-b v3, is beyond the bound
	var got []string
	var stream string
	var version uint64
	for {
		recs, err := st.ReadAllByStream(ctx, stream, version, to, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			if r.Position > to {
				t.Fatalf("event at position %d beyond the bound %d", r.Position, to)
			}
			got = append(got, fmt.Sprintf("%s v%d", r.StreamID, r.Version))
			stream, version = r.StreamID, r.Version
		}
	}
	want := []string{"icp-a v1", "icp-a v2", "icp-a v3", "icp-b v1", "icp-b v2", "icp-c v1", "icp-c v2", "icp-c v3"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("read %v, want %v", got, want)
	}
	if _, err := st.ReadAllByStream(ctx, "", 0, to, 0); err == nil {
		t.Error("a limit of 0 was accepted")
	}
}
