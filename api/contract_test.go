package api_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/icpservice/icp/api/openapi"
)

// contract checks HTTP responses against the service's OpenAPI document.
// Every HTTP test in this package goes through it (newEnv wraps the handler,
// startService the client), so a response the document does not describe
// fails the test that received it.
//
// kin-openapi routes the request and checks the status and the declared
// headers. Bodies are checked with the JSON Schema 2020-12 validator that
// kin-openapi itself uses for OpenAPI 3.1 documents, but with each schema
// compiled once: kin-openapi compiles the schema again for every response
// (about 2 ms each, 8 under -race), which made the checks most of the
// package's test time.
type contract struct {
	doc    *openapi3.T
	router routers.Router

	mu       sync.Mutex
	compiler *jsonschema.Compiler
	schemas  map[string]*jsonschema.Schema // by JSON pointer into the document
}

// docURL names the document for the schema compiler.
const docURL = "file:///openapi.json"

// watchedHeaders are the response headers the document must declare
// wherever they are sent.
var watchedHeaders = []string{"ETag", "ICP-Consistency", "Location", "Link", "Retry-After", "WWW-Authenticate"}

var loadContract = sync.OnceValues(func() (*contract, error) {
	ctx := context.Background()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openapi.Document())
	if err != nil {
		return nil, fmt.Errorf("load the OpenAPI document: %w", err)
	}
	if err := doc.Validate(ctx); err != nil {
		return nil, fmt.Errorf("the OpenAPI document is invalid: %w", err)
	}
	r, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route the OpenAPI document: %w", err)
	}
	raw, err := jsonschema.UnmarshalJSON(bytes.NewReader(openapi.Document()))
	if err != nil {
		return nil, err
	}
	comp := jsonschema.NewCompiler()
	comp.DefaultDraft(jsonschema.Draft2020)
	comp.AssertFormat()
	if err := comp.AddResource(docURL, raw); err != nil {
		return nil, err
	}
	return &contract{doc: doc, router: r, compiler: comp, schemas: map[string]*jsonschema.Schema{}}, nil
})

// schema returns the compiled schema at pointer (such as
// "/components/schemas/Error") in the document.
func (c *contract) schema(pointer string) (*jsonschema.Schema, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.schemas[pointer]; ok {
		return s, nil
	}
	s, err := c.compiler.Compile(docURL + "#" + pointer)
	if err != nil {
		return nil, fmt.Errorf("compile %s: %w", pointer, err)
	}
	c.schemas[pointer] = s
	return s, nil
}

// validateBody checks body, which must be one JSON value, against the schema
// at pointer.
func (c *contract) validateBody(pointer string, body []byte) (any, error) {
	s, err := c.schema(pointer)
	if err != nil {
		return nil, err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("body is not one JSON value: %w", err)
	}
	if err := s.Validate(v); err != nil {
		return nil, fmt.Errorf("body does not match %s: %w", pointer, err)
	}
	return v, nil
}

