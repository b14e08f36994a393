package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/icpservice/icp/api"
	"github.com/icpservice/icp/projections"
)

const dach = `{"name":"DACH Tech Leaders","description":"Technology leaders in German-speaking regions",
 "leadProviderCriteria":[{"provider":"baseProvider","type":"person",
   "filters":{"job_title":["CTO","VP Engineering"],"location.country":["Germany"],"$size":{"min":12345678901234567890123}}}],
 "customFilterCriteria":[{"type":"maxPeoplePerCompany","value":2}],
 "crmFilters":null,"userIds":["user_bob"],"leadsPerList":20,"activeUntil":"2030-01-01T01:00:00+01:00"}`

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func idOf(t *testing.T, body string) string {
	t.Helper()
	var v struct{ ID string }
	if err := json.Unmarshal([]byte(body), &v); err != nil || !uuidRE.MatchString(v.ID) {
		t.Fatalf("no ICP id in %s (%v)", body, err)
	}
	return v.ID
}

func TestCreateAnswersTheICPThatGetAndListServe(t *testing.T) {
	e := newEnv(t, envOpts{project: true})
	created := e.create("alice", dach)
	id := idOf(t, created.body)
	if created.header.Get(api.HeaderConsistency) != "" {
		t.Errorf("ICP-Consistency %q on a create the read model caught up with", created.header.Get(api.HeaderConsistency))
	}
	if created.header.Get("ETag") != `"1"` || created.header.Get("Location") != api.BasePath+"/"+id {
		t.Errorf("ETag %q Location %q", created.header.Get("ETag"), created.header.Get("Location"))
	}
	if ct := created.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	var icp map[string]json.RawMessage
	if err := json.Unmarshal([]byte(created.body), &icp); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"name":                 `"DACH Tech Leaders"`,
		"createdAt":            string(icp["updatedAt"]),
		"leadProviderCriteria": `[{"provider":"baseProvider","type":"person","filters":{"job_title":["CTO","VP Engineering"],"location.country":["Germany"],"$size":{"min":12345678901234567890123}}}]`,
		"customFilterCriteria": `[{"type":"maxPeoplePerCompany","value":2}]`,
		"crmFilters":           `null`,
		"userIds":              `["user_bob","user_alice"]`,
		"leadsPerList":         `20`,
		"activeUntil":          `"2030-01-01T00:00:00.000Z"`,
	} {
		if string(icp[k]) != want {
			t.Errorf("%s = %s, want %s", k, icp[k], want)
		}
	}
	if len(icp) != 11 {
		t.Errorf("the ICP has %d fields, want the contract's 11: %s", len(icp), created.body)
	}

	got := e.do(req{method: http.MethodGet, path: api.BasePath + "/" + id, token: "alice"})
	if got.status != http.StatusOK || got.body != created.body || got.header.Get("ETag") != `"1"` {
		t.Fatalf("get: %d ETag %q\n%s\nwant the create's body\n%s", got.status, got.header.Get("ETag"), got.body, created.body)
	}
	// bob was listed as a member.
	for _, tok := range []string{"alice", "bob"} {
		list := e.do(req{method: http.MethodGet, path: api.BasePath, token: tok})
		if list.status != http.StatusOK || list.body != "["+created.body+"]" {
			t.Fatalf("list for %s: %d %s", tok, list.status, list.body)
		}
	}
}

func TestCreateRetriedWithTheSameKeyAnswersTheSameICP(t *testing.T) {
	e := newEnv(t, envOpts{project: true})
	key := map[string]string{"Idempotency-Key": "order-42"}
	first := e.do(req{method: http.MethodPost, path: api.BasePath, token: "alice", body: dach, header: key})
	again := e.do(req{method: http.MethodPost, path: api.BasePath, token: "alice", body: dach, header: key})
	if first.status != http.StatusCreated || again.status != http.StatusCreated || again.body != first.body {
		t.Fatalf("first %d %s\nretry %d %s", first.status, first.body, again.status, again.body)
	}
	other := e.do(req{method: http.MethodPost, path: api.BasePath, token: "alice", body: `{"name":"Other","leadProviderCriteria":[]}`, header: key})
	assertError(t, other, http.StatusConflict, "IDEMPOTENCY_KEY_REUSED")
	list := e.do(req{method: http.MethodGet, path: api.BasePath, token: "alice"})
	if list.body != "["+first.body+"]" {
		t.Fatalf("list after retries: %s", list.body)
	}
}

func TestCreateAnswersPendingWhenTheReadModelLags(t *testing.T) {
	e := newEnv(t, envOpts{cfg: api.Config{ConsistencyWait: 50 * time.Millisecond}}) // nothing projects
	r := e.create("alice", dach)
	if r.header.Get(api.HeaderConsistency) != "pending" {
		t.Fatalf("ICP-Consistency = %q, want pending", r.header.Get(api.HeaderConsistency))
	}
	id := idOf(t, r.body)
	evs, err := e.store.ReadStream(context.Background(), "icp-"+id, 0)
	if err != nil || len(evs) != 1 {
		t.Fatalf("stream of the pending ICP: %d events, %v", len(evs), err)
	}
	// Once the read model catches up it serves the same bytes.
	startProjecting(t, e.store, e.model)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.model.WaitFor(ctx, id, 1); err != nil {
		t.Fatal(err)
	}
	got := e.do(req{method: http.MethodGet, path: api.BasePath + "/" + id, token: "alice"})
	if got.body != r.body {
		t.Fatalf("get %s\nwant %s", got.body, r.body)
	}
}

