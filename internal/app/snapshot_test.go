package app_test

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/sqlitestore"
)

// A PATCH through the running service keeps a snapshot of the ICP beside
// its events, so that the next write reads the snapshot and not the whole
// history, after a restart too. The event store reaches the command handler
// with its snapshots: wrapping it for metrics once hid them, and every write
// folded the ICP's whole history again.
func TestPatchThroughTheServiceKeepsASnapshot(t *testing.T) {
	dir := t.TempDir()
	a := runApp(t, "--dev", "--addr=127.0.0.1:0", "--embedded-nats-addr=127.0.0.1:0", "--admin-addr=127.0.0.1:0", "--data-dir="+dir, "--log-level=warn")
	token := devToken(t, dir, "user_s")
	client := &http.Client{Timeout: 10 * time.Second}
	base := "http://" + a.Addr()
	waitFor(t, 30*time.Second, "the API", func() bool {
		resp, err := client.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	id, ok := create(client, base, token, "snapshot")
	if !ok {
		t.Fatal("create failed")
	}
	req, _ := http.NewRequest(http.MethodPatch, base+"/api/v1/entities/icps/"+id, strings.NewReader(`{"name":"renamed"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PATCH: %d", resp.StatusCode)
	}

	// A second store on the same file, as another process would open it.
	st, err := sqlitestore.Open(context.Background(), filepath.Join(dir, "events.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	snap, ok, err := st.ReadSnapshot(context.Background(), events.StreamID(id), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !ok || snap.Version != 2 {
		t.Fatalf("snapshot of the PATCHed ICP: %+v, %v; want one at version 2", snap, ok)
	}
}
