package api_test

import (
	"context"
	"database/sql"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icpservice/icp/api"
	"github.com/icpservice/icp/events/sqlitestore"
)

func TestUsersOverTheirRateAreAnswered429WithRetryAfter(t *testing.T) {
	// One request per 100 s after a burst of 2: the third is refused
	// however slowly this test runs.
	e := newObsEnv(t, api.Config{RateLimit: 0.01, RateBurst: 2}, sqlitestore.Options{}, true)
	for i := range 2 {
		if r := e.do(req{method: http.MethodGet, path: api.BasePath, token: "alice"}); r.status != http.StatusOK {
			t.Fatalf("request %d within the burst: %d %s", i+1, r.status, r.body)
		}
	}
	r := e.do(req{method: http.MethodPost, path: api.BasePath, token: "alice", body: `{"name":"Over","leadProviderCriteria":[]}`})
	assertError(t, r, http.StatusTooManyRequests, "RATE_LIMITED")
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 || s > 100 {
		t.Errorf("Retry-After %q, want 1 to 100 seconds", r.header.Get("Retry-After"))
	}
	if md := storedMetadata(t, e.store); len(md) != 0 {
		t.Errorf("a refused create recorded %d events", len(md))
	}
	// Another user has a bucket of its own; unauthenticated requests are
	// refused before any bucket is touched.
	if r := e.do(req{method: http.MethodGet, path: api.BasePath, token: "bob"}); r.status != http.StatusOK {
		t.Errorf("bob: %d %s", r.status, r.body)
	}
	assertError(t, e.do(req{method: http.MethodGet, path: api.BasePath, token: "nobody"}), http.StatusUnauthorized, "UNAUTHORIZED")
	// Without a rate limit nobody is limited.
	free := newObsEnv(t, api.Config{}, sqlitestore.Options{}, true)
	for i := range 20 {
		if r := free.do(req{method: http.MethodGet, path: api.BasePath, token: "alice"}); r.status != http.StatusOK {
			t.Fatalf("request %d without a limit: %d", i+1, r.status)
		}
	}
}

func TestCORSAllowsTheConfiguredOriginsOnly(t *testing.T) {
	const app = "https://app.example.com"
	e := newObsEnv(t, api.Config{CORSOrigins: []string{"HTTPS://App.Example.com/"}}, sqlitestore.Options{}, false)
	preflight := func(origin string) resp {
		return e.do(req{method: http.MethodOptions, path: api.BasePath, header: map[string]string{
			"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type,idempotency-key",
		}})
	}

	ok := preflight(app)
	allowMethods, allowHeaders := ok.header.Get("Access-Control-Allow-Methods"), strings.ToLower(ok.header.Get("Access-Control-Allow-Headers"))
	if ok.status != http.StatusNoContent || ok.header.Get("Access-Control-Allow-Origin") != app ||
		!strings.Contains(allowMethods, "POST") || !strings.Contains(allowMethods, "PATCH") ||
		!strings.Contains(allowHeaders, "authorization") || !strings.Contains(allowHeaders, "idempotency-key") || !strings.Contains(allowHeaders, "if-match") ||
		ok.header.Get("Access-Control-Max-Age") != "600" || ok.header.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("preflight from %s: %d %v", app, ok.status, ok.header)
	}

	for _, origin := range []string{"https://evil.example.com", "http://app.example.com", "https://app.example.com.evil.io", "null"} {
		no := preflight(origin)
		if got := assertError(t, no, http.StatusForbidden, "FORBIDDEN"); !strings.Contains(got.Message, "cross-origin") || no.header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight from %s: %d %s %v", origin, no.status, no.body, no.header)
		}
		// The request itself is refused too, before it runs.
		r := e.do(req{method: http.MethodPost, path: api.BasePath, token: "alice", body: `{"name":"X","leadProviderCriteria":[]}`, header: map[string]string{"Origin": origin}})
		assertError(t, r, http.StatusForbidden, "FORBIDDEN")
	}
	if md := storedMetadata(t, e.store); len(md) != 0 {
		t.Fatalf("requests from refused origins recorded %d events", len(md))
	}

	// The actual request from the allowed origin exposes what clients read.
	r := e.do(req{method: http.MethodPost, path: api.BasePath, token: "alice", body: `{"name":"From the app","leadProviderCriteria":[]}`, header: map[string]string{"Origin": app}})
	expose := strings.ToLower(r.header.Get("Access-Control-Expose-Headers"))
	if r.status != http.StatusCreated || r.header.Get("Access-Control-Allow-Origin") != app {
		t.Fatalf("create from %s: %d %v", app, r.status, r.header)
	}
	for _, h := range []string{"etag", "location", "retry-after", "icp-consistency", "x-request-id", "link"} {
		if !strings.Contains(expose, h) {
			t.Errorf("Access-Control-Expose-Headers %q lacks %s", expose, h)
		}
	}
	// Same-origin and non-browser requests carry no CORS headers.
	for _, h := range []map[string]string{nil, {"Origin": "http://example.com"}} { // httptest's Host is example.com
		r := e.do(req{method: http.MethodGet, path: api.BasePath, token: "alice", header: h})
		if r.status != http.StatusOK || r.header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("Origin %v: %d, Access-Control-Allow-Origin %q", h, r.status, r.header.Get("Access-Control-Allow-Origin"))
		}
	}

	// Without configured origins there is no CORS at all: a preflight is
	// a method the route does not have.
	off := newObsEnv(t, api.Config{}, sqlitestore.Options{}, false)
	r = off.do(req{method: http.MethodOptions, path: api.BasePath, header: map[string]string{"Origin": app, "Access-Control-Request-Method": "POST"}})
	if r.status != http.StatusMethodNotAllowed || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight without CORS configured: %d %v", r.status, r.header)
	}
}

