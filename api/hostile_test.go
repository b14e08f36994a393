package api_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icpservice/icp/api"
	"github.com/icpservice/icp/events/sqlitestore"
)

// paddedCreate is a create body of exactly n bytes (JSON allows trailing
// whitespace).
func paddedCreate(t *testing.T, name string, n int) string {
	t.Helper()
	b := `{"name":"` + name + `","leadProviderCriteria":[]}`
	if len(b) > n {
		t.Fatalf("body %q is longer than %d", b, n)
	}
	return b + strings.Repeat(" ", n-len(b))
}

func assertRetryAfter(t *testing.T, r resp) {
	t.Helper()
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q, want whole seconds >= 1", r.header.Get("Retry-After"))
	}
}

func TestBodiesBeyondTheBudgetAre503BeforeAnythingIsRead(t *testing.T) {
	e := newObsEnv(t, api.Config{MaxBodyBytes: 1024, MaxInflightBodyBytes: 1500}, sqlitestore.Options{}, true)

	// A slow sender declares 1000 bytes and sends them one at a time: its
	// share is taken before the first byte is read.
	pr, pw := io.Pipe()
	slow := httptest.NewRequest(http.MethodPost, api.BasePath, pr)
	slow.ContentLength = 1000
	slow.Header.Set("Content-Type", "application/json")
	slow.Header.Set("Authorization", "Bearer alice")
	slowDone := make(chan resp, 1)
	go func() { slowDone <- e.serve(slow) }()
	body := paddedCreate(t, "Slow", 1000)
	if _, err := pw.Write([]byte(body[:1])); err != nil { // returns once the handler reads: its share is held
		t.Fatal(err)
	}

	// 1000 more declared bytes do not fit in the 500 left.
	hr := newRequest(http.MethodPost, api.BasePath, paddedCreate(t, "Declared", 1000))
	r := e.serve(hr)
	if got := assertError(t, r, http.StatusServiceUnavailable, "UNAVAILABLE"); !strings.Contains(got.Message, "nothing was recorded") {
		t.Errorf("refused body: %s", r.body)
	}
	assertRetryAfter(t, r)
	// Nor does a body of unknown length that outgrows them while it is read.
	r = e.doRaw(paddedCreate(t, "Streamed", 600), "application/json", true)
	assertError(t, r, http.StatusServiceUnavailable, "UNAVAILABLE")
	assertRetryAfter(t, r)
	// One that fits goes through.
	if r := e.doRaw(paddedCreate(t, "Small", 400), "application/json", true); r.status != http.StatusCreated {
		t.Fatalf("a body within the room left: %d %s", r.status, r.body)
	}

	if _, err := pw.Write([]byte(body[1:])); err != nil {
		t.Fatal(err)
	}
	_ = pw.Close()
	if r := <-slowDone; r.status != http.StatusCreated {
		t.Fatalf("the slow sender: %d %s", r.status, r.body)
	}
	// Its share is back: a body of the same size fits again.
	if r := e.serve(newRequest(http.MethodPost, api.BasePath, paddedCreate(t, "After", 1000))); r.status != http.StatusCreated {
		t.Fatalf("after the slow sender finished: %d %s", r.status, r.body)
	}
	md := storedMetadata(t, e.store)
	if len(md) != 3 {
		t.Fatalf("the store holds %d events, want the 3 accepted creates", len(md))
	}
}

