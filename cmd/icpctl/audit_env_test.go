package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icpservice/icp/api/auth"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/sqlitestore"
	"github.com/icpservice/icp/internal/app"
	"github.com/icpservice/icp/internal/config"
	"github.com/icpservice/icp/platform/datadir"
	"github.com/icpservice/icp/projections/rebuild/historytest"
)

// holdEnv names an events.db that the test binary, started as a child, keeps
// open until its stdin closes: another process using the data directory.
const holdEnv = "ICPCTL_TEST_HOLD_DB"

func TestMain(m *testing.M) {
	if path := os.Getenv(holdEnv); path != "" {
		os.Exit(holdOpen(path))
	}
	os.Exit(m.Run())
}

func holdOpen(path string) int {
	st, err := sqlitestore.Open(context.Background(), path, sqlitestore.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer st.Close()
	if _, err := st.Head(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("HOLDING")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// holdInChild keeps path open in another process until the test ends.
func holdInChild(t *testing.T, path string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "HOLDING\n" {
		t.Fatalf("child: %q, %v", line, err)
	}
}

// icpctl runs the command in-process and returns its exit status and output.
func icpctl(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// seedStore writes a history into a new data directory's event store and
// closes it.
func seedStore(t *testing.T, dir string, spec historytest.Spec) []historytest.ICP {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(dir, datadir.EventsFile), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	icps, err := historytest.Write(context.Background(), st, spec)
	if err != nil {
		t.Fatal(err)
	}
	return icps
}

func readAll(t *testing.T, st events.Store) []events.Recorded {
	t.Helper()
	recs, err := st.ReadAll(context.Background(), 0, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// service is icpd running in this process on a data directory.
type service struct {
	*app.App
	base  string
	token string
	stop  func()
}

// startService runs the whole pipeline (store, embedded NATS, relay,
// projector, read model, HTTP API) in development mode on dir.
func startService(t *testing.T, dir string) *service {
	t.Helper()
	s := startServiceUnready(t, dir)
	waitFor(t, 30*time.Second, "icpd ready", func() bool { return s.Ready(context.Background()) == nil })
	return s
}

// startServiceUnready is startService without waiting for icpd to be ready.
func startServiceUnready(t *testing.T, dir string) *service {
	t.Helper()
	cfg, err := config.Load([]string{"--dev", "--addr=127.0.0.1:0", "--embedded-nats-addr=127.0.0.1:0", "--admin-addr=", "--data-dir=" + dir, "--log-level=warn"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(&testLog{t: t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	key, err := auth.LoadOrCreateDevKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	token, err := key.Mint(auth.DevClaims{UserID: "user_audit", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	s := &service{App: a, base: "http://" + a.Addr(), token: token}
	s.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("icpd stopped with %v", err)
			}
		})
	}
	t.Cleanup(s.stop)
	return s
}

type testLog struct {
	t  *testing.T
	mu sync.Mutex
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Logf("icpd: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// create posts an ICP and returns its id; it fails the test unless the
// answer is 201 with the read model caught up.
func (s *service) create(client *http.Client, name string) (string, error) {
	body := fmt.Sprintf(`{"name":%q,"leadProviderCriteria":[{"provider":"baseProvider","filters":{"b":1,"a":[12345678901234567890]}}]}`, name)
	req, _ := http.NewRequest(http.MethodPost, s.base+"/api/v1/entities/icps", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		return "", fmt.Errorf("create: %d %s", resp.StatusCode, b)
	}
	var icp struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&icp); err != nil {
		return "", err
	}
	return icp.ID, nil
}

// rename patches an ICP's name and returns its new version.
func (s *service) rename(client *http.Client, id, name string) (uint64, error) {
	req, _ := http.NewRequest(http.MethodPatch, s.base+"/api/v1/entities/icps/"+id, strings.NewReader(fmt.Sprintf(`{"name":%q}`, name)))
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return 0, fmt.Errorf("update: %d %s", resp.StatusCode, b)
	}
	return strconv.ParseUint(strings.Trim(resp.Header.Get("ETag"), `"`), 10, 64)
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

func (s *service) client() *http.Client { return &http.Client{Timeout: 30 * time.Second} }
