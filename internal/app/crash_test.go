package app_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/relay"
	"github.com/icpservice/icp/events/sqlitestore"
	"github.com/icpservice/icp/internal/natsauth"
	"github.com/icpservice/icp/platform/datadir"
	"github.com/icpservice/icp/projections"
	"github.com/icpservice/icp/projections/sqlitemodel"
)

// TestKilledMidStreamLosesNoAcknowledgedCreate kills icpd with SIGKILL twice
// while clients are creating ICPs, restarts it on the same data directory, and
// checks that every create answered 201 is in the event store exactly once, on
// the bus exactly once and in store order, and in the read model at the
// version of its stream; and that a final SIGTERM shuts down cleanly.
func TestKilledMidStreamLosesNoAcknowledgedCreate(t *testing.T) {
	t.Parallel()
	killMidStream(t, embedded)
}

// backing is where a crash test's icpd keeps its events and its read model:
// the icpd flags that select them, and how the test opens each afterwards,
// given the data directory, to check what was kept. What it opens is closed
// when the test ends.
type backing struct {
	flags []string
	// perKill is how many creates are acknowledged before each kill
	// (default 100).
	perKill   int
	openStore func(t *testing.T, dir string) events.Store
	openModel func(t *testing.T, dir string) projections.ReadModel
}

// embedded is icpd's default: the SQLite event store and read model in the
// data directory.
var embedded = backing{
	openStore: func(t *testing.T, dir string) events.Store {
		st, err := sqlitestore.Open(context.Background(), filepath.Join(dir, datadir.EventsFile), sqlitestore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	},
	openModel: func(t *testing.T, dir string) projections.ReadModel {
		m, err := sqlitemodel.Open(context.Background(), filepath.Join(dir, datadir.ReadModelFile), sqlitemodel.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close() })
		return m
	},
}

// killMidStream is TestKilledMidStreamLosesNoAcknowledgedCreate on the
// stores b names. Servers b's flags point at must outlive the kills: they
// run in this process. The variants run in parallel, as most of their time
// is spent waiting: for a killed relay's lease to expire, and for JetStream
// to redeliver, after the projector's AckWait (30s), the messages a killed
// projector had received but not acknowledged.
func killMidStream(t *testing.T, b backing) {
	dir := t.TempDir()
	// A killed icpd's relay keeps the lease for its TTL, and the restarted
	// one publishes only once it expired: a short TTL keeps this test from
	// spending most of its time waiting (the default is 10s).
	flags := append([]string{"--relay-lease-ttl=2s", "--projector-ack-wait=5s"}, b.flags...)
	c := startChild(t, dir, flags...)
	perKill := cmp.Or(b.perKill, 100)
	token := devToken(t, dir, "user_crash")

	var (
		mu    sync.Mutex
		acked = map[string]bool{}
	)
	for round := 0; round < 2; round++ {
		var (
			wg     sync.WaitGroup
			stop   atomic.Bool
			nAcked atomic.Int64
		)
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				client := &http.Client{Timeout: 10 * time.Second}
				for i := 0; !stop.Load(); i++ {
					if id, ok := create(client, c.BaseURL, token, "crash-"+strconv.Itoa(round)+"-"+strconv.Itoa(i)); ok {
						mu.Lock()
						acked[id] = true
						mu.Unlock()
						nAcked.Add(1)
					}
				}
			}()
		}
		waitFor(t, 60*time.Second, strconv.Itoa(perKill)+" acknowledged creates", func() bool { return nAcked.Load() >= int64(perKill) })
		c.kill() // mid-stream: clients are still sending
		stop.Store(true)
		wg.Wait()
		c = startChild(t, dir, flags...)
	}

	// Everything the store holds reaches the bus and the read model.
	ctx := context.Background()
	store := b.openStore(t, dir)
	model := b.openModel(t, dir)
	nc, err := nats.Connect(c.NATSURL, nats.UserCredentials(natsauth.ServiceCredsPath(dir)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	all, err := store.ReadAll(ctx, 0, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	head := all[len(all)-1].Position
	waitFor(t, 60*time.Second, "the bus to hold the store's last position", func() bool {
		p, err := relay.BusPosition(ctx, nc)
		return err == nil && p == head
	})
	waitFor(t, 60*time.Second, "the read model to hold every stream", func() bool {
		for _, r := range all {
			v, err := model.Get(ctx, r.ICPID())
			if err != nil || v.Version < r.Version {
				return false
			}
		}
		return true
	})

	// Store: every acknowledged create once.
	created := map[string]int{}
	for _, r := range all {
		if r.Type == events.TypeICPCreated {
			created[r.ICPID()]++
		}
	}
	mu.Lock()
	for id := range acked {
		if created[id] != 1 {
			t.Errorf("acknowledged ICP %s is in the store %d times", id, created[id])
		}
	}
	t.Logf("%d creates acknowledged, %d recorded (the difference were in flight at a kill)", len(acked), len(created))
	mu.Unlock()

	// Bus: exactly the store's events, in store order.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, events.BusStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != uint64(len(all)) {
		t.Errorf("bus holds %d messages, store %d events", info.State.Msgs, len(all))
	}
	i := 0
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && i < len(all); seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("bus message %d: %v", seq, err)
		}
		if got := m.Header.Get(events.HeaderID); got != all[i].ID {
			t.Fatalf("bus message %d is event %s, store order says %s (position %d)", seq, got, all[i].ID, all[i].Position)
		}
		i++
	}

	// Read model: each ICP at its stream's version, served as recorded.
	for _, r := range all {
		v, err := model.Get(ctx, r.ICPID())
		if err != nil {
			t.Fatalf("read model %s: %v", r.ICPID(), err)
		}
		s, err := projections.StateOf(v)
		if err != nil {
			t.Fatal(err)
		}
		if s.Version != r.Version || s.CreatedPosition != r.Position || s.Tenant == "" {
			t.Errorf("read model %s: version %d position %d, store has version %d position %d", r.ICPID(), s.Version, s.CreatedPosition, r.Version, r.Position)
		}
	}

	if err := c.stop(t); err != nil {
		t.Errorf("graceful shutdown: exit %v", err)
	}
}

// create posts one ICP and reports its id when the answer was 201.
func create(client *http.Client, base, token, name string) (string, bool) {
	body, _ := json.Marshal(map[string]any{
		"name":                 name,
		"leadProviderCriteria": []any{map[string]any{"provider": "baseProvider", "filters": map[string]any{"job_title": []string{"CTO"}}}},
	})
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/entities/icps", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", false
	}
	var icp struct {
		ID string `json:"id"`
	}
	if json.NewDecoder(resp.Body).Decode(&icp) != nil || icp.ID == "" {
		return "", false
	}
	return icp.ID, true
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}