func TestWritesBeyondTheWaitingLimitAre503AtOnce(t *testing.T) {
	// One slot and one place in the queue; the store is stalled, so the
	// write with the slot stays in the store and the next one waits (for up
	// to a minute). A third finds the queue full and is refused at once.
	e := newObsEnv(t, api.Config{MaxInflightWrites: 1, MaxWaitingWrites: 1, WriteQueueWait: time.Minute, ConsistencyWait: time.Millisecond},
		sqlitestore.Options{BusyTimeout: time.Minute}, true)
	release := lockForWriting(t, filepath.Join(e.dir, "events.db"))

	names := []string{"First", "Second", "Third"}
	answers := make(chan resp, len(names))
	for _, n := range names {
		go func() {
			answers <- e.do(req{method: http.MethodPost, path: api.BasePath, token: "alice", body: `{"name":"` + n + `","leadProviderCriteria":[]}`})
		}()
	}
	var refused resp
	select { // neither the holder nor the waiter can answer before the lock is released
	case refused = <-answers:
	case <-time.After(30 * time.Second):
		t.Fatal("no write was refused while one held the slot and one waited")
	}
	if got := assertError(t, refused, http.StatusServiceUnavailable, "UNAVAILABLE"); !strings.Contains(got.Message, "nothing was recorded") {
		t.Errorf("refused write: %s", refused.body)
	}
	assertRetryAfter(t, refused)
	release()
	for range 2 {
		if r := <-answers; r.status != http.StatusCreated {
			t.Fatalf("the holder and the waiter: %d %s", r.status, r.body)
		}
	}
	if md := storedMetadata(t, e.store); len(md) != 2 {
		t.Fatalf("the store holds %d events, want the 2 admitted writes", len(md))
	}
}

func TestTheRateLimiterForgetsTheLeastRecentUserBeyondItsBound(t *testing.T) {
	// Room for two users' buckets; one request per 100 s after a burst of
	// one.
	e := newObsEnv(t, api.Config{RateLimit: 0.01, RateBurst: 1, RateLimitUsers: 2}, sqlitestore.Options{}, true)
	get := func(token string) resp { return e.do(req{method: http.MethodGet, path: api.BasePath, token: token}) }
	if r := get("alice"); r.status != http.StatusOK {
		t.Fatalf("alice: %d", r.status)
	}
	r := get("alice")
	assertError(t, r, http.StatusTooManyRequests, "RATE_LIMITED")
	assertRetryAfter(t, r)
	// Two more users push alice's bucket out: memory stays at two buckets,
	// and alice starts again with a full one.
	for _, u := range []string{"bob", "admin"} {
		if r := get(u); r.status != http.StatusOK {
			t.Fatalf("%s: %d", u, r.status)
		}
	}
	if r := get("alice"); r.status != http.StatusOK {
		t.Fatalf("alice after her bucket was forgotten: %d %s", r.status, r.body)
	}
	// The more recent of the others kept its empty bucket (alice's return
	// pushed out bob's).
	assertError(t, get("admin"), http.StatusTooManyRequests, "RATE_LIMITED")
}

func TestInventedMethodsAndHugeIDsStayOutOfLogsAndAnswers(t *testing.T) {
	e := newObsEnv(t, api.Config{}, sqlitestore.Options{}, false)
	invented := "INVENTED" + strings.Repeat("X", 5000)
	longPath := "/made/up/" + strings.Repeat("p", 5000)
	hugeID := strings.Repeat("r", 100_000)
	for _, r := range []resp{
		e.do(req{method: invented, path: longPath, header: map[string]string{"X-Request-Id": hugeID, "X-Correlation-Id": hugeID}}),
		e.do(req{method: invented, path: api.BasePath, header: map[string]string{"X-Request-Id": "bad id\nwith a newline"}}),
	} {
		if r.status != http.StatusNotFound && r.status != http.StatusMethodNotAllowed {
			t.Errorf("invented method: %d %s", r.status, r.body)
		}
		if len(r.body) > 1024 {
			t.Errorf("the answer echoes %d bytes of the request", len(r.body))
		}
		if rid := r.header.Get("X-Request-Id"); !generatedID.MatchString(rid) {
			t.Errorf("X-Request-Id %.40q…, want a generated one", rid)
		}
	}
	text := e.logs.text()
	if strings.Contains(text, "INVENTED") || strings.Contains(text, strings.Repeat("r", 200)) || strings.Contains(text, "with a newline") {
		t.Fatalf("the log carries what the client invented (%d bytes)", len(text))
	}
	lines := e.logs.lines(t)
	if len(lines) != 2 {
		t.Fatalf("%d log lines, want 2 access lines", len(lines))
	}
	for _, l := range lines {
		if l["method"] != "other" {
			t.Errorf("access line method %v, want other", l["method"])
		}
	}
}
