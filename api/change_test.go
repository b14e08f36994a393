package api_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/icpservice/icp/api"
)

func TestUpdateAnswersTheICPThatGetServes(t *testing.T) {
	e := newEnv(t, envOpts{project: true})
	created := e.create("alice", dach)
	id := idOf(t, created.body)
	path := api.BasePath + "/" + id

	u := e.do(req{method: http.MethodPatch, path: path, token: "bob", body: `{"name":"Renamed","description":null,"crmFilters":{"provider":"bullhorn","query":{"$or":[{"x.y":1e400}]}}}`,
		header: map[string]string{"If-Match": `"1"`}})
	if u.status != http.StatusOK || u.header.Get("ETag") != `"2"` || u.header.Get(api.HeaderConsistency) != "" {
		t.Fatalf("patch: %d ETag %q %s", u.status, u.header.Get("ETag"), u.body)
	}
	var before, after map[string]json.RawMessage
	_ = json.Unmarshal([]byte(created.body), &before)
	if err := json.Unmarshal([]byte(u.body), &after); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"name":                 `"Renamed"`,
		"description":          `null`,
		"crmFilters":           `{"provider":"bullhorn","query":{"$or":[{"x.y":1e400}]}}`,
		"createdAt":            string(before["createdAt"]),
		"leadProviderCriteria": string(before["leadProviderCriteria"]),
		"userIds":              string(before["userIds"]),
	} {
		if string(after[k]) != want {
			t.Errorf("%s = %s, want %s", k, after[k], want)
		}
	}
	if string(after["updatedAt"]) < string(before["updatedAt"]) {
		t.Errorf("updatedAt went back: %s < %s", after["updatedAt"], before["updatedAt"])
	}
	g := e.do(req{method: http.MethodGet, path: path, token: "alice"})
	if g.body != u.body || g.header.Get("ETag") != `"2"` {
		t.Fatalf("get after patch:\n%s\nwant\n%s", g.body, u.body)
	}
	if l := e.do(req{method: http.MethodGet, path: api.BasePath, token: "alice"}); l.body != "["+u.body+"]" {
		t.Fatalf("list after patch: %s", l.body)
	}
}

func TestUpdateRefusals(t *testing.T) {
	e := newEnv(t, envOpts{project: true})
	id := idOf(t, e.create("alice", `{"name":"Mine","leadProviderCriteria":[]}`).body)
	path := api.BasePath + "/" + id
	for _, tc := range []struct {
		name, token, path, body, ifMatch string
		status                           int
		code                             string
	}{
		{"null on a field that cannot clear", "alice", path, `{"name":null,"leadsPerList":null}`, "", 400, "BAD_REQUEST"},
		{"invalid value", "alice", path, `{"leadProviderCriteria":[{"provider":"x","filters":{}}]}`, "", 400, "BAD_REQUEST"},
		{"trailing data", "alice", path, `{} {}`, "", 400, "BAD_REQUEST"},
		{"stale If-Match", "alice", path, `{"name":"x"}`, `"7"`, 412, "PRECONDITION_FAILED"},
		{"weak If-Match", "alice", path, `{"name":"x"}`, `W/"1"`, 412, "PRECONDITION_FAILED"},
		{"malformed If-Match", "alice", path, `{"name":"x"}`, `1`, 412, "PRECONDITION_FAILED"},
		{"non-member", "bob", path, `{"name":"x"}`, "", 403, "FORBIDDEN"},
		{"another tenant", "eve", path, `{"name":"x"}`, "", 404, "NOT_FOUND"},
		{"malformed id", "alice", api.BasePath + "/nope", `{"name":"x"}`, "", 404, "NOT_FOUND"},
		{"unknown id", "alice", api.BasePath + "/00000000-0000-4000-8000-000000000000", `{"name":"x"}`, "", 404, "NOT_FOUND"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{}
			if tc.ifMatch != "" {
				h["If-Match"] = tc.ifMatch
			}
			r := e.do(req{method: http.MethodPatch, path: tc.path, token: tc.token, body: tc.body, header: h})
			got := assertError(t, r, tc.status, tc.code)
			if tc.status == 400 && tc.name != "trailing data" && len(got.Details) == 0 {
				t.Errorf("no details: %s", r.body)
			}
		})
	}
	r := e.do(req{method: http.MethodPatch, path: api.BasePath + "/nope", token: "alice", body: `{}`})
	if msg := errorOf(t, r).Message; msg != "ICP not found: nope" {
		t.Errorf("message %q", msg)
	}
	// Nothing above changed the ICP.
	g := e.do(req{method: http.MethodGet, path: path, token: "alice"})
	if g.header.Get("ETag") != `"1"` || !strings.Contains(g.body, `"name":"Mine"`) {
		t.Fatalf("the ICP changed: ETag %q %s", g.header.Get("ETag"), g.body)
	}
	// If-Match on the current version, and "*", pass.
	for i, im := range []string{`"1"`, `*`, `"9", "3"`} {
		// Each PATCH sets a new value: one that changes nothing records nothing.
		r := e.do(req{method: http.MethodPatch, path: path, token: "alice", body: `{"leadsPerList":` + strconv.Itoa(3+i) + `}`, header: map[string]string{"If-Match": im}})
		if want := `"` + string(rune('2'+i)) + `"`; r.status != 200 || r.header.Get("ETag") != want {
			t.Fatalf("If-Match %s: %d ETag %q, want %s: %s", im, r.status, r.header.Get("ETag"), want, r.body)
		}
	}
}

