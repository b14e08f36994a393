package api_test

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/icpservice/icp/api"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/sqlitestore"
	"github.com/icpservice/icp/platform/datadir"
)

// startSmallNATS runs a NATS server with JetStream whose largest message is
// maxPayload bytes, until the test ends.
func startSmallNATS(t *testing.T, maxPayload int32) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(),
		NoSigs: true, NoLog: true, MaxPayload: maxPayload,
	})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		t.Fatal("NATS not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

// TestEventsTheBusCannotCarryAreRefusedBeforeTheyAreRecorded runs the whole
// service on a NATS whose max_payload (64 KiB) is far below the API's body
// limit (1 MiB): a create whose event the bus could not carry is answered
// 413 and nothing is recorded; the largest create accepted is published and
// projected like any other, so the relay is never stuck on one; and the
// refusal starts within a few KiB of what the bus carries.
func TestEventsTheBusCannotCarryAreRefusedBeforeTheyAreRecorded(t *testing.T) {
	const maxPayload = 64 << 10
	ns := startSmallNATS(t, maxPayload)
	s := startServiceOn(t, engines{nats: ns.ClientURL()})
	store, err := sqlitestore.Open(context.Background(), filepath.Join(s.dir, datadir.EventsFile), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	head := func() uint64 {
		t.Helper()
		h, err := store.Head(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	alice := s.token("user_alice", "org_acme", false)
	create := func(pad int) resp {
		t.Helper()
		body := `{"name":"Padded","leadProviderCriteria":[{"provider":"baseProvider","filters":{"pad":"` + strings.Repeat("x", pad) + `"}}]}`
		return s.call(http.MethodPost, api.BasePath, alice, body, nil)
	}
	refused := func(pad int) bool {
		t.Helper()
		before := head()
		r := create(pad)
		switch r.status {
		case http.StatusCreated:
			// Published and projected: the creator's wait saw it in the
			// read model, which only the bus feeds.
			if r.header.Get(api.HeaderConsistency) != "" {
				t.Fatalf("create with %d bytes of padding: 201 still pending; was it published?", pad)
			}
			return false
		case http.StatusRequestEntityTooLarge:
			assertError(t, r, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE")
			if h := head(); h != before {
				t.Fatalf("a refused create recorded events: head %d -> %d", before, h)
			}
			return true
		}
		t.Fatalf("create with %d bytes of padding: %d %s", pad, r.status, r.body)
		return false
	}

	// Far above the bus's limit, far below the body limit.
	if !refused(200 << 10) {
		t.Fatal("a create of 200 KiB was accepted by a service whose bus carries 64 KiB")
	}
	// The largest padding accepted, by bisection.
	lo, hi := 0, maxPayload
	if refused(lo) {
		t.Fatal("a small create was refused")
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if refused(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	if slack := maxPayload - events.BusHeaderRoom - lo; slack > 2<<10 {
		t.Errorf("creates are refused from %d bytes of padding, %d bytes below what the bus carries less its header room", hi, slack)
	}
	// An update whose event the bus could not carry is refused the same way.
	small := create(100)
	if small.status != http.StatusCreated {
		t.Fatalf("small create: %d %s", small.status, small.body)
	}
	path := api.BasePath + "/" + idOf(t, small.body)
	before := head()
	// Its body is just within the early bound on bodies (the bus's limit
	// less the header room), so the event as encoded is what is refused.
	const prefix, suffix = `{"leadProviderCriteria":[{"provider":"baseProvider","filters":{"pad":"`, `"}}]}`
	pad := maxPayload - events.BusHeaderRoom - len(prefix) - len(suffix)
	upd := s.call(http.MethodPatch, path, alice, prefix+strings.Repeat("y", pad)+suffix, nil)
	if e := assertError(t, upd, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE"); !strings.Contains(e.Message, "event") {
		t.Errorf("the update was refused as %q, want the event's size named", e.Message)
	}
	if h := head(); h != before {
		t.Fatalf("a refused update recorded events: head %d -> %d", before, h)
	}
	if g := s.call(http.MethodGet, path, alice, "", nil); g.status != http.StatusOK || g.header.Get("ETag") != `"1"` {
		t.Fatalf("get after the refused update: %d ETag %q", g.status, g.header.Get("ETag"))
	}
	// Later creates flow, through the bus to the read model.
	for range 3 {
		if refused(100) {
			t.Fatal("a small create was refused after the large ones")
		}
	}
	r := s.call(http.MethodGet, api.BasePath, alice, "", nil)
	if r.status != http.StatusOK || strings.Count(r.body, `"name":"Padded"`) < 6 {
		t.Fatalf("list after the refusals: %d, %d ICPs", r.status, strings.Count(r.body, `"name":"Padded"`))
	}
}
