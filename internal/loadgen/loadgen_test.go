package loadgen_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/icpservice/icp/internal/loadgen"
)

// fakeAPI answers creates with 201 and the new id in Location and the body
// (every pendingEvery-th one marked ICP-Consistency: pending, every
// failEvery-th one 503, none with a Location when noLocation), and reads of
// ids it handed out with 200 (404 for unreadable ones). It records what it
// was sent.
type fakeAPI struct {
	pendingEvery, failEvery, unreadableEvery int64
	noLocation                               bool

	n        atomic.Int64
	mu       sync.Mutex
	ids      map[string]bool // id -> readable
	bodiesOK atomic.Int64
	authOK   atomic.Int64
	reads    atomic.Int64
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") == "Bearer tok" {
		f.authOK.Add(1)
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/api/v1/entities/icps":
		body, _ := io.ReadAll(r.Body)
		if string(body) == string(loadgen.Body) && r.Header.Get("Content-Type") == "application/json" {
			f.bodiesOK.Add(1)
		}
		n := f.n.Add(1)
		if f.failEvery > 0 && n%f.failEvery == 0 {
			http.Error(w, `{"error":{"code":"UNAVAILABLE"}}`, http.StatusServiceUnavailable)
			return
		}
		id := fmt.Sprintf("id-%d", n)
		f.mu.Lock()
		f.ids[id] = f.unreadableEvery == 0 || n%f.unreadableEvery != 0
		f.mu.Unlock()
		if f.pendingEvery > 0 && n%f.pendingEvery == 0 {
			w.Header().Set("ICP-Consistency", "pending")
		}
		if !f.noLocation {
			w.Header().Set("Location", "/api/v1/entities/icps/"+id)
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":%q,"name":"x"}`, id)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/v1/entities/icps/"):
		f.reads.Add(1)
		f.mu.Lock()
		ok := f.ids[strings.TrimPrefix(r.URL.Path, "/api/v1/entities/icps/")]
		f.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, `{}`)
	default:
		http.Error(w, "unexpected", http.StatusTeapot)
	}
}

func TestRunCountsWhatTheClientSees(t *testing.T) {
	f := &fakeAPI{pendingEvery: 7, failEvery: 10, unreadableEvery: 4, ids: map[string]bool{}}
	srv := httptest.NewServer(f)
	defer srv.Close()

	const requests = 200
	res, err := loadgen.Run(context.Background(), loadgen.Config{
		BaseURL: srv.URL + "/", Token: "tok", Concurrency: 8, Requests: requests, VerifyEvery: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	failed := requests / 10
	if res.Creates != requests-failed || res.Errors != failed {
		t.Fatalf("creates %d, errors %d; want %d and %d", res.Creates, res.Errors, requests-failed, failed)
	}
	if res.Statuses[http.StatusCreated] != requests-failed || res.Statuses[http.StatusServiceUnavailable] != failed {
		t.Fatalf("statuses %v", res.Statuses)
	}
	if !strings.Contains(res.FirstError, "503") || !strings.Contains(res.FirstError, "UNAVAILABLE") {
		t.Fatalf("first error %q does not say what the server answered", res.FirstError)
	}
	// Pending: multiples of 7 that did not fail (not multiples of 10 too).
	wantPending := requests/7 - requests/70
	if res.Pending != wantPending {
		t.Fatalf("pending %d, want %d", res.Pending, wantPending)
	}
	// Every create read back; unreadable: multiples of 4 that did not fail.
	wantUnreadable := requests/4 - requests/20
	if res.ReadFailures != wantUnreadable || f.reads.Load() != int64(requests-failed) {
		t.Fatalf("read failures %d of %d reads, want %d of %d", res.ReadFailures, f.reads.Load(), wantUnreadable, requests-failed)
	}
	if f.bodiesOK.Load() != requests || f.authOK.Load() != int64(requests)+f.reads.Load() {
		t.Fatalf("server saw %d well-formed creates and %d authenticated requests", f.bodiesOK.Load(), f.authOK.Load())
	}
	if res.P50 <= 0 || res.P50 > res.P99 || res.P99 > res.Max || res.Rate() <= 0 {
		t.Fatalf("latencies p50 %s p99 %s max %s, rate %f", res.P50, res.P99, res.Max, res.Rate())
	}
}

// A 201 that does not say where the new ICP is cannot be read back: it
// counts as an error, not as a create.
func TestRunCountsACreateWithoutLocationAsAnError(t *testing.T) {
	f := &fakeAPI{noLocation: true, ids: map[string]bool{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	res, err := loadgen.Run(context.Background(), loadgen.Config{
		BaseURL: srv.URL, Token: "tok", Concurrency: 2, Requests: 10, VerifyEvery: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Creates != 0 || res.Errors != 10 || !strings.Contains(res.FirstError, "Location") {
		t.Fatalf("creates %d, errors %d, first error %q; want 0, 10 and a word on Location", res.Creates, res.Errors, res.FirstError)
	}
}

func TestRunRefusesABadConfig(t *testing.T) {
	for _, cfg := range []loadgen.Config{
		{BaseURL: "http://127.0.0.1:1", Token: "t", Concurrency: 0, Requests: 1},
		{BaseURL: "http://127.0.0.1:1", Token: "", Concurrency: 1, Requests: 1},
		{BaseURL: "ftp://host", Token: "t", Concurrency: 1, Requests: 1},
		{BaseURL: "http://127.0.0.1:1", Token: "t", Concurrency: 1},
	} {
		if _, err := loadgen.Run(context.Background(), cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}