// escapePointer escapes one JSON pointer token (RFC 6901).
func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func mustContract(t testing.TB) *contract {
	t.Helper()
	c, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// check reports how the response to req (status, header, body) departs from
// the document: an undeclared status, a body or a declared header that does
// not match its schema, a required header missing, a watched header sent
// where the document does not declare it, or a body where none is declared.
// A request outside the document's routes must be answered with a 404
// NOT_FOUND or 405 METHOD_NOT_ALLOWED error body.
func (c *contract) check(req *http.Request, status int, header http.Header, body []byte) error {
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		var re *routers.RouteError
		if !errors.As(err, &re) {
			return err
		}
		return c.checkUnrouted(status, header, body)
	}
	if !sameShape(route.Path, req.URL.Path) {
		// The router forgives what the service does not (a trailing slash).
		return c.checkUnrouted(status, header, body)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, ExcludeResponseBody: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return err
	}
	resp := route.Operation.Responses.Status(status)
	if resp == nil || resp.Value == nil {
		return fmt.Errorf("status %d is not declared", status)
	}
	for _, h := range watchedHeaders {
		if header.Get(h) == "" {
			continue
		}
		declared := false
		for name := range resp.Value.Headers {
			declared = declared || http.CanonicalHeaderKey(name) == http.CanonicalHeaderKey(h)
		}
		if !declared {
			return fmt.Errorf("header %s: %q is sent but not declared for %d", h, header.Get(h), status)
		}
	}
	if len(resp.Value.Content) == 0 {
		if len(body) > 0 {
			return fmt.Errorf("a body is sent where %d declares none: %q", status, body)
		}
		return nil
	}
	mt := resp.Value.Content.Get(header.Get("Content-Type"))
	if mt == nil {
		return fmt.Errorf("Content-Type %q is not declared for %d", header.Get("Content-Type"), status)
	}
	pointer := "/paths/" + escapePointer(route.Path) + "/" + strings.ToLower(route.Method) + "/responses/" + strconv.Itoa(status)
	if strings.HasPrefix(resp.Ref, "#/") {
		pointer = resp.Ref[1:]
	}
	for key, v := range resp.Value.Content {
		if v == mt {
			pointer += "/content/" + escapePointer(key) + "/schema"
		}
	}
	_, err = c.validateBody(pointer, body)
	return err
}

// sameShape reports whether path matches the template exactly: the same
// segments, each {parameter} standing for one non-empty segment.
func sameShape(template, path string) bool {
	ts, ps := strings.Split(template, "/"), strings.Split(path, "/")
	if len(ts) != len(ps) {
		return false
	}
	for i, t := range ts {
		if strings.HasPrefix(t, "{") && strings.HasSuffix(t, "}") {
			if ps[i] == "" {
				return false
			}
		} else if t != ps[i] {
			return false
		}
	}
	return true
}

// checkUnrouted checks the answer to a path or method the document does not
// have: the router's 404 or 405 with the error body.
func (c *contract) checkUnrouted(status int, header http.Header, body []byte) error {
	want := map[int]string{http.StatusNotFound: "NOT_FOUND", http.StatusMethodNotAllowed: "METHOD_NOT_ALLOWED"}[status]
	if want == "" {
		return fmt.Errorf("status %d for a route the document does not have, want 404 or 405", status)
	}
	if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("Content-Type %q", ct)
	}
	v, err := c.validateBody("/components/schemas/Error", body)
	if err != nil {
		return err
	}
	if code := v.(map[string]any)["error"].(map[string]any)["code"]; code != want {
		return fmt.Errorf("code %v with status %d, want %s", code, status, want)
	}
	return nil
}

// validating wraps h so that every response it writes is checked against
// the document; a mismatch fails t.
func validating(t testing.TB, h http.Handler) http.Handler {
	c := mustContract(t)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if err := c.check(r, rec.Code, rec.Header(), body); err != nil {
			t.Errorf("%s %s answered %d, which the OpenAPI document does not allow: %v\nbody: %s", r.Method, r.URL, rec.Code, err, body)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body)
	})
}

// validatingTransport checks every response a client receives against the
// document; a mismatch fails t. Safe for concurrent use.
type validatingTransport struct {
	t    testing.TB
	base http.RoundTripper
	c    *contract
}

