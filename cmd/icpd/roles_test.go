package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/api/auth"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/relay"
	"github.com/icpservice/icp/events/sqlitestore"
	"github.com/icpservice/icp/internal/natsserver"
)

// Environment variables that make this test binary run as another program.
const (
	asICPD = "ICPD_TEST_AS_ICPD" // value: icpd's arguments, separated by \x1f
	asNATS = "ICPD_TEST_AS_NATS" // value: store dir; prints "NATS <url>"
)

func TestMain(m *testing.M) {
	if args := os.Getenv(asICPD); args != "" {
		os.Args = append([]string{"icpd"}, strings.Split(args, "\x1f")...)
		main()
		os.Exit(0)
	}
	if dir := os.Getenv(asNATS); dir != "" {
		os.Exit(runNATS(dir))
	}
	os.Exit(m.Run())
}

// runNATS runs a NATS server with JetStream until SIGTERM: the shared bus of
// the multi-process test, in a process of its own.
func runNATS(dir string) int {
	s, err := natsserver.Start(natsserver.Config{StoreDir: dir, Name: "icp-test-bus"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("NATS %s\n", s.ClientURL())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	<-ctx.Done()
	s.Shutdown()
	return 0
}

// proc is a child process of this test.
type proc struct {
	name   string
	cmd    *exec.Cmd
	admin  string // admin listener address ("" for NATS)
	exited chan struct{}
}

func spawn(t *testing.T, name string, env string, stdout io.Writer) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env)
	cmd.Stderr = &logWriter{t: t, name: name}
	cmd.Stdout = stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { p.signal(syscall.SIGKILL) })
	return p
}

