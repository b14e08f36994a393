package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/icpservice/icp/api/auth"
	"github.com/icpservice/icp/internal/natsserver"
)

// syncBuffer collects a child's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startCapturing runs icpd with args, its stderr collected. stop ends it
// with SIGTERM (SIGKILL after 30 s) and returns its exit code; it also runs
// when the test ends.
func startCapturing(t *testing.T, args ...string) (stderr *syncBuffer, exited chan struct{}, stop func() int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), asICPD+"="+strings.Join(args, "\x1f"))
	stderr = &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited = make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	var once sync.Once
	stop = func() int {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
			t.Logf("icpd stderr:\n%s", stderr.String())
		})
		return cmd.ProcessState.ExitCode()
	}
	t.Cleanup(func() { stop() })
	return stderr, exited, stop
}

// readyz answers the status code of /readyz and its body, or 0 while the
// admin listener does not answer.
func readyz(admin string) (int, string) {
	resp, err := http.Get("http://" + admin + "/readyz")
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestNATSUnreachableAtStartIsWaitedFor starts icpd against a NATS address
// where nothing listens: it keeps running, says it retries, and is not ready;
// once a NATS server appears there, the relay and the projector start, the
// service becomes ready and a create is projected for its creator.
func TestNATSUnreachableAtStartIsWaitedFor(t *testing.T) {
	dir := t.TempDir()
	key, err := auth.LoadOrCreateDevKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	natsAddr, apiAddr, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	_, portText, _ := net.SplitHostPort(natsAddr)
	port, _ := strconv.Atoi(portText)

	stderr, exited, stop := startCapturing(t, "--dev", "--data-dir="+dir, "--nats=nats://"+natsAddr,
		"--addr="+apiAddr, "--admin-addr="+admin, "--log-level=info")
	waitUntil(t, 60*time.Second, "icpd to say it retries NATS with a delay", func() bool {
		select {
		case <-exited:
			t.Fatalf("icpd exited while NATS was unreachable:\n%s", stderr.String())
		default:
		}
		s := stderr.String()
		return strings.Contains(s, "NATS not reachable; retrying") && strings.Contains(s, "retry_in=")
	})
	waitUntil(t, 30*time.Second, "the admin listener", func() bool { code, _ := readyz(admin); return code != 0 })
	if code, body := readyz(admin); code != http.StatusServiceUnavailable || !strings.Contains(body, "bus") {
		t.Fatalf("readyz with NATS unreachable: %d %s, want 503 naming the bus", code, body)
	}

	bus, err := natsserver.Start(natsserver.Config{StoreDir: t.TempDir(), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bus.Shutdown)
	waitUntil(t, 60*time.Second, "icpd ready once NATS is reachable", func() bool {
		code, _ := readyz(admin)
		return code == http.StatusOK
	})

	token, err := key.Mint(auth.DevClaims{UserID: "user_late_bus", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + apiAddr + "/api/v1/entities/icps"
	status, hdr, body := do(t, http.MethodPost, base, token, `{"name":"late bus","leadProviderCriteria":[{"provider":"baseProvider","filters":{}}]}`)
	if status != http.StatusCreated || hdr.Get("ICP-Consistency") == "pending" {
		t.Fatalf("create: %d (consistency %q) %s, want 201 projected", status, hdr.Get("ICP-Consistency"), body)
	}
	var icp struct{ ID string }
	if err := json.Unmarshal(body, &icp); err != nil {
		t.Fatal(err)
	}
	status, _, got := do(t, http.MethodGet, base+"/"+icp.ID, token, "")
	if status != http.StatusOK || !bytes.Equal(got, body) {
		t.Fatalf("read after create: %d %s, want the 201 body %s", status, got, body)
	}
	if !strings.Contains(stderr.String(), "NATS reachable") {
		t.Fatalf("icpd did not log that NATS became reachable:\n%s", stderr.String())
	}
	if code := stop(); code != 0 {
		t.Fatalf("icpd exited with %d after SIGTERM, want 0", code)
	}
}
