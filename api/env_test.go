package api_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/icpservice/icp/api"
	"github.com/icpservice/icp/api/auth"
	"github.com/icpservice/icp/commands"
	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/sqlitestore"
	"github.com/icpservice/icp/projections"
	"github.com/icpservice/icp/projections/sqlitemodel"
)

// tokens is a test Verifier: fixed token strings stand for principals. The
// token "down" reports that verification could not be attempted, and
// "panic" panics.
type tokens map[string]auth.Principal

func (t tokens) Verify(_ context.Context, token string) (auth.Principal, error) {
	switch token {
	case "down":
		return auth.Principal{}, errors.New("jwks endpoint unreachable")
	case "panic":
		panic("verifier exploded with secret details")
	}
	p, ok := t[token]
	if !ok {
		return auth.Principal{}, fmt.Errorf("%w: token is expired", auth.ErrUnauthorized)
	}
	return p, nil
}

var testTokens = tokens{
	"alice": {UserID: "user_alice", OrgID: "org_acme"},
	"bob":   {UserID: "user_bob", OrgID: "org_acme"},
	"admin": {UserID: "user_root", OrgID: "org_acme", OrgRole: "org:admin", Admin: true},
	"eve":   {UserID: "user_eve", OrgID: "org_evil"},
	"solo":  {UserID: "user_alice"}, // alice without an organisation: her personal tenant
}

// env is the API over a real SQLite event store and a real SQLite read model.
// With project set, a small in-test projector follows the store and applies
// each ICP's views to the read model (the real projector, with NATS between,
// is exercised by the end-to-end tests).
type env struct {
	t       *testing.T
	store   *sqlitestore.Store
	model   *sqlitemodel.Model
	handler http.Handler
	ready   func(context.Context) error
}

type envOpts struct {
	cfg     api.Config
	project bool
	ready   func(context.Context) error
	// verifier replaces testTokens when set.
	verifier auth.Verifier
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, "events.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	rm, err := sqlitemodel.Open(ctx, filepath.Join(dir, "read.db"), sqlitemodel.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rm.Close() })
	if o.project {
		startProjecting(t, st, rm)
	}
	var verifier auth.Verifier = testTokens
	if o.verifier != nil {
		verifier = o.verifier
	}
	h, err := api.New(o.cfg, api.Deps{
		Commands:  commands.NewHandler(st),
		ReadModel: rm,
		Verifier:  verifier,
		Ready:     o.ready,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, store: st, model: rm, handler: validating(t, h)}
}

// startProjecting folds every stored event into its ICP's state and applies
// the resulting view, until the test ends.
func startProjecting(t *testing.T, st events.Store, rm projections.ReadModel) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	states := map[string]*domain.State{}
	go func() {
		done <- st.Follow(ctx, 0, 256, func(batch []events.Recorded) error {
			views := make([]projections.View, 0, len(batch))
			for _, r := range batch {
				s, err := events.EvolveRecorded(states[r.ICPID()], r)
				if err != nil {
					return err
				}
				states[r.ICPID()] = s
				v, err := projections.ViewOf(s)
				if err != nil {
					return err
				}
				views = append(views, v)
			}
			_, err := rm.Apply(ctx, views)
			return err
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("test projector: %v", err)
		}
	})
}

// req describes one request.
type req struct {
	method, path, token, body string
	header                    map[string]string
}

type resp struct {
	status int
	header http.Header
	body   string
}

func (e *env) do(r req) resp {
	e.t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr := httptest.NewRequest(r.method, r.path, body)
	if r.body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	for k, v := range r.header {
		if v == "<none>" {
			hr.Header.Del(k)
			continue
		}
		hr.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	e.handler.ServeHTTP(w, hr)
	return resp{status: w.Code, header: w.Header(), body: w.Body.String()}
}

func (e *env) create(token, body string) resp {
	e.t.Helper()
	r := e.do(req{method: http.MethodPost, path: api.BasePath, token: token, body: body})
	if r.status != http.StatusCreated {
		e.t.Fatalf("create: %d %s", r.status, r.body)
	}
	return r
}

func newRequest(method, path, body string) *http.Request {
	hr := httptest.NewRequest(method, path, strings.NewReader(body))
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Authorization", "Bearer alice")
	return hr
}

func (e *env) serve(hr *http.Request) resp {
	w := httptest.NewRecorder()
	e.handler.ServeHTTP(w, hr)
	return resp{status: w.Code, header: w.Header(), body: w.Body.String()}
}

// doRaw posts body as alice with the given Content-Type ("<none>": no
// header); chunked hides the length, as a streaming client would.
func (e *env) doRaw(body, contentType string, chunked bool) resp {
	hr := newRequest(http.MethodPost, api.BasePath, body)
	if contentType == "<none>" {
		hr.Header.Del("Content-Type")
	} else {
		hr.Header.Set("Content-Type", contentType)
	}
	if chunked {
		hr.ContentLength = -1
		hr.Body = io.NopCloser(strings.NewReader(body))
	}
	return e.serve(hr)
}
