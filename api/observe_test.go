package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/icpservice/icp/api"
	"github.com/icpservice/icp/commands"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/sqlitestore"
	"github.com/icpservice/icp/projections/sqlitemodel"
)

// logBuffer collects JSON log lines; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// lines returns the log lines decoded.
func (l *logBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, ln := range strings.Split(strings.TrimSpace(l.text()), "\n") {
		if ln == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(ln), &m); err != nil {
			t.Fatalf("log line %q: %v", ln, err)
		}
		out = append(out, m)
	}
	return out
}

// obsEnv is the API over real SQLite stores with its log captured; no
// projector runs, so writes answer after a short consistency wait.
type obsEnv struct {
	*env
	logs *logBuffer
	dir  string // holds events.db and read.db
}

func newObsEnv(t *testing.T, cfg api.Config, storeOpts sqlitestore.Options, validate bool) *obsEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, "events.db"), storeOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	rm, err := sqlitemodel.Open(ctx, filepath.Join(dir, "read.db"), sqlitemodel.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rm.Close() })
	if cfg.ConsistencyWait == 0 {
		cfg.ConsistencyWait = 1 // nanosecond: nothing projects here
	}
	logs := &logBuffer{}
	h, err := api.New(cfg, api.Deps{
		Commands:  commands.NewHandler(st),
		ReadModel: rm,
		Verifier:  testTokens,
		Logger:    slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	if validate {
		h = validating(t, h)
	}
	return &obsEnv{env: &env{t: t, store: st, model: rm, handler: h}, logs: logs, dir: dir}
}

// storedMetadata returns the metadata of every event in the store.
func storedMetadata(t *testing.T, st events.Store) []events.Metadata {
	t.Helper()
	recs, err := st.ReadAll(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]events.Metadata, len(recs))
	for i, r := range recs {
		if out[i], err = events.DecodeMetadata(r.Metadata); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

var generatedID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestRequestAndCorrelationIDsAreEchoedAndKeptInTheEvents(t *testing.T) {
	e := newObsEnv(t, api.Config{}, sqlitestore.Options{}, true)
	body := `{"name":"Ids","leadProviderCriteria":[]}`

	// The caller's ids, when sane, are used as they are.
	r := e.do(req{method: http.MethodPost, path: api.BasePath, token: "alice", body: body,
		header: map[string]string{"X-Request-Id": "req-1:a/b+c=", "X-Correlation-Id": "order-77"}})
	if r.status != http.StatusCreated || r.header.Get("X-Request-Id") != "req-1:a/b+c=" || r.header.Get("X-Correlation-Id") != "order-77" {
		t.Fatalf("%d X-Request-Id %q X-Correlation-Id %q", r.status, r.header.Get("X-Request-Id"), r.header.Get("X-Correlation-Id"))
	}
	// Without a correlation id, the request id is the correlation id.
	r = e.do(req{method: http.MethodPost, path: api.BasePath, token: "alice", body: body, header: map[string]string{"X-Request-Id": "req-2"}})
	if r.status != http.StatusCreated || r.header.Get("X-Correlation-Id") != "req-2" {
		t.Fatalf("%d X-Correlation-Id %q, want the request id", r.status, r.header.Get("X-Correlation-Id"))
	}
	// Ids that are not sane are replaced by a generated one.
	for _, bad := range []string{"has space", strings.Repeat("x", 129), `quote"d`, "tab\tid", "é"} {
		r = e.do(req{method: http.MethodGet, path: api.BasePath, token: "alice", header: map[string]string{"X-Request-Id": bad, "X-Correlation-Id": bad}})
		rid := r.header.Get("X-Request-Id")
		if r.status != http.StatusOK || !generatedID.MatchString(rid) || r.header.Get("X-Correlation-Id") != rid {
			t.Errorf("X-Request-Id %q: answered %d with X-Request-Id %q X-Correlation-Id %q", bad, r.status, rid, r.header.Get("X-Correlation-Id"))
		}
	}
	// Errors carry them too, and each request gets its own.
	a := e.do(req{method: http.MethodGet, path: "/nowhere"})
	b := e.do(req{method: http.MethodGet, path: api.BasePath})
	if a.status != 404 || b.status != 401 || !generatedID.MatchString(a.header.Get("X-Request-Id")) ||
		a.header.Get("X-Request-Id") == b.header.Get("X-Request-Id") {
		t.Errorf("404 X-Request-Id %q, 401 X-Request-Id %q", a.header.Get("X-Request-Id"), b.header.Get("X-Request-Id"))
	}

	md := storedMetadata(t, e.store)
	if len(md) != 2 || md[0].CorrelationID != "order-77" || md[1].CorrelationID != "req-2" {
		t.Fatalf("stored metadata %+v, want correlation ids order-77 and req-2", md)
	}
}

func TestEveryLogLineOfARequestCarriesItsIDsAndNoSecrets(t *testing.T) {
	e := newObsEnv(t, api.Config{}, sqlitestore.Options{}, true)
	secretBody := `{"name":"Top secret name","leadProviderCriteria":[]}`
	r := e.do(req{method: http.MethodPost, path: api.BasePath, token: "alice", body: secretBody,
		header: map[string]string{"X-Request-Id": "req-create", "Idempotency-Key": "key-123"}})
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id := idOf(t, r.body)
	// A read model that is down makes the request's path log a warning.
	if err := e.model.Close(); err != nil {
		t.Fatal(err)
	}
	r = e.do(req{method: http.MethodGet, path: api.BasePath + "/" + id, token: "alice",
		header: map[string]string{"X-Request-Id": "req-get", "X-Correlation-Id": "corr-get"}})
	assertError(t, r, http.StatusServiceUnavailable, "UNAVAILABLE")

	lines := e.logs.lines(t)
	byRequest := map[string][]map[string]any{}
	for _, l := range lines {
		rid, _ := l["request_id"].(string)
		if rid == "" {
			t.Errorf("log line without request_id: %v", l)
		}
		byRequest[rid] = append(byRequest[rid], l)
	}
	access := func(rid string) map[string]any {
		t.Helper()
		var found map[string]any
		for _, l := range byRequest[rid] {
			if l["msg"] == "http request" {
				if found != nil {
					t.Errorf("two access-log lines for %s", rid)
				}
				found = l
			}
		}
		if found == nil {
			t.Fatalf("no access-log line for %s in %v", rid, byRequest[rid])
		}
		return found
	}
	c := access("req-create")
	if c["level"] != "INFO" || c["method"] != "POST" || c["route"] != api.BasePath || c["status"] != float64(201) ||
		c["correlation_id"] != "req-create" || c["duration"] == nil {
		t.Errorf("access log of the create: %v", c)
	}
	g := access("req-get")
	if g["route"] != api.BasePath+"/:id" || g["status"] != float64(503) || g["correlation_id"] != "corr-get" {
		t.Errorf("access log of the get: %v", g)
	}
	warned := false
	for _, l := range byRequest["req-get"] {
		warned = warned || (l["msg"] == "backing store unavailable" && l["level"] == "WARN" && l["correlation_id"] == "corr-get")
	}
	if !warned {
		t.Errorf("the get's warning does not carry its ids: %v", byRequest["req-get"])
	}
	text := e.logs.text()
	for _, secret := range []string{"Bearer", "Top secret name", "key-123"} {
		if strings.Contains(text, secret) {
			t.Errorf("the log contains %q:\n%s", secret, text)
		}
	}
}

func TestTheCallersTraceContextReachesTheEvents(t *testing.T) {
	e := newObsEnv(t, api.Config{}, sqlitestore.Options{}, true)
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	r := e.do(req{method: http.MethodPost, path: api.BasePath, token: "alice", body: `{"name":"Traced","leadProviderCriteria":[]}`,
		header: map[string]string{"Traceparent": tp, "Tracestate": "congo=t61rcWkgMzE"}})
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	// A malformed traceparent is dropped, never refused.
	r = e.do(req{method: http.MethodPost, path: api.BasePath, token: "alice", body: `{"name":"Untraced","leadProviderCriteria":[]}`,
		header: map[string]string{"Traceparent": "00-not-a-trace-01"}})
	if r.status != http.StatusCreated {
		t.Fatalf("create with a malformed traceparent: %d %s", r.status, r.body)
	}
	md := storedMetadata(t, e.store)
	if len(md) != 2 {
		t.Fatalf("%d events", len(md))
	}
	// The trace continues: same trace id (the span id is the API's own
	// span when this process records spans, else the caller's).
	if !strings.HasPrefix(md[0].TraceParent, tp[:36]) || len(md[0].TraceParent) != len(tp) || md[0].TraceState != "congo=t61rcWkgMzE" {
		t.Errorf("first event: traceparent %q tracestate %q, want trace %s", md[0].TraceParent, md[0].TraceState, tp[3:35])
	}
	if strings.Contains(md[1].TraceParent, "not-a-trace") {
		t.Errorf("second event kept the malformed traceparent %q", md[1].TraceParent)
	}
}
