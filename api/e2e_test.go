package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icpservice/icp/api"
	"github.com/icpservice/icp/api/auth"
	"github.com/icpservice/icp/internal/app"
	"github.com/icpservice/icp/internal/config"
)

// service is the whole pipeline in this process: the event store, the
// embedded NATS server, the relay, the projector, the read model and this
// API, on a temporary data directory, in development-token mode. The stores
// are the embedded SQLite files unless engines names production ones.
type service struct {
	t    *testing.T
	dir  string // the data directory
	base string
	key  *auth.DevKey
	http *http.Client
	stop func() // shuts the service down and waits; safe to call again
	// orgSuffix is appended to every organisation a token names.
	orgSuffix string
}

// engines selects the stores icpd runs on; the zero value is the embedded
// SQLite event store and read model.
type engines struct {
	eventStore string // --event-store: an EventStoreDB connection string
	readModel  string // --read-model: a MongoDB URI
	nats       string // --nats: a NATS server of the test's own
	// orgSuffix is appended to every organisation the service's tokens
	// name, so that runs sharing one real server across test runs each see
	// only their own tenants (ICP ids derive from the tenant, too).
	orgSuffix string
}

// startService starts the service on the embedded stores.
func startService(t *testing.T) *service {
	t.Helper()
	return startServiceOn(t, engines{})
}

// startServiceOn starts the service on the given stores and returns once
// /readyz answers 200; it stops when the test ends. Servers the engines name
// must outlive the service: start them before calling this, so that their
// cleanups run after its own.
func startServiceOn(t *testing.T, e engines) *service {
	t.Helper()
	dir := t.TempDir()
	args := []string{"--dev", "--addr=127.0.0.1:0", "--embedded-nats-addr=127.0.0.1:0", "--admin-addr=127.0.0.1:0", "--data-dir=" + dir, "--log-level=warn"}
	if e.eventStore != "" {
		args = append(args, "--event-store="+e.eventStore)
	}
	if e.readModel != "" {
		args = append(args, "--read-model="+e.readModel)
	}
	if e.nats != "" {
		args = append(args, "--nats="+e.nats)
	}
	cfg, err := config.Load(args)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stop := sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("service stopped with: %v", err)
		}
	})
	t.Cleanup(stop)
	key, err := auth.LoadOrCreateDevKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Timeout: 30 * time.Second, Transport: validatingTransport{t: t, base: tr, c: mustContract(t)}}
	s := &service{t: t, dir: dir, base: "http://" + a.Addr(), key: key, http: client, stop: stop, orgSuffix: e.orgSuffix}
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		r := s.call(http.MethodGet, "/readyz", "", "", nil)
		if r.status == http.StatusOK {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("service not ready within 30s: %d %s", r.status, r.body)
		}
		<-tick.C
	}
}

func (s *service) token(user, org string, admin bool) string {
	s.t.Helper()
	if org != "" {
		org += s.orgSuffix
	}
	tok, err := s.key.Mint(auth.DevClaims{UserID: user, OrgID: org, Admin: admin, TTL: time.Hour})
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

// call sends one request; it is safe from several goroutines and reports
// transport failures as status 0.
func (s *service) call(method, path, token, body string, header map[string]string) resp {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	hr, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		return resp{body: err.Error()}
	}
	if body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		hr.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		hr.Header.Set(k, v)
	}
	r, err := s.http.Do(hr)
	if err != nil {
		return resp{body: err.Error()}
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return resp{body: err.Error()}
	}
	return resp{status: r.StatusCode, header: r.Header, body: string(b)}
}

func TestEndToEnd(t *testing.T) {
	endToEnd(t, startService(t))
}

