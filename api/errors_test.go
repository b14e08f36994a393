package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/icpservice/icp/api"
)

type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Details []struct {
		Path    string `json:"path"`
		Message string `json:"message"`
	} `json:"details"`
}

func errorOf(t *testing.T, r resp) apiError {
	t.Helper()
	var body struct {
		Error *apiError `json:"error"`
	}
	dec := json.NewDecoder(strings.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || body.Error == nil || body.Error.Code == "" || body.Error.Message == "" {
		t.Fatalf("not an error body (%v): %s", err, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("error Content-Type %q", ct)
	}
	return *body.Error
}

func assertError(t *testing.T, r resp, status int, code string) apiError {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	e := errorOf(t, r)
	if e.Code != code {
		t.Fatalf("code %s, want %s: %s", e.Code, code, r.body)
	}
	return e
}

func TestValidationErrorsListEveryProblem(t *testing.T) {
	e := newEnv(t, envOpts{})
	r := e.do(req{method: http.MethodPost, path: api.BasePath, token: "alice", body: `{"name":" ",
		"leadProviderCriteria":[{"provider":"baseProvider","filters":{}},{"provider":"other","filters":[]}],
		"crmFilters":{"filters":[{"path":"a","mode":"eq","value":1},{"path":"a","mode":"eq","value":1},{"path":"a","mode":"eq","value":1},{"path":"a","mode":"eq"}]},
		"leadsPerList":10.5}`})
	got := assertError(t, r, 400, "BAD_REQUEST")
	want := []string{"name", "leadProviderCriteria[1].provider", "leadProviderCriteria[1].filters", "crmFilters.filters[3].value", "leadsPerList"}
	if len(got.Details) != len(want) {
		t.Fatalf("details %+v, want paths %v", got.Details, want)
	}
	for i, p := range want {
		if got.Details[i].Path != p || got.Details[i].Message == "" {
			t.Errorf("detail %d = %+v, want path %s", i, got.Details[i], p)
		}
	}
	if n, _ := e.store.Head(context.Background()); n != 0 {
		t.Errorf("an invalid create recorded something: head %d", n)
	}
}

func TestBodiesThatAreNotOneJSONObject(t *testing.T) {
	e := newEnv(t, envOpts{cfg: api.Config{MaxBodyBytes: 1024}, project: true})
	ok := `{"name":"N","leadProviderCriteria":[]}`
	big := `{"name":"N","leadProviderCriteria":[],"pad":"` + strings.Repeat("x", 1024) + `"}`
	for _, tc := range []struct {
		name        string
		body        string
		contentType string
		chunked     bool
		status      int
		code        string
	}{
		{"trailing data", ok + ` {"again":1}`, "application/json", false, 400, "BAD_REQUEST"},
		{"malformed", `{"name":`, "application/json", false, 400, "BAD_REQUEST"},
		{"empty", "", "application/json", false, 400, "BAD_REQUEST"},
		{"an array", `[]`, "application/json", false, 400, "BAD_REQUEST"},
		{"text/plain", ok, "text/plain", false, 415, "UNSUPPORTED_MEDIA_TYPE"},
		{"no content type", ok, "<none>", false, 415, "UNSUPPORTED_MEDIA_TYPE"},
		{"latin-1", ok, "application/json; charset=iso-8859-1", false, 415, "UNSUPPORTED_MEDIA_TYPE"},
		{"form", "name=N", "application/x-www-form-urlencoded", false, 415, "UNSUPPORTED_MEDIA_TYPE"},
		{"too large", big, "application/json", false, 413, "PAYLOAD_TOO_LARGE"},
		{"too large without a length", big, "application/json", true, 413, "PAYLOAD_TOO_LARGE"},
		{"charset parameter", ok, "Application/JSON; charset=UTF-8", false, 201, ""},
		{"exactly the limit", ok + strings.Repeat(" ", 1024-len(ok)), "application/json", true, 201, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.doRaw(tc.body, tc.contentType, tc.chunked)
			if tc.status == 201 {
				if r.status != 201 || r.header.Get(api.HeaderConsistency) != "" {
					t.Fatalf("%d %s (consistency %q)", r.status, r.body, r.header.Get(api.HeaderConsistency))
				}
				return
			}
			assertError(t, r, tc.status, tc.code)
		})
	}
}

func TestIdempotencyKeyFormat(t *testing.T) {
	e := newEnv(t, envOpts{project: true})
	body := `{"name":"N","leadProviderCriteria":[]}`
	for _, tc := range []struct {
		name, key string
		ok        bool
	}{
		{"empty", "", false},
		{"too long", strings.Repeat("k", 256), false},
		{"longest", strings.Repeat("k", 255), true},
		{"non-ASCII", "clé", false},
		{"control character", "a\x01b", false},
		{"printable with spaces", "order 42 / retry #1", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hr := newRequest(http.MethodPost, api.BasePath, body)
			hr.Header["Idempotency-Key"] = []string{tc.key}
			r := e.serve(hr)
			if tc.ok {
				if r.status != 201 {
					t.Fatalf("%d %s", r.status, r.body)
				}
				return
			}
			if got := assertError(t, r, 400, "BAD_REQUEST"); !strings.Contains(got.Message, "Idempotency-Key") {
				t.Fatalf("message %q does not name the header", got.Message)
			}
		})
	}
	hr := newRequest(http.MethodPost, api.BasePath, body)
	hr.Header["Idempotency-Key"] = []string{"a", "b"}
	assertError(t, e.serve(hr), 400, "BAD_REQUEST")
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, tc := range []struct {
		name, authorization string
		status              int
		code                string
	}{
		{"no header", "<none>", 401, "UNAUTHORIZED"},
		{"another scheme", "Basic YWxpY2U6cHc=", 401, "UNAUTHORIZED"},
		{"empty token", "Bearer ", 401, "UNAUTHORIZED"},
		{"refused token", "Bearer forged", 401, "UNAUTHORIZED"},
		{"verifier unreachable", "Bearer down", 503, "UNAVAILABLE"},
		{"lower-case scheme", "bearer alice", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(req{method: http.MethodGet, path: api.BasePath, header: map[string]string{"Authorization": tc.authorization}})
			if tc.status == 200 {
				if r.status != 200 {
					t.Fatalf("%d %s", r.status, r.body)
				}
				return
			}
			got := assertError(t, r, tc.status, tc.code)
			switch tc.status {
			case 401:
				if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
				}
			case 503:
				if r.header.Get("Retry-After") == "" || strings.Contains(got.Message, "jwks") {
					t.Errorf("Retry-After %q message %q", r.header.Get("Retry-After"), got.Message)
				}
			}
		})
	}
	if got := errorOf(t, e.do(req{method: http.MethodGet, path: api.BasePath, token: "forged"})); !strings.Contains(got.Message, "expired") {
		t.Errorf("401 message %q does not say why", got.Message)
	}
}

