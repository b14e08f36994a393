package api_test

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/icpservice/icp/api"
	"github.com/icpservice/icp/commands"
)

// fillBody returns head, then item repeated with "," between as often as
// fits in the default body limit, then tail; and how many items it holds.
func fillBody(head, item, tail string) (string, int) {
	n := (api.DefaultMaxBodyBytes - len(head) - len(tail) + 1) / (len(item) + 1)
	return head + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + tail, n
}

var moreProblems = regexp.MustCompile(`^([0-9]+) more problems were found$`)

// assertBounded checks what every error answer promises whatever the
// request: a body under 64 KiB, at most 50 details, and when more problems
// were found than listed, a last detail with path "" saying how many more.
// It returns the error and that number (0: every problem is listed).
func assertBounded(t *testing.T, r resp, status int, code string) (apiError, int) {
	t.Helper()
	if len(r.body) >= api.MaxErrorBodyBytes {
		t.Fatalf("error body of %d bytes, want under %d", len(r.body), api.MaxErrorBodyBytes)
	}
	e := assertError(t, r, status, code)
	if len(e.Details) > commands.MaxDetails {
		t.Fatalf("%d details, want at most %d", len(e.Details), commands.MaxDetails)
	}
	if len(e.Details) == 0 {
		return e, 0
	}
	last := e.Details[len(e.Details)-1]
	m := moreProblems.FindStringSubmatch(last.Message)
	if m == nil {
		return e, 0
	}
	if last.Path != "" || len(e.Details) != commands.MaxDetails {
		t.Fatalf("the count of further problems is detail %d at path %q, want the 50th at path \"\"", len(e.Details), last.Path)
	}
	n, _ := strconv.Atoi(m[1])
	return e, n
}