func (v validatingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := v.base.RoundTrip(r)
	if err != nil {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err := v.c.check(r, resp.StatusCode, resp.Header, body); err != nil {
		v.t.Errorf("%s %s answered %d, which the OpenAPI document does not allow: %v\nbody: %s", r.Method, r.URL.Path, resp.StatusCode, err, body)
	}
	return resp, nil
}

// TestTheContractCheckRefusesWhatTheDocumentDoesNotAllow makes sure the check
// every test relies on is not vacuous: each response below departs from the
// document in one way and must be refused.
func TestTheContractCheckRefusesWhatTheDocumentDoesNotAllow(t *testing.T) {
	c := mustContract(t)
	const id = "550e8400-e29b-41d4-a716-446655440000"
	icp := `{"id":"` + id + `","name":"N","description":null,"createdAt":"2024-01-15T10:30:00.000Z","updatedAt":"2024-01-15T10:30:00.000Z",` +
		`"leadProviderCriteria":[{"provider":"baseProvider","type":"person","filters":{"a.b":1e400}}],"customFilterCriteria":[],` +
		`"crmFilters":null,"userIds":["user_a"],"leadsPerList":10,"activeUntil":null}`
	jsonCT := http.Header{"Content-Type": {"application/json; charset=utf-8"}}
	with := func(kv ...string) http.Header {
		h := jsonCT.Clone()
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	errBody := func(code string) string { return `{"error":{"code":"` + code + `","message":"m"}}` }
	one := "/api/v1/entities/icps/" + id
	type response struct {
		method, path string
		status       int
		header       http.Header
		body         string
	}
	// The baseline passes.
	for _, ok := range []response{
		{http.MethodGet, one, 200, with("ETag", `"1"`), icp},
		{http.MethodPatch, one, 200, with("ETag", `"2"`, "ICP-Consistency", "pending"), icp},
		{http.MethodGet, "/api/v1/entities/icps", 200, with("Link", `</api/v1/entities/icps?cursor=x&limit=1>; rel="next"`), "[" + icp + "]"},
		{http.MethodDelete, one, 204, http.Header{}, ""},
		{http.MethodPost, "/api/v1/entities/icps", 409, jsonCT, errBody("IDEMPOTENCY_KEY_REUSED")},
		{http.MethodGet, "/api/v1/entities/icps", 401, with("WWW-Authenticate", "Bearer"), errBody("UNAUTHORIZED")},
		{http.MethodPut, one, 405, jsonCT, errBody("METHOD_NOT_ALLOWED")},
		{http.MethodGet, "/nope", 404, jsonCT, errBody("NOT_FOUND")},
		{http.MethodGet, "/api/v1/entities/icps/", 404, jsonCT, errBody("NOT_FOUND")},
	} {
		if err := c.check(httptest.NewRequest(ok.method, ok.path, nil), ok.status, ok.header, []byte(ok.body)); err != nil {
			t.Errorf("%s %s %d: %v", ok.method, ok.path, ok.status, err)
		}
	}
	for name, bad := range map[string]response{
		"an undeclared status":                   {http.MethodGet, one, 201, with("ETag", `"1"`), icp},
		"a missing ETag":                         {http.MethodGet, one, 200, jsonCT, icp},
		"a weak ETag":                            {http.MethodGet, one, 200, with("ETag", `W/"1"`), icp},
		"an undeclared header":                   {http.MethodGet, one, 200, with("ETag", `"1"`, "Location", "/x"), icp},
		"a field missing":                        {http.MethodGet, one, 200, with("ETag", `"1"`), strings.Replace(icp, `"activeUntil":null`, `"x":null`, 1)},
		"an extra field":                         {http.MethodGet, one, 200, with("ETag", `"1"`), strings.Replace(icp, `{"id"`, `{"tenant":"t","id"`, 1)},
		"null where not nullable":                {http.MethodGet, one, 200, with("ETag", `"1"`), strings.Replace(icp, `"leadsPerList":10`, `"leadsPerList":null`, 1)},
		"a timestamp not in the contract's form": {http.MethodGet, one, 200, with("ETag", `"1"`), strings.Replace(icp, `00.000Z","updatedAt"`, `00Z","updatedAt"`, 1)},
		"an error code of another status":        {http.MethodGet, one, 404, jsonCT, errBody("FORBIDDEN")},
		"an unknown error code":                  {http.MethodPost, "/api/v1/entities/icps", 409, jsonCT, errBody("NOPE")},
		"an error body with extra members":       {http.MethodGet, one, 404, jsonCT, `{"error":{"code":"NOT_FOUND","message":"m","x":1}}`},
		"empty details":                          {http.MethodPost, "/api/v1/entities/icps", 400, jsonCT, `{"error":{"code":"BAD_REQUEST","message":"m","details":[]}}`},
		"a 503 without Retry-After":              {http.MethodGet, one, 503, jsonCT, errBody("UNAVAILABLE")},
		"a 401 without WWW-Authenticate":         {http.MethodGet, one, 401, jsonCT, errBody("UNAUTHORIZED")},
		"a body on a 204":                        {http.MethodDelete, one, 204, jsonCT, "{}"},
		"a list that is not an array":            {http.MethodGet, "/api/v1/entities/icps", 200, jsonCT, icp},
		"a 200 for an unknown route":             {http.MethodGet, "/nope", 200, jsonCT, "{}"},
		"another Content-Type":                   {http.MethodGet, one, 200, http.Header{"Content-Type": {"text/plain"}, "Etag": {`"1"`}}, icp},
		"a body that is not JSON":                {http.MethodGet, one, 200, with("ETag", `"1"`), icp + "}"},
		"an id that is not lowercase":            {http.MethodGet, one, 200, with("ETag", `"1"`), strings.Replace(icp, "550e8400-e29b", "550E8400-E29B", 1)},
		"a bad Retry-After":                      {http.MethodGet, one, 503, with("Retry-After", "soon"), errBody("UNAVAILABLE")},
	} {
		if err := c.check(httptest.NewRequest(bad.method, bad.path, nil), bad.status, bad.header, []byte(bad.body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestTheOpenAPIDocumentIsServed checks GET /openapi.json: no token needed,
// the embedded document byte for byte, and it describes the five ICP
// operations and every error code of the catalogue.
func TestTheOpenAPIDocumentIsServed(t *testing.T) {
	e := newEnv(t, envOpts{})
	r := e.do(req{method: http.MethodGet, path: "/openapi.json"})
	if r.status != http.StatusOK || r.body != string(openapi.Document()) {
		t.Fatalf("GET /openapi.json: %d, %d bytes (want the %d embedded)", r.status, len(r.body), len(openapi.Document()))
	}
	c := mustContract(t)
	if c.doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q, want 3.1.0", c.doc.OpenAPI)
	}
	ops := map[string]string{}
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			ops[method+" "+path] = op.OperationID
		}
	}
	for _, want := range []string{
		"POST /api/v1/entities/icps", "GET /api/v1/entities/icps", "GET /api/v1/entities/icps/{id}",
		"PATCH /api/v1/entities/icps/{id}", "DELETE /api/v1/entities/icps/{id}",
	} {
		if ops[want] == "" {
			t.Errorf("%s is not described (have %v)", want, ops)
		}
	}
	enum := c.doc.Components.Schemas["Error"].Value.Properties["error"].Value.Properties["code"].Value.Enum
	for _, code := range []string{
		"BAD_REQUEST", "UNAUTHORIZED", "FORBIDDEN", "NOT_FOUND", "METHOD_NOT_ALLOWED", "CONFLICT", "IDEMPOTENCY_KEY_REUSED",
		"PRECONDITION_FAILED", "PAYLOAD_TOO_LARGE", "UNSUPPORTED_MEDIA_TYPE", "RATE_LIMITED", "INTERNAL_ERROR", "UNAVAILABLE",
	} {
		found := false
		for _, v := range enum {
			found = found || v == code
		}
		if !found {
			t.Errorf("error code %s is not in the document", code)
		}
	}
	for _, name := range []string{"BadRequest", "Unauthorized", "Forbidden", "NotFound", "Conflict", "CreateConflict",
		"PreconditionFailed", "PayloadTooLarge", "UnsupportedMediaType", "RateLimited", "InternalError", "Unavailable"} {
		if c.doc.Components.Responses[name] == nil {
			t.Errorf("no response component %s", name)
		}
	}
}