func TestUnknownRoutesAndMethodsAnswerInTheErrorShape(t *testing.T) {
	e := newEnv(t, envOpts{})
	assertError(t, e.do(req{method: http.MethodGet, path: "/api/v1/nothing", token: "alice"}), 404, "NOT_FOUND")
	assertError(t, e.do(req{method: http.MethodGet, path: api.BasePath + "/", token: "alice"}), 404, "NOT_FOUND")
	r := e.do(req{method: http.MethodPut, path: api.BasePath, token: "alice"})
	assertError(t, r, 405, "METHOD_NOT_ALLOWED")
	if allow := r.header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Errorf("Allow %q", allow)
	}
}

func TestPanicsAnswer500WithoutDetails(t *testing.T) {
	e := newEnv(t, envOpts{})
	r := e.do(req{method: http.MethodGet, path: api.BasePath, token: "panic"})
	if got := assertError(t, r, 500, "INTERNAL_ERROR"); strings.Contains(r.body, "secret") || got.Message != "internal error" {
		t.Fatalf("500 leaks: %s", r.body)
	}
}

func TestStoresThatAreDownAnswer503(t *testing.T) {
	e := newEnv(t, envOpts{})
	if err := e.model.Close(); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{api.BasePath, api.BasePath + "/00000000-0000-4000-8000-000000000000"} {
		r := e.do(req{method: http.MethodGet, path: path, token: "alice"})
		if got := assertError(t, r, 503, "UNAVAILABLE"); r.header.Get("Retry-After") == "" || strings.Contains(got.Message, "sqlite") {
			t.Errorf("GET %s: Retry-After %q message %q", path, r.header.Get("Retry-After"), got.Message)
		}
	}
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	r := e.do(req{method: http.MethodPost, path: api.BasePath, token: "alice", body: `{"name":"N","leadProviderCriteria":[]}`})
	assertError(t, r, 503, "UNAVAILABLE")
}

func TestHealthAndReadiness(t *testing.T) {
	var notReady error
	e := newEnv(t, envOpts{ready: func(context.Context) error { return notReady }})
	if r := e.do(req{method: http.MethodGet, path: "/healthz"}); r.status != 200 {
		t.Fatalf("healthz %d", r.status)
	}
	if r := e.do(req{method: http.MethodGet, path: "/readyz"}); r.status != 200 {
		t.Fatalf("readyz %d %s", r.status, r.body)
	}
	// The API port says not ready, never why: the reason names internal
	// parts (it is on the admin listener's /readyz).
	notReady = errors.New("read model: dial tcp 10.0.0.7:27017: connection refused")
	r := e.do(req{method: http.MethodGet, path: "/readyz"})
	if got := assertError(t, r, 503, "UNAVAILABLE"); got.Message != "the service is not ready; retry later" || r.header.Get("Retry-After") == "" {
		t.Fatalf("readyz: %s (Retry-After %q)", r.body, r.header.Get("Retry-After"))
	}
	for _, internal := range []string{"read model", "10.0.0.7", "27017", "refused"} {
		if strings.Contains(r.body, internal) {
			t.Errorf("readyz on the API port shows %q: %s", internal, r.body)
		}
	}
}

func TestNewRefusesMissingDependenciesAndBadConfig(t *testing.T) {
	_, err := api.New(api.Config{ConsistencyWait: -1, MaxBodyBytes: -1}, api.Deps{})
	if err == nil {
		t.Fatal("New accepted no dependencies")
	}
	for _, part := range []string{"ConsistencyWait", "MaxBodyBytes", "Commands", "ReadModel", "Verifier"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not name %s", err, part)
		}
	}
}
