package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/sqlitestore"
	"github.com/icpservice/icp/platform/datadir"
	"github.com/icpservice/icp/projections/sqlitemodel"
)

// TestGracefulDrainUnderLoadLosesNothing sends SIGTERM while clients are
// creating: requests in flight are finished (each answered 201, never a
// server error), the process exits 0, and after a restart every
// acknowledged create is in the store once and in the read model.
func TestGracefulDrainUnderLoadLosesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := startChild(t, dir, "--relay-lease-ttl=2s", "--projector-ack-wait=5s")
	token := devToken(t, dir, "user_drain")

	var (
		mu          sync.Mutex
		acked       = map[string]bool{}
		serverError atomic.Int64
		nAcked      atomic.Int64
		stop        atomic.Bool
		wg          sync.WaitGroup
	)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 30 * time.Second}
			for i := 0; !stop.Load(); i++ {
				body, _ := json.Marshal(map[string]any{"name": "drain-" + strconv.Itoa(i),
					"leadProviderCriteria": []any{map[string]any{"provider": "baseProvider", "filters": map[string]any{}}}})
				req, _ := http.NewRequest(http.MethodPost, c.BaseURL+"/api/v1/entities/icps", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					continue // refused: the server stopped accepting
				}
				var icp struct{ ID string }
				_ = json.NewDecoder(resp.Body).Decode(&icp)
				resp.Body.Close()
				switch {
				case resp.StatusCode == http.StatusCreated:
					mu.Lock()
					acked[icp.ID] = true
					mu.Unlock()
					nAcked.Add(1)
				case resp.StatusCode >= 500:
					serverError.Add(1)
				}
			}
		}()
	}
	waitFor(t, 60*time.Second, "150 acknowledged creates", func() bool { return nAcked.Load() >= 150 })
	if err := c.stop(t); err != nil {
		t.Errorf("graceful stop under load: exit %v", err)
	}
	stop.Store(true)
	wg.Wait()
	if n := serverError.Load(); n > 0 {
		t.Errorf("%d requests answered with a server error during the drain", n)
	}

	// After the drain, before any restart: the store holds every
	// acknowledged create once.
	ctx := context.Background()
	store, err := sqlitestore.Open(ctx, filepath.Join(dir, datadir.EventsFile), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	all, err := store.ReadAll(ctx, 0, 1_000_000)
	store.Close()
	if err != nil {
		t.Fatal(err)
	}
	created := map[string]int{}
	for _, r := range all {
		if r.Type == events.TypeICPCreated {
			created[r.ICPID()]++
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for id := range acked {
		if created[id] != 1 {
			t.Errorf("acknowledged ICP %s is in the store %d times", id, created[id])
		}
	}

	// Restarted, the service projects whatever the drain left unprojected.
	c = startChild(t, dir, "--relay-lease-ttl=2s", "--projector-ack-wait=5s")
	model, err := sqlitemodel.Open(ctx, filepath.Join(dir, datadir.ReadModelFile), sqlitemodel.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer model.Close()
	waitFor(t, 60*time.Second, "every stored ICP in the read model", func() bool {
		for id := range created {
			if v, err := model.Get(ctx, id); err != nil || v.Version < 1 {
				return false
			}
		}
		return true
	})
	t.Logf("%d creates acknowledged before and during the drain", len(acked))
	if err := c.stop(t); err != nil {
		t.Errorf("graceful stop: exit %v", err)
	}
}