func TestDeleteRemovesTheICPAtOnce(t *testing.T) {
	e := newEnv(t, envOpts{project: true})
	id := idOf(t, e.create("alice", `{"name":"Doomed","leadProviderCriteria":[],"userIds":["user_bob"]}`).body)
	keep := e.create("alice", `{"name":"Kept","leadProviderCriteria":[]}`)
	path := api.BasePath + "/" + id

	assertError(t, e.do(req{method: http.MethodDelete, path: path, token: "eve"}), 404, "NOT_FOUND")
	assertError(t, e.do(req{method: http.MethodDelete, path: path, token: "alice", header: map[string]string{"If-Match": `"2"`}}), 412, "PRECONDITION_FAILED")
	other := e.create("bob", `{"name":"Bob's","leadProviderCriteria":[]}`)
	assertError(t, e.do(req{method: http.MethodDelete, path: api.BasePath + "/" + idOf(t, other.body), token: "alice"}), 403, "FORBIDDEN")

	d := e.do(req{method: http.MethodDelete, path: path, token: "bob", header: map[string]string{"If-Match": `"1"`}})
	if d.status != http.StatusNoContent || d.body != "" || d.header.Get(api.HeaderConsistency) != "" {
		t.Fatalf("delete: %d %q (consistency %q)", d.status, d.body, d.header.Get(api.HeaderConsistency))
	}
	assertError(t, e.do(req{method: http.MethodGet, path: path, token: "alice"}), 404, "NOT_FOUND")
	assertError(t, e.do(req{method: http.MethodDelete, path: path, token: "alice"}), 404, "NOT_FOUND")
	assertError(t, e.do(req{method: http.MethodPatch, path: path, token: "alice", body: `{"name":"Back"}`}), 404, "NOT_FOUND")
	if l := e.do(req{method: http.MethodGet, path: api.BasePath, token: "alice"}); l.body != "["+keep.body+"]" {
		t.Fatalf("list after delete: %s", l.body)
	}
	assertError(t, e.do(req{method: http.MethodDelete, path: api.BasePath + "/x", token: "alice"}), 404, "NOT_FOUND")
}