func TestWorstBodiesGetBoundedErrorAnswers(t *testing.T) {
	e := newEnv(t, envOpts{})
	const patchPath = api.BasePath + "/00000000-0000-4000-8000-000000000000"

	// Every element of a list far over its limit is invalid: the count
	// detail, then the problems of the elements up to the limit.
	crm, n := fillBody(`{"name":"N","leadProviderCriteria":[],"crmFilters":{"filters":[`, `{}`, `]}}`)
	got, more := assertBounded(t, e.do(req{method: http.MethodPost, path: api.BasePath, token: "alice", body: crm}), 400, "BAD_REQUEST")
	if d := got.Details[0]; d.Path != "crmFilters.filters" || d.Message != "must have at most 50 items, has "+strconv.Itoa(n) {
		t.Errorf("first detail %+v, want the count of %d items", d, n)
	}
	if d := got.Details[1]; d.Path != "crmFilters.filters[0].path" || d.Message != "is required" {
		t.Errorf("second detail %+v", d)
	}
	// 1 count + 50 elements x 3 missing members, 49 listed.
	if more != 1+50*3-49 {
		t.Errorf("%d more problems, want %d", more, 1+50*3-49)
	}

	// No list limit stops it: every element is a problem, counted.
	users, n := fillBody(`{"name":"N","leadProviderCriteria":[],"userIds":[`, `0`, `]}`)
	for _, method := range []string{http.MethodPost, http.MethodPatch} {
		path := api.BasePath
		if method == http.MethodPatch {
			path = patchPath
		}
		got, more := assertBounded(t, e.do(req{method: method, path: path, token: "alice", body: users}), 400, "BAD_REQUEST")
		if d := got.Details[48]; d.Path != "userIds[48]" || d.Message != "must be a string, not a number" {
			t.Errorf("%s: detail 49 %+v", method, d)
		}
		if more != n-49 {
			t.Errorf("%s: %d more problems, want %d of %d elements", method, more, n-49, n)
		}
	}

	// Many short distinct ids: refused at the limit.
	var ids strings.Builder
	for i := 0; ids.Len() < api.DefaultMaxBodyBytes-100; i++ {
		if i > 0 {
			ids.WriteByte(',')
		}
		ids.WriteString(`"` + strconv.FormatInt(int64(i), 36) + `"`)
	}
	got, _ = assertBounded(t, e.do(req{method: http.MethodPost, path: api.BasePath, token: "alice",
		body: `{"name":"N","leadProviderCriteria":[],"userIds":[` + ids.String() + `]}`}), 400, "BAD_REQUEST")
	if len(got.Details) != 1 || got.Details[0].Path != "userIds" || !strings.Contains(got.Details[0].Message, "at most 100 distinct entries") {
		t.Errorf("details %+v, want the userIds limit alone", got.Details)
	}

	// Unknown custom filter types as long as the body allows are quoted
	// by a prefix.
	long := strings.Repeat("é", (api.DefaultMaxBodyBytes-200)/commands.MaxCustomFilters/2-40)
	custom, _ := fillBody(`{"name":"N","leadProviderCriteria":[],"customFilterCriteria":[`, `{"type":"`+long+`","value":1}`, `]}`)
	got, _ = assertBounded(t, e.do(req{method: http.MethodPost, path: api.BasePath, token: "alice", body: custom}), 400, "BAD_REQUEST")
	want := `unknown type "` + strings.Repeat("é", commands.MaxQuoted) + `"…; known types: maxPeoplePerCompany, minDaysUntilReuse`
	if len(got.Details) != commands.MaxCustomFilters || got.Details[19].Message != want {
		t.Errorf("%d details, the last %+v, want 20 quoting a prefix: %s", len(got.Details), got.Details[len(got.Details)-1], want)
	}

	// What the client names outside the body is echoed by a prefix too.
	huge := strings.Repeat("x", 1<<20)
	echoed := func(r resp, status int, code, prefix string) {
		t.Helper()
		got, _ := assertBounded(t, r, status, code)
		if !strings.HasPrefix(got.Message, prefix) || len(got.Message) > len(prefix)+200 || !strings.Contains(got.Message, "…") {
			t.Errorf("message %.300q, want %q and a short prefix of what was sent", got.Message, prefix)
		}
	}
	echoed(e.do(req{method: http.MethodGet, path: "/" + huge, token: "alice"}), 404, "NOT_FOUND", "no such route: GET /xxx")
	echoed(e.do(req{method: http.MethodGet, path: api.BasePath + "/" + huge, token: "alice"}), 404, "NOT_FOUND", "ICP not found: xxx")
	echoed(e.do(req{method: http.MethodPatch, path: api.BasePath + "/" + huge, token: "alice", body: `{}`}), 404, "NOT_FOUND", "ICP not found: xxx")
	echoed(e.do(req{method: strings.Repeat("M", 1<<16), path: api.BasePath, token: "alice"}), 405, "METHOD_NOT_ALLOWED", "method MMM")
	echoed(e.do(req{method: http.MethodPost, path: api.BasePath, token: "alice", body: `{}`,
		header: map[string]string{"Content-Type": "application/json; charset=" + huge}}), 415, "UNSUPPORTED_MEDIA_TYPE", `the request body must be JSON in UTF-8, not charset "xxx`)

	// Headers and the query string as large as a server lets through.
	hr := newRequest(http.MethodPost, api.BasePath, `{"name":"N","leadProviderCriteria":[]}`)
	hr.Header.Set("Idempotency-Key", huge)
	assertBounded(t, e.serve(hr), 400, "BAD_REQUEST")
	got, _ = assertBounded(t, e.do(req{method: http.MethodGet, path: api.BasePath + "?" + strings.Repeat("limit=x&cursor=y&", 1<<12), token: "alice"}), 400, "BAD_REQUEST")
	if len(got.Details) != 2 {
		t.Errorf("query details %+v, want limit and cursor once each", got.Details)
	}
	assertBounded(t, e.do(req{method: http.MethodGet, path: api.BasePath + "?" + strings.Repeat("limit=x&", 1<<16), token: "alice"}), 400, "BAD_REQUEST")
}
