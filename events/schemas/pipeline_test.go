package schemas_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/api/auth"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/schemas"
	"github.com/icpservice/icp/internal/app"
	"github.com/icpservice/icp/internal/config"
	"github.com/icpservice/icp/internal/natsauth"
)

// TestEveryEventTheServiceEmitsMatchesItsPublishedSchema runs the real
// service (HTTP API, command handler, SQLite event store, relay, embedded
// NATS), drives creates, updates and deletes through HTTP, and checks every
// message that reaches ICP_EVENTS: its body against the schema of its
// ce-type, its icp-metadata header against the metadata schema, and its
// CloudEvents headers against the contract in CONSUMERS.md.
func TestEveryEventTheServiceEmitsMatchesItsPublishedSchema(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Load([]string{"--dev", "--addr=127.0.0.1:0", "--embedded-nats-addr=127.0.0.1:0", "--admin-addr=127.0.0.1:0", "--data-dir=" + dir, "--log-level=warn"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("service run: %v", err)
		}
	})
	key, err := auth.LoadOrCreateDevKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	token, err := key.Mint(auth.DevClaims{UserID: "user_schema", OrgID: "org_schema", Admin: true, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, base: "http://" + a.Addr(), token: token}

	// Every optional field set, then every nullable field cleared.
	full := c.do(http.MethodPost, "", map[string]any{
		"name":        "DACH Tech Leaders",
		"description": "Technology leaders in German-speaking regions",
		"leadProviderCriteria": []any{
			map[string]any{"provider": "baseProvider", "type": "person", "filters": json.RawMessage(`{"job_title":["CTO"],"location.country":["Germany"],"$n":12345678901234567890}`)},
			map[string]any{"provider": "baseProvider", "filters": map[string]any{}},
		},
		"customFilterCriteria": []any{map[string]any{"type": "maxPeoplePerCompany", "value": 2}, map[string]any{"type": "minDaysUntilReuse", "value": 0}},
		"crmFilters": map[string]any{"provider": "bullhorn", "textSearch": "Marketing*", "query": json.RawMessage(`{"bool":{"must":[1.50]}}`),
			"filters": []any{map[string]any{"path": "status", "mode": "eq", "value": []any{"a", nil}, "exclude": true}}},
		"userIds":      []any{"user_other"},
		"leadsPerList": 25,
		"activeUntil":  "2030-01-01T00:00:00+02:00",
	}, http.StatusCreated)
	c.do(http.MethodPatch, full, map[string]any{
		"name": "renamed", "description": nil, "crmFilters": nil, "activeUntil": nil,
		"leadProviderCriteria": []any{map[string]any{"provider": "baseProvider", "type": "company", "filters": map[string]any{"size": 10}}},
		"customFilterCriteria": []any{}, "userIds": []any{"user_schema", "user_third"}, "leadsPerList": 1,
	}, http.StatusOK)
	c.do(http.MethodPatch, full, map[string]any{"crmFilters": map[string]any{"textSearch": nil}, "activeUntil": "2031-05-06T07:08:09.123456Z"}, http.StatusOK)
	c.do(http.MethodDelete, full, nil, http.StatusNoContent)
	// The smallest create, updated once.
	minimal := c.do(http.MethodPost, "", map[string]any{"name": "Minimal", "leadProviderCriteria": []any{}}, http.StatusCreated)
	c.do(http.MethodPatch, minimal, map[string]any{"description": "now described"}, http.StatusOK)
	const wantEvents = 6

	nc, err := nats.Connect(a.NATSURL(), nats.UserCredentials(natsauth.ServiceCredsPath(dir)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	msgs := busMessages(t, nc, wantEvents)

	schemaOf := map[string]bool{}
	metaSchema := compile(t, schemas.Metadata())
	versions := map[string]uint64{}
	var lastPos uint64
	for i, m := range msgs {
		h := m.Header
		typ, sv := checkHeaders(t, i, m)
		schemaOf[typ] = true
		if why := validate(eventSchema(t, typ, sv), m.Data); why != "" {
			t.Errorf("message %d (%s v%d) does not match its schema: %s\n%s", i, typ, sv, why, m.Data)
		}
		if why := validate(metaSchema, []byte(h.Get(events.HeaderMetadata))); why != "" {
			t.Errorf("message %d: icp-metadata does not match its schema: %s", i, why)
		}
		// Per ICP: versions 1, 2, 3 in order; globally: positions increase.
		id := h.Get(events.HeaderSubject)
		v, _ := strconv.ParseUint(h.Get(events.HeaderICPVersion), 10, 64)
		if v != versions[id]+1 {
			t.Errorf("message %d: ICP %s version %d after %d", i, id, v, versions[id])
		}
		versions[id] = v
		pos, _ := strconv.ParseUint(h.Get(events.HeaderPosition), 10, 64)
		if pos <= lastPos {
			t.Errorf("message %d: position %d after %d", i, pos, lastPos)
		}
		lastPos = pos
		var body struct {
			ID  string `json:"id"`
			ICP struct {
				ID string `json:"id"`
			} `json:"icp"`
		}
		_ = json.Unmarshal(m.Data, &body)
		if body.ID != id && body.ICP.ID != id {
			t.Errorf("message %d: payload names ICP %q/%q, ce-subject %q", i, body.ID, body.ICP.ID, id)
		}
	}
	for _, typ := range []string{events.TypeICPCreated, events.TypeICPUpdated, events.TypeICPDeleted} {
		if !schemaOf[typ] {
			t.Errorf("no %s event was checked", typ)
		}
	}
	if versions[full] != 4 || versions[minimal] != 2 {
		t.Errorf("versions on the bus: %v, want %s at 4 and %s at 2", versions, full, minimal)
	}
}

var (
	uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	timeRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)
	typeRE = regexp.MustCompile(`^icp\.([A-Za-z]+)\.v([1-9][0-9]*)$`)
)

// checkHeaders checks the CloudEvents binary-mode headers and ours, and
// returns the event type and schema version that ce-type names.
func checkHeaders(t *testing.T, i int, m jetstream.RawStreamMsg) (string, int) {
	t.Helper()
	h := m.Header
	for _, name := range []string{events.HeaderSpecVersion, events.HeaderID, events.HeaderType, events.HeaderSource,
		events.HeaderSubject, events.HeaderTime, events.HeaderICPVersion, events.HeaderPosition,
		events.HeaderSchemaVersion, events.HeaderStream, events.HeaderMetadata, events.HeaderGeneration, nats.MsgIdHdr} {
		if vs := h.Values(name); len(vs) != 1 || vs[0] == "" {
			t.Errorf("message %d: header %s = %q, want exactly one non-empty value", i, name, vs)
		}
	}
	if err := events.CheckGeneration(h.Get(events.HeaderGeneration)); err != nil {
		t.Errorf("message %d: %v", i, err)
	}
	if got := h.Get(events.HeaderSpecVersion); got != "1.0" {
		t.Errorf("message %d: ce-specversion %q", i, got)
	}
	if got := h.Get(events.HeaderSource); got != events.CloudEventsSource {
		t.Errorf("message %d: ce-source %q", i, got)
	}
	id := h.Get(events.HeaderID)
	if !uuidRE.MatchString(id) || h.Get(nats.MsgIdHdr) != id {
		t.Errorf("message %d: ce-id %q, Nats-Msg-Id %q: want the same lowercase UUID", i, id, h.Get(nats.MsgIdHdr))
	}
	subject := h.Get(events.HeaderSubject)
	if !uuidRE.MatchString(subject) || h.Get(events.HeaderStream) != events.StreamID(subject) {
		t.Errorf("message %d: ce-subject %q, icp-stream %q", i, subject, h.Get(events.HeaderStream))
	}
	if got := h.Get(events.HeaderTime); !timeRE.MatchString(got) {
		t.Errorf("message %d: ce-time %q is not UTC milliseconds", i, got)
	}
	for _, name := range []string{events.HeaderICPVersion, events.HeaderPosition} {
		if n, err := strconv.ParseUint(h.Get(name), 10, 64); err != nil || n == 0 {
			t.Errorf("message %d: %s %q is not a positive integer", i, name, h.Get(name))
		}
	}
	match := typeRE.FindStringSubmatch(h.Get(events.HeaderType))
	if match == nil {
		t.Fatalf("message %d: ce-type %q is not icp.<Type>.v<N>", i, h.Get(events.HeaderType))
	}
	typ := match[1]
	sv, _ := strconv.Atoi(match[2])
	if m.Subject != events.Subject(typ) {
		t.Errorf("message %d: subject %s for ce-type %s", i, m.Subject, h.Get(events.HeaderType))
	}
	if h.Get(events.HeaderSchemaVersion) != match[2] {
		t.Errorf("message %d: icp-schemaversion %q, ce-type says %s", i, h.Get(events.HeaderSchemaVersion), match[2])
	}
	var md events.Metadata
	if err := json.Unmarshal([]byte(h.Get(events.HeaderMetadata)), &md); err != nil || md.Tenant != "org_schema" || md.UserID != "user_schema" {
		t.Errorf("message %d: icp-metadata %q: want tenant org_schema, user user_schema", i, h.Get(events.HeaderMetadata))
	}
	if tp := h.Get(events.HeaderTraceParent); tp != "" && tp != md.TraceParent {
		t.Errorf("message %d: traceparent %q differs from the metadata's %q", i, tp, md.TraceParent)
	}
	return typ, sv
}

// busMessages waits until ICP_EVENTS holds n messages and returns them in
// stream order.
func busMessages(t *testing.T, nc *nats.Conn, n int) []jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var st jetstream.Stream
	for {
		st, err = js.Stream(ctx, events.BusStream)
		if err == nil && st.CachedInfo().State.Msgs >= uint64(n) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the bus did not receive %d events: %v", n, err)
		case <-time.After(10 * time.Millisecond): // polling interval
		}
	}
	info := st.CachedInfo().State
	if info.Msgs != uint64(n) {
		t.Fatalf("the bus holds %d messages, want %d", info.Msgs, n)
	}
	var out []jetstream.RawStreamMsg
	for seq := info.FirstSeq; seq <= info.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, *m)
	}
	return out
}

// client calls the service's HTTP API as one caller.
type client struct {
	t     *testing.T
	base  string
	token string
}

// do sends a request (id "" for the collection) and returns the ICP id of the
// answer, failing the test unless the status is want.
func (c *client) do(method, id string, body any, want int) string {
	c.t.Helper()
	url := c.base + "/api/v1/entities/icps"
	if id != "" {
		url += "/" + id
	}
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(mustJSON(c.t, body))
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Traceparent", "00-"+hex32()+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, url, resp.StatusCode, want, b)
	}
	if id != "" {
		return id
	}
	var icp struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &icp); err != nil || icp.ID == "" {
		c.t.Fatalf("create answered %s", b)
	}
	return icp.ID
}

func hex32() string {
	u := uuid.New()
	return hex.EncodeToString(u[:])
}