func TestAMemberMayLeaveButAnICPKeepsAMember(t *testing.T) {
	e := newEnv(t, envOpts{project: true})
	id := idOf(t, e.create("alice", `{"name":"Handed over","leadProviderCriteria":[]}`).body)
	path := api.BasePath + "/" + id

	r := e.do(req{method: http.MethodPatch, path: path, token: "alice", body: `{"userIds":[]}`})
	if got := assertError(t, r, 400, "BAD_REQUEST"); len(got.Details) != 1 || got.Details[0].Path != "userIds" {
		t.Fatalf("details %+v, want one on userIds", got.Details)
	}
	// alice hands the ICP over to bob and leaves it.
	r = e.do(req{method: http.MethodPatch, path: path, token: "alice", body: `{"userIds":["user_bob"]}`})
	if r.status != http.StatusOK || !strings.Contains(r.body, `"userIds":["user_bob"]`) {
		t.Fatalf("hand over: %d %s", r.status, r.body)
	}
	assertError(t, e.do(req{method: http.MethodGet, path: path, token: "alice"}), 403, "FORBIDDEN")
	if l := e.do(req{method: http.MethodGet, path: api.BasePath, token: "alice"}); l.body != "[]" {
		t.Errorf("alice's list after leaving: %s", l.body)
	}
	if l := e.do(req{method: http.MethodGet, path: api.BasePath, token: "bob"}); l.body != "["+r.body+"]" {
		t.Errorf("bob's list: %s", l.body)
	}
	if g := e.do(req{method: http.MethodGet, path: path, token: "admin"}); g.status != http.StatusOK || g.body != r.body {
		t.Errorf("an admin's get: %d %s", g.status, g.body)
	}
}

func TestUpdateReplacesArraysWholeAndReportsEveryProblem(t *testing.T) {
	e := newEnv(t, envOpts{project: true})
	id := idOf(t, e.create("alice", dach).body)
	path := api.BasePath + "/" + id

	r := e.do(req{method: http.MethodPatch, path: path, token: "alice", body: `{"name":" ","leadsPerList":0,"userIds":["user_bob",""],"activeUntil":"tomorrow",
		"leadProviderCriteria":[{"provider":"baseProvider","type":"robot","filters":{}}],"crmFilters":{"filters":[{"path":"p","value":1}]},"description":7}`})
	got := assertError(t, r, 400, "BAD_REQUEST")
	want := []string{"name", "description", "leadProviderCriteria[0].type", "crmFilters.filters[0].mode", "userIds[1]", "leadsPerList", "activeUntil"}
	if len(got.Details) != len(want) {
		t.Fatalf("details %+v, want paths %v", got.Details, want)
	}
	for i, p := range want {
		if got.Details[i].Path != p {
			t.Errorf("detail %d = %+v, want path %s", i, got.Details[i], p)
		}
	}

	r = e.do(req{method: http.MethodPatch, path: path, token: "alice", body: `{"customFilterCriteria":[{"type":"minDaysUntilReuse","value":5}],"userIds":["user_carol","user_alice"],
		"leadProviderCriteria":[{"provider":"baseProvider","filters":{"skills":["go"]}}]}`})
	if r.status != http.StatusOK {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	var after map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.body), &after); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"customFilterCriteria": `[{"type":"minDaysUntilReuse","value":5}]`,
		"userIds":              `["user_carol","user_alice"]`,
		"leadProviderCriteria": `[{"provider":"baseProvider","filters":{"skills":["go"]}}]`,
		"leadsPerList":         `20`,
		"activeUntil":          `"2030-01-01T00:00:00.000Z"`,
	} {
		if string(after[k]) != want {
			t.Errorf("%s = %s, want %s", k, after[k], want)
		}
	}
	if l := e.do(req{method: http.MethodGet, path: api.BasePath, token: "bob"}); l.body != "[]" {
		t.Errorf("bob was replaced in userIds but still lists the ICP: %s", l.body)
	}
}
