package loadgen_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/icpservice/icp/internal/loadgen"
)

// gatedAPI answers creates with 201 (every failEvery-th with 503), and holds
// the request numbered at in hold until release is closed, after sending on
// arrived: with one client, the run has then recorded exactly at-1 answers.
type gatedAPI struct {
	failEvery int64
	holds     map[int64]chan struct{}
	arrived   chan int64
	n         atomic.Int64
}

func (g *gatedAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := g.n.Add(1)
	if release, ok := g.holds[n]; ok {
		g.arrived <- n
		<-release
	}
	if g.failEvery > 0 && n%g.failEvery == 0 {
		http.Error(w, `{"error":{"code":"UNAVAILABLE"}}`, http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Location", fmt.Sprintf("/api/v1/entities/icps/id-%d", n))
	w.WriteHeader(http.StatusCreated)
}

// Each interval reports the creates, errors and rate of that interval only,
// the memory sampled at its end, and the run ends with the rest of the last
// interval; the final summary still covers the whole run.
func TestRunReportsEachInterval(t *testing.T) {
	g := &gatedAPI{failEvery: 5, arrived: make(chan int64),
		holds: map[int64]chan struct{}{11: make(chan struct{}), 31: make(chan struct{})}}
	srv := httptest.NewServer(g)
	defer srv.Close()

	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var clock atomic.Int64 // seconds after t0 that now() returns
	now := func() time.Time { return t0.Add(time.Duration(clock.Load()) * time.Second) }
	ticks := make(chan time.Time)
	reports := make(chan loadgen.Interval, 4)
	var rss atomic.Uint64
	rss.Store(100 << 20)

	type outcome struct {
		res loadgen.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := loadgen.Run(context.Background(), loadgen.Config{
			BaseURL: srv.URL, Token: "tok", Concurrency: 1, Requests: 40,
			Interval: 10 * time.Second, Ticks: ticks, Now: now,
			OnInterval: func(iv loadgen.Interval) { reports <- iv },
			Memory:     func() (uint64, error) { return rss.Load(), nil },
		})
		done <- outcome{res, err}
	}()

	// Requests 1-10 answered (2 of them 503) when request 11 arrives.
	if n := <-g.arrived; n != 11 {
		t.Fatalf("request %d held, want 11", n)
	}
	ticks <- t0.Add(10 * time.Second)
	first := <-reports
	close(g.holds[11])

	// Requests 11-30 answered (4 of them 503) when request 31 arrives.
	if n := <-g.arrived; n != 31 {
		t.Fatalf("request %d held, want 31", n)
	}
	rss.Store(150 << 20)
	ticks <- t0.Add(20 * time.Second)
	second := <-reports
	clock.Store(25)
	close(g.holds[31])

	out := <-done
	if out.err != nil {
		t.Fatal(out.err)
	}
	last := <-reports
	select {
	case extra := <-reports:
		t.Fatalf("a report after the last one: %+v", extra)
	default:
	}

	check := func(name string, iv loadgen.Interval, from, to time.Duration, creates, errs int, rate float64, rssMiB uint64) {
		t.Helper()
		if iv.From != from || iv.To != to || iv.Creates != creates || iv.Errors != errs || iv.Rate() != rate || iv.RSS != rssMiB<<20 {
			t.Errorf("%s interval %+v (rate %v), want %s-%s, %d creates, %d errors, %v/s, %d MiB",
				name, iv, iv.Rate(), from, to, creates, errs, rate, rssMiB)
		}
		if creates > 0 && (iv.P50 <= 0 || iv.P50 > iv.P99) {
			t.Errorf("%s interval latencies p50 %s p99 %s", name, iv.P50, iv.P99)
		}
		line := iv.String()
		if !strings.Contains(line, fmt.Sprintf("creates %6d", creates)) || !strings.Contains(line, fmt.Sprintf("rss %d MiB", rssMiB)) {
			t.Errorf("%s interval line %q does not show its creates and memory", name, line)
		}
	}
	check("first", first, 0, 10*time.Second, 8, 2, 0.8, 100)
	check("second", second, 10*time.Second, 20*time.Second, 16, 4, 1.6, 150)
	check("last", last, 20*time.Second, 25*time.Second, 8, 2, 1.6, 150)
	if out.res.Creates != 32 || out.res.Errors != 8 || out.res.Elapsed != 25*time.Second {
		t.Errorf("summary: %d creates, %d errors in %s; want 32, 8 in 25s", out.res.Creates, out.res.Errors, out.res.Elapsed)
	}
}

func TestProcRSSReadsTheResidentMemoryOfAProcess(t *testing.T) {
	if _, err := loadgen.ProcRSS(1 << 30)(); err == nil {
		t.Error("the memory of a process that does not exist was read")
	}
	rss, err := loadgen.ProcRSS(os.Getpid())()
	if err != nil || rss < 1<<20 || rss > 64<<30 {
		t.Fatalf("own resident memory %d bytes, %v", rss, err)
	}
}