func TestWritesBeyondTheLimitAre503BeforeAnythingIsRecorded(t *testing.T) {
	// One write slot; the event store is stalled by another connection
	// holding its write lock, so the write that gets the slot waits in the
	// store, and the other one waits for the slot.
	e := newObsEnv(t, api.Config{MaxInflightWrites: 1, WriteQueueWait: 50 * time.Millisecond, ConsistencyWait: time.Millisecond},
		sqlitestore.Options{BusyTimeout: time.Minute}, true)
	release := lockForWriting(t, filepath.Join(e.dir, "events.db"))

	names := []string{"First", "Second"}
	answers := make(chan resp, len(names))
	for _, n := range names {
		go func() {
			answers <- e.do(req{method: http.MethodPost, path: api.BasePath, token: "alice", body: `{"name":"` + n + `","leadProviderCriteria":[]}`})
		}()
	}
	var refused resp
	select { // the holder cannot answer before the lock is released
	case refused = <-answers:
	case <-time.After(30 * time.Second):
		t.Fatal("no write was refused while the store was stalled")
	}
	if got := assertError(t, refused, http.StatusServiceUnavailable, "UNAVAILABLE"); !strings.Contains(got.Message, "nothing was recorded") || refused.header.Get("Retry-After") == "" {
		t.Fatalf("refused write: %s, Retry-After %q", refused.body, refused.header.Get("Retry-After"))
	}
	release()
	created := <-answers
	if created.status != http.StatusCreated {
		t.Fatalf("the write that held the slot: %d %s", created.status, created.body)
	}

	recs, err := e.store.ReadAll(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].ICPID() != idOf(t, created.body) {
		t.Fatalf("the store holds %d events, want only the created ICP's", len(recs))
	}
	// The slot is free again: the next write goes through.
	r := e.do(req{method: http.MethodPost, path: api.BasePath, token: "alice", body: `{"name":"Third","leadProviderCriteria":[]}`})
	if r.status != http.StatusCreated {
		t.Fatalf("write after the stall: %d %s", r.status, r.body)
	}
}

// lockForWriting holds the write lock of an SQLite file from another
// connection until release is called (or the test ends).
func lockForWriting(t *testing.T, path string) (release func()) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	done := false
	release = func() {
		if done {
			return
		}
		done = true
		if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
			t.Error(err)
		}
		_ = conn.Close()
	}
	t.Cleanup(release)
	return release
}

func TestConfigValidateReportsEveryOverloadProblem(t *testing.T) {
	err := api.Config{
		MaxInflightWrites: -1, WriteQueueWait: -1, RateLimit: -1, RateBurst: -1, RateLimitUsers: -1,
		CORSOrigins: []string{"https://ok.example.com", "app.example.com", "https://x.example.com/path", "*"}, CORSMaxAge: -1,
	}.Validate()
	if err == nil {
		t.Fatal("Validate accepted negative limits and bad origins")
	}
	for _, part := range []string{"MaxInflightWrites", "WriteQueueWait", "RateLimit must", "RateBurst", "RateLimitUsers",
		`"app.example.com"`, `"https://x.example.com/path"`, `"*"`, "CORSMaxAge"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error does not name %s:\n%v", part, err)
		}
	}
	if strings.Contains(err.Error(), "ok.example.com") {
		t.Errorf("a valid origin was reported: %v", err)
	}
	if err := (api.Config{RateBurst: 5}).Validate(); err == nil || !strings.Contains(err.Error(), "without RateLimit") {
		t.Errorf("RateBurst without RateLimit: %v", err)
	}
	if err := (api.Config{RateLimit: 2.5, CORSOrigins: []string{"http://localhost:3000"}}).Validate(); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
}