// endToEnd drives creates, gets, lists, updates and deletes through the
// running service s: a create is served at once, byte for byte, by get and
// list (read-your-writes, also under concurrency); tenancy and membership
// decide who sees it; retries with one idempotency key create one ICP. It
// returns the id and the 201 body of the first ICP it created, which nothing
// changes afterwards.
func endToEnd(t *testing.T, s *service) (firstID, firstBody string) {
	alice := s.token("user_alice", "org_acme", false)
	bob := s.token("user_bob", "org_acme", false)
	admin := s.token("user_root", "org_acme", true)
	eve := s.token("user_eve", "org_evil", false)

	t.Run("a created ICP is served at once, byte for byte, by get and list", func(t *testing.T) {
		c := s.call(http.MethodPost, api.BasePath, alice, dach, nil)
		if c.status != http.StatusCreated || c.header.Get(api.HeaderConsistency) != "" {
			t.Fatalf("create: %d (consistency %q) %s", c.status, c.header.Get(api.HeaderConsistency), c.body)
		}
		id := idOf(t, c.body)
		firstID, firstBody = id, c.body
		g := s.call(http.MethodGet, api.BasePath+"/"+id, alice, "", nil)
		if g.status != http.StatusOK || g.body != c.body || g.header.Get("ETag") != `"1"` {
			t.Fatalf("get: %d %s\nwant %s", g.status, g.body, c.body)
		}
		l := s.call(http.MethodGet, api.BasePath, bob, "", nil)
		if l.status != http.StatusOK || l.body != "["+c.body+"]" {
			t.Fatalf("bob's list: %d %s", l.status, l.body)
		}
		if r := s.call(http.MethodGet, api.BasePath+"/"+id, admin, "", nil); r.status != http.StatusOK {
			t.Errorf("admin get: %d %s", r.status, r.body)
		}
		assertError(t, s.call(http.MethodGet, api.BasePath+"/"+id, eve, "", nil), 404, "NOT_FOUND")
		if r := s.call(http.MethodGet, api.BasePath, eve, "", nil); r.body != "[]" {
			t.Errorf("another tenant's list: %s", r.body)
		}
	})

	t.Run("a non-member of the tenant is refused", func(t *testing.T) {
		c := s.call(http.MethodPost, api.BasePath, alice, `{"name":"Mine","leadProviderCriteria":[]}`, nil)
		id := idOf(t, c.body)
		assertError(t, s.call(http.MethodGet, api.BasePath+"/"+id, bob, "", nil), 403, "FORBIDDEN")
	})

	t.Run("concurrent retries with one key create one ICP and answer alike", func(t *testing.T) {
		carol := s.token("user_carol", "org_acme", false)
		const n = 50
		var (
			wg    sync.WaitGroup
			resps [n]resp
			start = make(chan struct{})
		)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				resps[i] = s.call(http.MethodPost, api.BasePath, carol, dach, map[string]string{"Idempotency-Key": "carol-1"})
			}()
		}
		close(start)
		wg.Wait()
		for i, r := range resps {
			if r.status != http.StatusCreated || r.body != resps[0].body {
				t.Fatalf("attempt %d: %d %s\nattempt 0: %d %s", i, r.status, r.body, resps[0].status, resps[0].body)
			}
		}
		l := s.call(http.MethodGet, api.BasePath, carol, "", nil)
		if l.body != "["+resps[0].body+"]" {
			t.Fatalf("carol's list after 50 retries: %s", l.body)
		}
	})

	t.Run("every client reads its own writes under concurrency", func(t *testing.T) {
		const clients, each = 8, 10
		var wg sync.WaitGroup
		errs := make(chan string, clients*each)
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				user := "user_rw" + string(rune('a'+c))
				tok := s.token(user, "org_rw", false)
				var mine []string
				for range each {
					r := s.call(http.MethodPost, api.BasePath, tok, `{"name":"RW","leadProviderCriteria":[]}`, nil)
					if r.status != http.StatusCreated || r.header.Get(api.HeaderConsistency) != "" {
						errs <- "create: " + r.body
						return
					}
					mine = append(mine, r.body)
					var id struct{ ID string }
					_ = json.Unmarshal([]byte(r.body), &id)
					if g := s.call(http.MethodGet, api.BasePath+"/"+id.ID, tok, "", nil); g.body != r.body {
						errs <- "get after create: " + g.body
						return
					}
				}
				if l := s.call(http.MethodGet, api.BasePath, tok, "", nil); l.body != "["+strings.Join(mine, ",")+"]" {
					errs <- "list of " + user + ": " + l.body
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
	})

	t.Run("an update and a delete are seen at once", func(t *testing.T) {
		dave := s.token("user_dave", "org_acme", false)
		c := s.call(http.MethodPost, api.BasePath, dave, `{"name":"Before","leadProviderCriteria":[]}`, nil)
		id := idOf(t, c.body)
		path := api.BasePath + "/" + id
		u := s.call(http.MethodPatch, path, dave, `{"name":"After","activeUntil":"2031-02-03T04:05:06.789+00:00"}`, map[string]string{"If-Match": `"1"`})
		if u.status != http.StatusOK || u.header.Get("ETag") != `"2"` || u.header.Get(api.HeaderConsistency) != "" {
			t.Fatalf("patch: %d %s", u.status, u.body)
		}
		if g := s.call(http.MethodGet, path, dave, "", nil); g.body != u.body {
			t.Fatalf("get after patch: %s\nwant %s", g.body, u.body)
		}
		if d := s.call(http.MethodDelete, path, dave, "", nil); d.status != http.StatusNoContent {
			t.Fatalf("delete: %d %s", d.status, d.body)
		}
		assertError(t, s.call(http.MethodGet, path, dave, "", nil), 404, "NOT_FOUND")
		if l := s.call(http.MethodGet, api.BasePath, dave, "", nil); l.body != "[]" {
			t.Fatalf("list after delete: %s", l.body)
		}
	})

	t.Run("a refused token is 401", func(t *testing.T) {
		r := s.call(http.MethodGet, api.BasePath, alice+"x", "", nil)
		assertError(t, r, 401, "UNAUTHORIZED")
		if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
		}
	})
	return firstID, firstBody
}
