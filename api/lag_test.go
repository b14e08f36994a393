package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/icpservice/icp/api"
	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/projections"
)

// projectOnce brings the read model up to the event store once, as a
// projector would, and then leaves it: nothing projects the changes made
// afterwards, so the read model lags from then on.
func projectOnce(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	recs, err := e.store.ReadAll(ctx, 0, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	byICP := map[string][]events.Recorded{}
	var order []string
	for _, r := range recs {
		if byICP[r.ICPID()] == nil {
			order = append(order, r.ICPID())
		}
		byICP[r.ICPID()] = append(byICP[r.ICPID()], r)
	}
	for _, id := range order {
		var s *domain.State
		var views []projections.View
		for _, r := range byICP[id] {
			if s, err = events.EvolveRecorded(s, r); err != nil {
				t.Fatal(err)
			}
			v, err := projections.ViewOf(s)
			if err != nil {
				t.Fatal(err)
			}
			views = append(views, v)
		}
		if _, err := e.model.Apply(ctx, views); err != nil {
			t.Fatal(err)
		}
	}
}

// storedVersion is the version the read model holds for id.
func storedVersion(t *testing.T, e *env, id string) uint64 {
	t.Helper()
	v, err := e.model.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return v.Version
}

// TestWithdrawnAccessHoldsWhileTheReadModelLags: with no projector running,
// the read model keeps the ICP as it was before a PATCH that removed a member
// and before a DELETE. Once those are acknowledged, the removed member and
// (after the delete) everyone are never served the ICP again, by get or list.
func TestWithdrawnAccessHoldsWhileTheReadModelLags(t *testing.T) {
	e := newEnv(t, envOpts{cfg: api.Config{ConsistencyWait: time.Millisecond}})
	key := map[string]string{"Idempotency-Key": "shared-1"}
	shared := e.do(req{method: http.MethodPost, path: api.BasePath, token: "alice", header: key,
		body: `{"name":"Shared","leadProviderCriteria":[],"userIds":["user_bob"]}`})
	if shared.status != http.StatusCreated {
		t.Fatalf("create: %d %s", shared.status, shared.body)
	}
	other := e.create("alice", `{"name":"Other","leadProviderCriteria":[],"userIds":["user_bob"]}`)
	id, otherID := idOf(t, shared.body), idOf(t, other.body)
	path := api.BasePath + "/" + id
	projectOnce(t, e)
	for _, tok := range []string{"alice", "bob", "admin"} {
		if g := e.do(req{method: http.MethodGet, path: path, token: tok}); g.status != http.StatusOK {
			t.Fatalf("%s's get before any change: %d %s", tok, g.status, g.body)
		}
	}
	if l := e.do(req{method: http.MethodGet, path: api.BasePath, token: "bob"}); l.body != "["+shared.body+","+other.body+"]" {
		t.Fatalf("bob's list before any change: %s", l.body)
	}

	// alice removes bob; nothing projects it.
	patched := e.do(req{method: http.MethodPatch, path: path, token: "alice", body: `{"userIds":["user_alice"],"name":"Private now"}`})
	if patched.status != http.StatusOK || patched.header.Get(api.HeaderConsistency) != "pending" {
		t.Fatalf("patch: %d (consistency %q) %s", patched.status, patched.header.Get(api.HeaderConsistency), patched.body)
	}
	if v := storedVersion(t, e, id); v != 1 {
		t.Fatalf("the read model holds version %d, want it still at 1 (nothing projects)", v)
	}
	assertError(t, e.do(req{method: http.MethodGet, path: path, token: "bob"}), http.StatusForbidden, "FORBIDDEN")
	if l := e.do(req{method: http.MethodGet, path: api.BasePath, token: "bob"}); l.status != http.StatusOK || l.body != "["+other.body+"]" {
		t.Fatalf("bob's list after his removal: %d %s", l.status, l.body)
	}
	// A page of bob's list whose only view was withdrawn is empty but still
	// leads on to the next page.
	page := e.do(req{method: http.MethodGet, path: api.BasePath + "?limit=1", token: "bob"})
	next := page.header.Get("Link")
	if page.body != "[]" || !strings.HasPrefix(next, "<"+api.BasePath+"?cursor=") {
		t.Fatalf("bob's first page of one: %s (Link %q)", page.body, next)
	}
	next = strings.TrimSuffix(strings.TrimPrefix(next, "<"), `>; rel="next"`)
	if p2 := e.do(req{method: http.MethodGet, path: next, token: "bob"}); p2.body != "["+other.body+"]" {
		t.Fatalf("bob's second page: %s", p2.body)
	}
	// Those who may still read it are served the ICP as the store holds it.
	for _, tok := range []string{"alice", "admin"} {
		g := e.do(req{method: http.MethodGet, path: path, token: tok})
		if g.status != http.StatusOK || g.body != patched.body || g.header.Get("ETag") != `"2"` {
			t.Fatalf("%s's get after the patch: %d ETag %q %s\nwant the PATCH's answer %s", tok, g.status, g.header.Get("ETag"), g.body, patched.body)
		}
	}
	if l := e.do(req{method: http.MethodGet, path: api.BasePath, token: "alice"}); l.body != "["+patched.body+","+other.body+"]" {
		t.Fatalf("alice's list after the patch: %s", l.body)
	}

	// alice deletes it; nothing projects that either.
	if d := e.do(req{method: http.MethodDelete, path: path, token: "alice"}); d.status != http.StatusNoContent || d.header.Get(api.HeaderConsistency) != "pending" {
		t.Fatalf("delete: %d (consistency %q) %s", d.status, d.header.Get(api.HeaderConsistency), d.body)
	}
	if v := storedVersion(t, e, id); v != 1 {
		t.Fatalf("the read model holds version %d, want it still at 1", v)
	}
	for _, tok := range []string{"alice", "bob", "admin"} {
		assertError(t, e.do(req{method: http.MethodGet, path: path, token: tok}), http.StatusNotFound, "NOT_FOUND")
	}
	if l := e.do(req{method: http.MethodGet, path: api.BasePath, token: "alice"}); l.body != "["+other.body+"]" {
		t.Fatalf("alice's list after the delete: %s", l.body)
	}

	// The Idempotency-Key retry of the create still answers its first
	// answer to its creator, as the contract says, whatever happened since.
	again := e.do(req{method: http.MethodPost, path: api.BasePath, token: "alice", header: key,
		body: `{"name":"Shared","leadProviderCriteria":[],"userIds":["user_bob"]}`})
	if again.status != http.StatusCreated || again.body != shared.body {
		t.Fatalf("retried create after the delete: %d %s\nwant %s", again.status, again.body, shared.body)
	}

	// Untouched ICPs are served from the read model as they were.
	if g := e.do(req{method: http.MethodGet, path: api.BasePath + "/" + otherID, token: "bob"}); g.status != http.StatusOK || g.body != other.body {
		t.Fatalf("bob's get of the untouched ICP: %d %s", g.status, g.body)
	}
}

// TestReadsAnswer503WhenTheStoreCannotTellAccess: a read of a view whose
// freshness cannot be checked is refused, not served stale.
func TestReadsAnswer503WhenTheStoreCannotTellAccess(t *testing.T) {
	e := newEnv(t, envOpts{cfg: api.Config{ConsistencyWait: time.Millisecond}})
	id := idOf(t, e.create("alice", `{"name":"Shared","leadProviderCriteria":[],"userIds":["user_bob"]}`).body)
	projectOnce(t, e)
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	assertError(t, e.do(req{method: http.MethodGet, path: api.BasePath + "/" + id, token: "bob"}), http.StatusServiceUnavailable, "UNAVAILABLE")
	assertError(t, e.do(req{method: http.MethodGet, path: api.BasePath, token: "bob"}), http.StatusServiceUnavailable, "UNAVAILABLE")
}
