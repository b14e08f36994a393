package sqlitemodel_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/icpservice/icp/projections"
	"github.com/icpservice/icp/projections/sqlitemodel"
)

// TestListWalkHoldsNoSnapshotBetweenChunks: while a walk over a member's list
// waits between two chunks (a slow HTTP client), the WAL can be checkpointed
// to its end and truncated, which SQLite refuses while any reader still holds
// a snapshot older than the last commit.
func TestListWalkHoldsNoSnapshotBetweenChunks(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "rm.db")
	m := open(t, path, sqlitemodel.Options{})
	const tenant = "org_a"
	for i := range 6 {
		mustApply(t, m, projections.View{ID: uuid.NewString(), Tenant: tenant, Version: 1, Position: uint64(10 + i),
			UserIDs: []string{"user_1"}, Doc: []byte(fmt.Sprintf(`{"n":%d}`, i)), CreatedBy: "user_1"})
	}
	// Another connection to the same file, as the checkpointer has; a
	// checkpoint blocked by a reader waits this long, then reports busy.
	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(2000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })

	chunks, listed := 0, 0
	err = projections.EachChunk(ctx, m, tenant, "user_1", 0, 2, 1<<20, func(c []projections.View) error {
		chunks++
		listed += len(c)
		// A commit after this chunk's read, then a checkpoint that must
		// copy it and truncate the WAL.
		mustApply(t, m, projections.View{ID: uuid.NewString(), Tenant: "org_other", Version: 1, Position: uint64(100 + chunks),
			UserIDs: []string{"user_1"}, Doc: []byte(`{}`), CreatedBy: "user_1"})
		// -1 frames: the model's own checkpointer held the checkpoint
		// lock, which SQLite does not wait for; try again.
		busy, logFrames := 0, -1
		for deadline := time.Now().Add(5 * time.Second); logFrames == -1 && time.Now().Before(deadline); {
			var checkpointed int
			if err := other.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &checkpointed); err != nil {
				return err
			}
		}
		if busy != 0 || logFrames != 0 {
			t.Fatalf("between chunks %d and %d, a TRUNCATE checkpoint reported busy %d, %d frames left: a read is still open", chunks, chunks+1, busy, logFrames)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("EachChunk: %v", err)
	}
	if chunks != 3 || listed != 6 {
		t.Fatalf("walked %d chunks with %d views, want 3 with 6", chunks, listed)
	}
}