func (p *proc) signal(sig os.Signal) {
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// startICPD runs icpd with args plus a fresh admin address and waits until
// its admin /readyz answers 200.
func startICPD(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	admin := freeAddr(t)
	args = append(args, "--admin-addr="+admin, "--log-level=warn")
	p := spawn(t, name, asICPD+"="+strings.Join(args, "\x1f"), io.Discard)
	p.admin = admin
	waitUntil(t, 60*time.Second, name+" ready", func() bool {
		select {
		case <-p.exited:
			t.Fatalf("%s exited before it was ready", name)
		default:
		}
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// relayActive reads icp_relay_active from the process's metrics.
func (p *proc) relayActive() bool {
	resp, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.Contains(string(b), "\nicp_relay_active 1\n")
}

// TestRolesInSeparateProcesses runs the bus, the API, two relays and the
// projector as five processes sharing one NATS server and one data directory.
// Creates answered by the API are readable by their creator at once (the
// projector writes in another process), and killing the active relay makes
// the spare take over with no gap and no reordering on the bus.
func TestRolesInSeparateProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five processes")
	}
	dir := t.TempDir()
	key, err := auth.LoadOrCreateDevKey(dir)
	if err != nil {
		t.Fatal(err)
	}

	urls := &lineGrabber{prefix: "NATS "}
	bus := spawn(t, "nats", asNATS+"="+filepath.Join(dir, "bus"), urls)
	natsURL := urls.wait(t, 30*time.Second)
	_ = bus

	common := []string{"--dev", "--data-dir=" + dir, "--nats=" + natsURL, "--relay-lease-ttl=2s"}
	apiAddr := freeAddr(t)
	relay1 := startICPD(t, "relay-1", append(common, "--roles=relay")...)
	waitUntil(t, 30*time.Second, "relay-1 active", relay1.relayActive)
	relay2 := startICPD(t, "relay-2", append(common, "--roles=relay")...)
	startICPD(t, "projector", append(common, "--roles=projector")...)
	startICPD(t, "api", append(common, "--roles=api", "--addr="+apiAddr)...)
	if relay2.relayActive() {
		t.Fatal("two relays are active at once")
	}

	token, err := key.Mint(auth.DevClaims{UserID: "user_roles", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + apiAddr
	createAndRead := func(n int, prefix string) []string {
		ids := make([]string, 0, n)
		for i := 0; i < n; i++ {
			status, hdr, body := do(t, http.MethodPost, base+"/api/v1/entities/icps", token,
				fmt.Sprintf(`{"name":"%s-%d","leadProviderCriteria":[{"provider":"baseProvider","filters":{}}]}`, prefix, i))
			if status != http.StatusCreated {
				t.Fatalf("create: %d %s", status, body)
			}
			if hdr.Get("ICP-Consistency") == "pending" {
				t.Fatalf("create %d answered pending: the projector in another process did not show it within the wait", i)
			}
			var icp struct{ ID string }
			_ = json.Unmarshal(body, &icp)
			status, _, got := do(t, http.MethodGet, base+"/api/v1/entities/icps/"+icp.ID, token, "")
			if status != http.StatusOK || !bytes.Equal(got, body) {
				t.Fatalf("read after create: %d %s, want the 201 body %s", status, got, body)
			}
			ids = append(ids, icp.ID)
		}
		return ids
	}
	ids := createAndRead(20, "before")

	// Kill the active relay mid-stream: creates go on, the spare takes over.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		relay1.signal(syscall.SIGKILL)
	}()
	ids = append(ids, createAndRead(20, "during")...)
	wg.Wait()
	waitUntil(t, 30*time.Second, "the spare relay to take over", relay2.relayActive)
	ids = append(ids, createAndRead(10, "after")...)

	status, _, list := do(t, http.MethodGet, base+"/api/v1/entities/icps", token, "")
	var listed []struct{ ID string }
	if status != http.StatusOK || json.Unmarshal(list, &listed) != nil || len(listed) != len(ids) {
		t.Fatalf("list: %d, %d items, want %d", status, len(listed), len(ids))
	}
	for i := range ids {
		if listed[i].ID != ids[i] {
			t.Fatalf("list item %d is %s, want %s (creation order)", i, listed[i].ID, ids[i])
		}
	}

	// The bus holds every stored event once, in store order.
	ctx := context.Background()
	store, err := sqlitestore.Open(ctx, filepath.Join(dir, "events.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	all, err := store.ReadAll(ctx, 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	waitUntil(t, 30*time.Second, "the bus to catch up with the store", func() bool {
		p, err := relay.BusPosition(ctx, nc)
		return err == nil && p == all[len(all)-1].Position
	})
	js, _ := jetstream.New(nc)
	stream, err := js.Stream(ctx, events.BusStream)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := stream.Info(ctx)
	if info.State.Msgs != uint64(len(all)) {
		t.Fatalf("bus holds %d messages, the store %d events", info.State.Msgs, len(all))
	}
	for i, seq := 0, info.State.FirstSeq; seq <= info.State.LastSeq; i, seq = i+1, seq+1 {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if m.Header.Get(events.HeaderID) != all[i].ID {
			t.Fatalf("bus message %d is %s, the store's event %d is %s", seq, m.Header.Get(events.HeaderID), i, all[i].ID)
		}
	}
}

func do(t *testing.T, method, url, token, body string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(25 * time.Millisecond) // polling interval, not synchronisation
	}
}

// lineGrabber hands over the rest of the first stdout line with a prefix.
type lineGrabber struct {
	prefix string
	mu     sync.Mutex
	buf    bytes.Buffer
	found  chan string
	once   sync.Once
}

func (g *lineGrabber) Write(p []byte) (int, error) {
	g.once.Do(func() { g.found = make(chan string, 1) })
	g.mu.Lock()
	defer g.mu.Unlock()
	g.buf.Write(p)
	for _, line := range strings.Split(g.buf.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, g.prefix); ok && strings.Contains(g.buf.String(), line+"\n") {
			select {
			case g.found <- strings.TrimSpace(rest):
			default:
			}
		}
	}
	return len(p), nil
}

func (g *lineGrabber) wait(t *testing.T, d time.Duration) string {
	t.Helper()
	g.once.Do(func() { g.found = make(chan string, 1) })
	select {
	case s := <-g.found:
		return s
	case <-time.After(d):
		t.Fatalf("no %q line within %s", g.prefix, d)
		return ""
	}
}

type logWriter struct {
	t    *testing.T
	name string
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s: %s", w.name, strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
