package app_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icpservice/icp/internal/app"
	"github.com/icpservice/icp/internal/config"
)

// syncBuffer collects log output; safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
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

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

const secret = "Sup3r-s3cret-pw"

// TestCredentialsInURLsNeverReachLogsOrErrors runs the API role against an
// event store, a read model and a NATS server that are all unreachable, each
// URL with a password: the start-up line, the retry warnings, the admin
// listener's readiness reason and the errors of a refused configuration
// never carry it.
func TestCredentialsInURLsNeverReachLogsOrErrors(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Load([]string{"--dev", "--roles=api", "--addr=127.0.0.1:0", "--admin-addr=127.0.0.1:0", "--data-dir=" + dir, "--log-level=debug",
		"--event-store=esdb://admin:" + secret + "@127.0.0.1:1?tls=true",
		"--read-model=mongodb://icp:" + secret + "@127.0.0.1:1/icp",
		"--nats=nats://n:" + secret + "@127.0.0.1:1,nats://m:" + secret + "@127.0.0.1:2",
	})
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, app.NewLogger(cfg, &logs))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()

	var reason string
	waitFor(t, 30*time.Second, "the admin /readyz to name the unreachable event store", func() bool {
		status, body := get(t, "http://"+a.AdminAddr()+"/readyz")
		reason = body
		return status == http.StatusServiceUnavailable && strings.Contains(body, "event store")
	})
	if strings.Contains(reason, secret) {
		t.Errorf("admin /readyz shows the password: %s", reason)
	}
	status, body := get(t, "http://"+a.Addr()+"/readyz")
	if status != http.StatusServiceUnavailable || strings.Contains(body, "event store") || strings.Contains(body, "127.0.0.1") {
		t.Errorf("API /readyz: %d %s, want 503 without the reason", status, body)
	}
	waitFor(t, 30*time.Second, "the retry warnings of both stores", func() bool {
		l := logs.String()
		return strings.Contains(l, "event store not reachable") && strings.Contains(l, "read model not reachable")
	})
	cancel()
	<-done
	if l := logs.String(); strings.Contains(l, secret) || !strings.Contains(l, "icpd running") {
		t.Errorf("the log carries the password, or lacks the start-up line:\n%s", l)
	}

	// A refused configuration names the bad URL without its password.
	_, err = config.Load([]string{"--dev", "--data-dir=" + dir,
		"--nats=nats://n:" + secret + "@ok:4222,http://h:" + secret + "@wrong:80",
		"--event-store=http://admin:" + secret + "@es:2113",
		"--read-model=mongo://icp:" + secret + "@m:27017",
		"--otlp-endpoint=ftp://o:" + secret + "@otel:4318"})
	if err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "wrong:80") || !strings.Contains(err.Error(), "otel:4318") {
		t.Errorf("config error: %v", err)
	}
}

func TestProfilerIsServedOnlyWhenAskedFor(t *testing.T) {
	for _, on := range []bool{false, true} {
		dir := t.TempDir()
		args := []string{"--dev", "--addr=127.0.0.1:0", "--admin-addr=127.0.0.1:0", "--data-dir=" + dir, "--log-level=warn"}
		if on {
			args = append(args, "--pprof")
		}
		cfg, err := config.Load(args)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		a, err := app.New(ctx, cfg, app.NewLogger(cfg, io.Discard))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap"} {
			status, _ := get(t, "http://"+a.AdminAddr()+path)
			if want := map[bool]int{false: http.StatusNotFound, true: http.StatusOK}[on]; status != want {
				t.Errorf("--pprof=%v: %s answered %d, want %d", on, path, status, want)
			}
		}
		if status, _ := get(t, "http://"+a.AdminAddr()+"/metrics"); status != http.StatusOK {
			t.Errorf("--pprof=%v: /metrics answered %d", on, status)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}
}

// TestInventedMethodsAddNoSeriesThroughTheService sends unauthenticated
// requests with invented methods and paths to the running service: after
// the first, /metrics has no more series.
func TestInventedMethodsAddNoSeriesThroughTheService(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Load([]string{"--dev", "--addr=127.0.0.1:0", "--embedded-nats-addr=127.0.0.1:0", "--admin-addr=127.0.0.1:0", "--data-dir=" + dir, "--log-level=warn"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, app.NewLogger(cfg, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	httpSeries := func() int {
		_, body := get(t, "http://"+a.AdminAddr()+"/metrics")
		n := 0
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "icp_http_") {
				n++
			}
		}
		return n
	}
	client := &http.Client{Timeout: 10 * time.Second}
	send := func(i int) {
		req, err := http.NewRequest("M"+strconv.Itoa(i), "http://"+a.Addr()+"/invented/"+strconv.Itoa(i), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	send(0)
	first := httpSeries()
	for i := 1; i < 1000; i++ {
		send(i)
	}
	if got := httpSeries(); got != first || first == 0 {
		t.Fatalf("1000 invented methods left %d icp_http_ series lines, want the %d the first one made", got, first)
	}
}
