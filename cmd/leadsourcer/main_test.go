package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/icpservice/icp/bus"
	"github.com/icpservice/icp/commands"
	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events/relay"
	"github.com/icpservice/icp/events/sqlitestore"
	"github.com/icpservice/icp/internal/natsauth"
	"github.com/icpservice/icp/internal/natsserver"
)

// syncBuffer is a bytes.Buffer safe for the worker's logger and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLogsWhatItWouldSourceForEachNewICP runs the worker against the real
// pipeline (SQLite event store, relay, embedded NATS) and reads its logs.
func TestLogsWhatItWouldSourceForEachNewICP(t *testing.T) {
	// icpd's embedded server as icpd runs it: only its users are admitted.
	dir := t.TempDir()
	id, err := natsauth.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := natsserver.Start(natsserver.Config{StoreDir: filepath.Join(dir, "nats"), Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	ctx := context.Background()
	store, err := sqlitestore.Open(ctx, filepath.Join(dir, "events.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	nc, err := nats.Connect(srv.ClientURL(), nats.UserCredentials(natsauth.ServiceCredsPath(dir)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if err := bus.EnsureStreams(ctx, nc, bus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	r, err := relay.New(relay.Config{Store: store, Conn: nc, InstanceID: "relay-" + uuid.NewString()[:8]})
	if err != nil {
		t.Fatal(err)
	}
	relayCtx, stopRelay := context.WithCancel(ctx)
	relayDone := make(chan error, 1)
	go func() { relayDone <- r.Run(relayCtx) }()
	t.Cleanup(func() { stopRelay(); <-relayDone })

	cmds := commands.NewHandler(store)
	p := domain.Actor{UserID: "user_1", Tenant: "org_1"}
	for _, body := range []string{
		`{"name":"DACH Tech Leaders","leadProviderCriteria":[{"provider":"baseProvider","type":"company","filters":{"x":1}},{"provider":"baseProvider","filters":{}}],"leadsPerList":20}`,
		`{"name":"No criteria","leadProviderCriteria":[]}`,
	} {
		cmd, err := commands.ParseCreate([]byte(body), p.UserID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cmds.Create(ctx, p, cmd, "", commands.RequestMeta{}); err != nil {
			t.Fatal(err)
		}
	}

	t.Setenv("LEADSOURCER_DURABLE", "sourcer-from-env")
	var stdout, stderr syncBuffer
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan int, 1)
	go func() {
		// The workers' credentials are found from --data-dir.
		done <- run(runCtx, []string{"--nats-url=" + srv.ClientURL(), "--data-dir=" + dir, "--ack-wait=5s"}, &stdout, &stderr)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(stderr.String(), `"msg":"would source leads"`)+strings.Count(stderr.String(), `"msg":"nothing to source`) < 2 {
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("the worker did not log both ICPs; its output:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
	stop()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d after a graceful stop; output:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the worker did not stop")
	}

	var sourced []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["msg"] == "would source leads" || strings.HasPrefix(rec["msg"].(string), "nothing to source") {
			sourced = append(sourced, rec)
		}
		if rec["durable"] != nil && rec["durable"] != "sourcer-from-env" {
			t.Errorf("durable %v, want the environment's", rec["durable"])
		}
	}
	if len(sourced) != 2 {
		t.Fatalf("%d sourcing lines, want 2", len(sourced))
	}
	first := sourced[0]
	if first["name"] != "DACH Tech Leaders" || first["leadsPerList"] != 20.0 || first["tenant"] != "org_1" {
		t.Errorf("first line %v", first)
	}
	if got, _ := json.Marshal(first["providers"]); string(got) != `["baseProvider/company","baseProvider/person"]` {
		t.Errorf("providers %s", got)
	}
	if second := sourced[1]; second["name"] != "No criteria" || second["leadsPerList"] != 10.0 {
		t.Errorf("second line %v", second)
	}
	js, _ := nc.JetStream()
	if _, err := js.ConsumerInfo("ICP_EVENTS", "sourcer-from-env"); err != nil {
		t.Errorf("durable named by the environment: %v", err)
	}
}

func TestInvalidConfigurationIsReportedWholeWithExitCode2(t *testing.T) {
	var stdout, stderr syncBuffer
	missing := filepath.Join(t.TempDir(), "missing.creds")
	code := run(context.Background(), []string{"--durable=a.b", "--max-attempts=0", "--ack-wait=10ms", "--nats-creds=" + missing}, &stdout, &stderr)
	if code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	for _, want := range []string{"--max-attempts", "--ack-wait", `Durable "a.b"`, "--nats-creds"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr %q does not name %s", stderr.String(), want)
		}
	}
	stderr = syncBuffer{}
	if code := run(context.Background(), []string{"--durable=a.b"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), `Durable "a.b"`) {
		t.Errorf("bad durable: exit %d, %q", code, stderr.String())
	}
	stderr = syncBuffer{}
	if code := run(context.Background(), []string{"--start-at=middle"}, &stdout, &stderr); code != 2 {
		t.Errorf("bad --start-at: exit %d, %q", code, stderr.String())
	}
}