func TestGetEnforcesTenantAndMembership(t *testing.T) {
	e := newEnv(t, envOpts{project: true})
	id := idOf(t, e.create("alice", `{"name":"Private","leadProviderCriteria":[]}`).body)
	path := api.BasePath + "/" + id

	for _, tc := range []struct {
		name, token, path string
		status            int
		code              string
	}{
		{"member", "alice", path, 200, ""},
		{"upper-case id", "alice", api.BasePath + "/" + strings.ToUpper(id), 200, ""},
		{"admin of the organisation", "admin", path, 200, ""},
		{"non-member of the tenant", "bob", path, 403, "FORBIDDEN"},
		{"another tenant", "eve", path, 404, "NOT_FOUND"},
		{"same user, personal tenant", "solo", path, 404, "NOT_FOUND"},
		{"unknown id", "alice", api.BasePath + "/00000000-0000-4000-8000-000000000000", 404, "NOT_FOUND"},
		{"malformed id", "alice", api.BasePath + "/not-a-uuid", 404, "NOT_FOUND"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(req{method: http.MethodGet, path: tc.path, token: tc.token})
			if tc.status == 200 {
				if r.status != 200 || idOf(t, r.body) != id {
					t.Fatalf("%d %s", r.status, r.body)
				}
				return
			}
			assertError(t, r, tc.status, tc.code)
		})
	}
	r := e.do(req{method: http.MethodGet, path: api.BasePath + "/not-a-uuid", token: "alice"})
	if msg := errorOf(t, r).Message; msg != "ICP not found: not-a-uuid" {
		t.Errorf("message %q", msg)
	}
}

func TestGetOfADeletedICPIsNotFound(t *testing.T) {
	e := newEnv(t, envOpts{project: true})
	id := idOf(t, e.create("alice", `{"name":"Soon gone","leadProviderCriteria":[]}`).body)
	v, err := e.model.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	tomb := projections.View{ID: id, Tenant: v.Tenant, Version: 2, Position: v.Position, Deleted: true, CreatedBy: v.CreatedBy}
	if out, err := e.model.Apply(context.Background(), []projections.View{tomb}); err != nil || !out[0].Applied {
		t.Fatalf("apply tombstone: %+v %v", out, err)
	}
	assertError(t, e.do(req{method: http.MethodGet, path: api.BasePath + "/" + id, token: "alice"}), 404, "NOT_FOUND")
	if l := e.do(req{method: http.MethodGet, path: api.BasePath, token: "alice"}); l.body != "[]" {
		t.Fatalf("list shows a deleted ICP: %s", l.body)
	}
}

func TestListIsTheCallersICPsInCreationOrderPagedOnRequest(t *testing.T) {
	e := newEnv(t, envOpts{project: true})
	if r := e.do(req{method: http.MethodGet, path: api.BasePath, token: "alice"}); r.status != 200 || r.body != "[]" {
		t.Fatalf("empty list: %d %q", r.status, r.body)
	}
	var mine []string
	for i := range 5 {
		mine = append(mine, e.create("alice", `{"name":"A`+string(rune('0'+i))+`","leadProviderCriteria":[]}`).body)
		e.create("bob", `{"name":"B","leadProviderCriteria":[]}`) // not alice's
		e.create("eve", `{"name":"E","leadProviderCriteria":[],"userIds":["user_alice"]}`)
	}
	all := e.do(req{method: http.MethodGet, path: api.BasePath, token: "alice"})
	if all.body != "["+strings.Join(mine, ",")+"]" || all.header.Get("Link") != "" {
		t.Fatalf("list: %s (Link %q)", all.body, all.header.Get("Link"))
	}

	var paged []string
	next := api.BasePath + "?limit=2"
	linkRE := regexp.MustCompile(`^<([^>]+)>; rel="next"$`)
	for pages := 0; next != ""; pages++ {
		if pages > 3 {
			t.Fatal("too many pages")
		}
		r := e.do(req{method: http.MethodGet, path: next, token: "alice"})
		var docs []json.RawMessage
		if r.status != 200 || json.Unmarshal([]byte(r.body), &docs) != nil || len(docs) > 2 {
			t.Fatalf("page %s: %d %s", next, r.status, r.body)
		}
		for _, d := range docs {
			paged = append(paged, string(d))
		}
		next = ""
		if l := r.header.Get("Link"); l != "" {
			m := linkRE.FindStringSubmatch(l)
			if m == nil || !strings.Contains(m[1], "limit=2") {
				t.Fatalf("Link %q", l)
			}
			next = m[1]
		}
	}
	if strings.Join(paged, ",") != strings.Join(mine, ",") {
		t.Fatalf("pages\n%v\nwant\n%v", paged, mine)
	}
}

func TestListRefusesInvalidPaging(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, q := range []string{"limit=0", "limit=1001", "limit=ten", "cursor=nope", "limit=5&limit=6", "limit=-1&cursor=%%%"} {
		r := e.do(req{method: http.MethodGet, path: api.BasePath + "?" + q, token: "alice"})
		assertError(t, r, 400, "BAD_REQUEST")
		if q != "limit=-1&cursor=%%%" && len(errorOf(t, r).Details) == 0 {
			t.Errorf("%s: no details: %s", q, r.body)
		}
	}
	r := e.do(req{method: http.MethodGet, path: api.BasePath + "?limit=0&cursor=x", token: "alice"})
	if d := errorOf(t, r).Details; len(d) != 2 || d[0].Path != "limit" || d[1].Path != "cursor" {
		t.Fatalf("details %+v, want limit and cursor", d)
	}
}
