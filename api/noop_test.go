package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/icpservice/icp/api"
	"github.com/icpservice/icp/events"
)

// A PATCH whose members all hold the values the ICP already has records
// nothing: the answer is the ICP as it is, with its ETag and updatedAt, and
// the store's stream stays at its version. Free-form JSON counts as
// unchanged when its text is the one the service keeps.
func TestPatchThatChangesNothingRecordsNothing(t *testing.T) {
	e := newEnv(t, envOpts{project: true})
	created := e.create("alice", `{"name":"Mine","description":"d","leadProviderCriteria":[{"provider":"baseProvider","filters":{"a":1.50,"b":["x"]}}],"userIds":["user_bob"],"leadsPerList":20}`)
	id := idOf(t, created.body)
	path := api.BasePath + "/" + id
	streamVersion := func() uint64 {
		t.Helper()
		vs, err := e.store.StreamVersions(context.Background(), []string{events.StreamID(id)})
		if err != nil {
			t.Fatal(err)
		}
		return vs[events.StreamID(id)]
	}

	for _, body := range []string{
		`{}`,
		`{"name":"  Mine "}`,
		`{"description":"d","leadsPerList":20}`,
		`{"leadProviderCriteria":[{"provider":"baseProvider","filters":{ "a": 1.50, "b": ["x"] }}]}`,
		`{"userIds":["user_bob","user_alice"],"crmFilters":null,"activeUntil":null}`,
	} {
		u := e.do(req{method: http.MethodPatch, path: path, token: "alice", body: body})
		if u.status != http.StatusOK || u.header.Get("ETag") != `"1"` || u.body != created.body {
			t.Fatalf("PATCH %s: %d ETag %q\n%s\nwant the ICP as created:\n%s", body, u.status, u.header.Get("ETag"), u.body, created.body)
		}
		if v := streamVersion(); v != 1 {
			t.Fatalf("PATCH %s recorded something: stream at version %d", body, v)
		}
	}

	// Different text of the same number is a change: the ICP keeps the text.
	u := e.do(req{method: http.MethodPatch, path: path, token: "alice", body: `{"name":"Mine","leadProviderCriteria":[{"provider":"baseProvider","filters":{"a":1.5,"b":["x"]}}]}`})
	if u.status != http.StatusOK || u.header.Get("ETag") != `"2"` || streamVersion() != 2 {
		t.Fatalf("a changed PATCH: %d ETag %q, stream at %d", u.status, u.header.Get("ETag"), streamVersion())
	}
	var after, before map[string]json.RawMessage
	if err := json.Unmarshal([]byte(u.body), &after); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal([]byte(created.body), &before)
	if string(after["updatedAt"]) <= string(before["updatedAt"]) || string(after["leadProviderCriteria"]) != `[{"provider":"baseProvider","filters":{"a":1.5,"b":["x"]}}]` {
		t.Fatalf("the change was not applied: %s", u.body)
	}
	// The event records only the member that changed.
	recs, err := e.store.ReadStream(context.Background(), events.StreamID(id), 2)
	if err != nil {
		t.Fatal(err)
	}
	var ev struct {
		Changes map[string]json.RawMessage `json:"changes"`
	}
	if err := json.Unmarshal(recs[0].Data, &ev); err != nil {
		t.Fatal(err)
	}
	if _, ok := ev.Changes["name"]; ok || len(ev.Changes) != 1 {
		t.Fatalf("the event records %s, want leadProviderCriteria alone", recs[0].Data)
	}
}
