package api_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/icpservice/icp/api"
	"github.com/icpservice/icp/api/auth"
	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/sqlitestore"
	"github.com/icpservice/icp/platform/datadir"
	"github.com/icpservice/icp/projections"
	"github.com/icpservice/icp/projections/sqlitemodel"
)

// TestTheLifecycleServedLiveIsTheFoldOfTheEventStore drives creates, updates
// and deletes through the whole pipeline (store, relay, NATS, projector, read
// model), then stops the service and checks what it served against the event
// store, the source of truth:
//   - 50 concurrent PATCHes to one ICP end at version 1 + the number of 200
//     answers, each 200 with its own version, and the served ICP equals the
//     fold of its stream;
//   - a read model rebuilt from the store alone, into an empty database, holds
//     exactly what the live one held, and serves the same gets and lists.
//
// This one runs on the embedded SQLite store; lifecycle_engines_test.go runs
// the same on EventStoreDB.
func TestTheLifecycleServedLiveIsTheFoldOfTheEventStore(t *testing.T) {
	lifecycle(t, engines{}, func(t *testing.T, s *service) events.Store {
		st, err := sqlitestore.Open(context.Background(), filepath.Join(s.dir, datadir.EventsFile), sqlitestore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return st
	})
}

// lifecycle runs the test above on a service using e's engines. Once the
// service has stopped, openStore opens its event store (the caller's to
// check where it lives); lifecycle closes it. On a store shared with other
// runs (e.orgSuffix set), the users are this run's own as well, since a
// personal tenant is named after its user, and only the ICPs of this run's
// tenants are checked.
func lifecycle(t *testing.T, e engines, openStore func(t *testing.T, s *service) events.Store) {
	s := startServiceOn(t, e)
	aliceID, bobID, rootID := "user_alice"+e.orgSuffix, "user_bob"+e.orgSuffix, "user_root"+e.orgSuffix
	users := strings.NewReplacer(`"user_alice"`, `"`+aliceID+`"`, `"user_bob"`, `"`+bobID+`"`).Replace
	alice := s.token(aliceID, "org_acme", false)
	bob := s.token(bobID, "org_acme", false)
	root := s.token(rootID, "org_acme", true)
	solo := s.token(aliceID, "", false) // alice in her personal scope
	org := "org_acme" + e.orgSuffix
	create := func(token, body string, header map[string]string) string {
		t.Helper()
		r := s.call(http.MethodPost, api.BasePath, token, body, header)
		if r.status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		return idOf(t, r.body)
	}
	call := func(method, id, token, body string, header map[string]string, want int) resp {
		t.Helper()
		r := s.call(method, api.BasePath+"/"+id, token, body, header)
		if r.status != want {
			t.Fatalf("%s %s: %d, want %d: %s", method, id, r.status, want, r.body)
		}
		return r
	}

	// 50 concurrent PATCHes to one ICP, by members and an admin.
	hot := create(alice, users(`{"name":"Hot","leadProviderCriteria":[],"userIds":["user_bob"]}`), nil)
	const n = 50
	var (
		wg    sync.WaitGroup
		resps [n]resp
		start = make(chan struct{})
	)
	for i := range n {
		body := [...]string{
			`{"name":"P` + strconv.Itoa(i) + `","leadsPerList":` + strconv.Itoa(i+1) + `}`,
			`{"description":"d` + strconv.Itoa(i) + `"}`,
			`{"description":null,"crmFilters":{"provider":"bullhorn","query":{"$in":[` + strconv.Itoa(i) + `,1e400]}}}`,
			`{"crmFilters":null,"activeUntil":"2031-01-01T00:00:` + fmt.Sprintf("%02d", i) + `+02:00"}`, // unique: a PATCH that changes nothing answers the current ETag
			`{"activeUntil":null,"customFilterCriteria":[{"type":"minDaysUntilReuse","value":` + strconv.Itoa(i) + `}]}`,
		}[i%5]
		token := [...]string{alice, bob, root}[i%3]
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resps[i] = s.call(http.MethodPatch, api.BasePath+"/"+hot, token, body, nil)
		}()
	}
	close(start)
	wg.Wait()
	won := map[string]string{} // ETag -> body of the 200 answer
	for i, r := range resps {
		switch r.status {
		case http.StatusOK:
			if _, dup := won[r.header.Get("ETag")]; dup {
				t.Fatalf("two PATCHes answered ETag %s", r.header.Get("ETag"))
			}
			won[r.header.Get("ETag")] = r.body
		case http.StatusConflict:
			assertError(t, r, http.StatusConflict, "CONFLICT")
		default:
			t.Fatalf("PATCH %d: %d %s, want 200 or 409", i, r.status, r.body)
		}
	}
	final := uint64(1 + len(won))
	hotGet := call(http.MethodGet, hot, alice, "", nil, http.StatusOK)
	if hotGet.header.Get("ETag") != `"`+strconv.FormatUint(final, 10)+`"` {
		t.Fatalf("after %d successful PATCHes the ICP is at ETag %s, want %q", len(won), hotGet.header.Get("ETag"), strconv.FormatUint(final, 10))
	}
	if last := won[hotGet.header.Get("ETag")]; hotGet.body != last {
		t.Fatalf("get after the PATCHes:\n%s\nthe PATCH that made this version answered:\n%s", hotGet.body, last)
	}
	t.Logf("%d of %d concurrent PATCHes succeeded", len(won), n)

	// Sequences of creates, updates and deletes in two tenants.
	handedOver := create(alice, users(`{"name":"A1","description":"first","leadProviderCriteria":[{"provider":"baseProvider","filters":{"a.b":[1,2]}}],"userIds":["user_bob"]}`), nil)
	call(http.MethodPatch, handedOver, alice, `{"name":"A1 renamed","leadsPerList":33}`, nil, http.StatusOK)
	call(http.MethodPatch, handedOver, alice, users(`{"userIds":["user_bob"]}`), nil, http.StatusOK)
	call(http.MethodGet, handedOver, alice, "", nil, http.StatusForbidden)
	call(http.MethodPatch, handedOver, bob, `{"description":null,"crmFilters":{"textSearch":null,"filters":[{"path":"x","mode":"eq","value":{"$gt":1}}]}}`, nil, http.StatusOK)

	adminChanged := create(alice, `{"name":"A2","leadProviderCriteria":[]}`, nil)
	call(http.MethodPatch, adminChanged, root, `{"customFilterCriteria":[{"type":"maxPeoplePerCompany","value":3}]}`, nil, http.StatusOK)
	call(http.MethodDelete, adminChanged, alice, "", nil, http.StatusNoContent)

	key := map[string]string{"Idempotency-Key": "bob-7"}
	keyed := create(bob, `{"name":"B1","leadProviderCriteria":[]}`, key)
	if again := create(bob, `{"name":"B1","leadProviderCriteria":[]}`, key); again != keyed {
		t.Fatalf("a retry with the same key created %s besides %s", again, keyed)
	}
	call(http.MethodPatch, keyed, bob, `{"activeUntil":"2030-06-01T12:00:00Z"}`, nil, http.StatusOK)
	call(http.MethodDelete, keyed, root, "", nil, http.StatusNoContent)

	personal := create(solo, `{"name":"Mine","leadProviderCriteria":[]}`, nil)
	call(http.MethodPatch, personal, solo, `{"leadProviderCriteria":[{"provider":"baseProvider","type":"company","filters":{}}]}`, map[string]string{"If-Match": `"1"`}, http.StatusOK)
	call(http.MethodGet, personal, alice, "", nil, http.StatusNotFound)

	conditional := create(alice, `{"name":"A3","leadProviderCriteria":[]}`, nil)
	call(http.MethodPatch, conditional, alice, `{"name":"late"}`, map[string]string{"If-Match": `"2"`}, http.StatusPreconditionFailed)
	call(http.MethodDelete, conditional, alice, "", map[string]string{"If-Match": `"1"`}, http.StatusNoContent)
	call(http.MethodDelete, conditional, alice, "", nil, http.StatusNotFound)
	call(http.MethodPatch, conditional, alice, `{"name":"back"}`, nil, http.StatusNotFound)

	kept := create(bob, users(`{"name":"B2","leadProviderCriteria":[],"userIds":["user_alice"]}`), nil)

	// What the service served live, by the caller who sees it.
	type served struct {
		status     int
		body, etag string
	}
	gets := map[string]served{}
	for id, token := range map[string]string{hot: root, handedOver: root, adminChanged: root, keyed: root, personal: solo, conditional: root, kept: root} {
		r := s.call(http.MethodGet, api.BasePath+"/"+id, token, "", nil)
		gets[id] = served{r.status, r.body, r.header.Get("ETag")}
	}
	type lister struct {
		token string
		p     auth.Principal
	}
	listers := []lister{
		{alice, auth.Principal{UserID: aliceID, OrgID: org}},
		{bob, auth.Principal{UserID: bobID, OrgID: org}},
		{root, auth.Principal{UserID: rootID, OrgID: org}},
		{solo, auth.Principal{UserID: aliceID}},
	}
	lists := make([]string, len(listers))
	for i, l := range listers {
		lists[i] = s.call(http.MethodGet, api.BasePath, l.token, "", nil).body
	}

	s.stop()
	ctx := context.Background()
	st := openStore(t, s)
	defer st.Close()
	live, err := sqlitemodel.Open(ctx, filepath.Join(s.dir, datadir.ReadModelFile), sqlitemodel.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	rebuilt, err := sqlitemodel.Open(ctx, filepath.Join(t.TempDir(), "rebuilt.db"), sqlitemodel.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rebuilt.Close()
	ours := map[string]bool{}
	for _, l := range listers {
		ours[l.p.Tenant()] = true
	}
	folds := map[string]*domain.State{}
	var ids []string
	for _, id := range rebuild(t, st, rebuilt) {
		evs, err := st.ReadStream(ctx, events.StreamID(id), 0)
		if err != nil {
			t.Fatal(err)
		}
		folded, err := events.Fold(evs)
		if err != nil {
			t.Fatal(err)
		}
		if ours[folded.Tenant] {
			ids = append(ids, id)
			folds[id] = folded
		}
	}
	if len(ids) != 7 {
		t.Fatalf("the store holds %d ICPs in this test's tenants, want 7", len(ids))
	}

	for _, id := range ids {
		folded := folds[id]
		want, err := projections.ViewOf(folded)
		if err != nil {
			t.Fatal(err)
		}
		for name, rm := range map[string]projections.ReadModel{"live": live, "rebuilt": rebuilt} {
			got, err := rm.Get(ctx, id)
			if err != nil {
				t.Fatalf("%s read model, %s: %v", name, id, err)
			}
			if diff := viewDiff(got, want); diff != "" {
				t.Errorf("%s read model, %s, against the fold of its stream: %s", name, id, diff)
			}
		}
		g := gets[id]
		switch {
		case folded.Deleted:
			if g.status != http.StatusNotFound {
				t.Errorf("%s is deleted in the store but was served live: %d %s", id, g.status, g.body)
			}
		case g.status != http.StatusOK || g.body != string(want.Doc) || g.etag != `"`+strconv.FormatUint(folded.Version, 10)+`"`:
			t.Errorf("%s served live: %d ETag %s %s\nthe fold of its stream: version %d %s", id, g.status, g.etag, g.body, folded.Version, want.Doc)
		}
	}
	if h := gets[hot]; h.etag != `"`+strconv.FormatUint(final, 10)+`"` {
		t.Errorf("the hot ICP was served at ETag %s, want %d", h.etag, final)
	}
	for i, l := range listers {
		for name, rm := range map[string]projections.ReadModel{"live": live, "rebuilt": rebuilt} {
			views, err := rm.List(ctx, l.p.Tenant(), l.p.UserID, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			docs := make([]string, len(views))
			for j, v := range views {
				docs[j] = string(v.Doc)
			}
			if got := "[" + strings.Join(docs, ",") + "]"; got != lists[i] {
				t.Errorf("%s read model's list for %s in %s:\n%s\nserved live:\n%s", name, l.p.UserID, l.p.Tenant(), got, lists[i])
			}
		}
	}
}

// rebuild replays the store's global log into rm, which must be empty, the way
// a new projector would: each event folded onto its ICP's state and the view
// applied in order. It returns the ICP ids in the order of their creation.
func rebuild(t *testing.T, st events.Store, rm projections.ReadModel) []string {
	t.Helper()
	ctx := context.Background()
	states := map[string]*domain.State{}
	var ids []string
	var after uint64
	for {
		batch, err := st.ReadAll(ctx, after, 64)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 {
			return ids
		}
		views := make([]projections.View, 0, len(batch))
		for _, r := range batch {
			id := r.ICPID()
			if states[id] == nil {
				ids = append(ids, id)
			}
			s, err := events.EvolveRecorded(states[id], r)
			if err != nil {
				t.Fatal(err)
			}
			states[id] = s
			v, err := projections.ViewOf(s)
			if err != nil {
				t.Fatal(err)
			}
			views = append(views, v)
			after = r.Position
		}
		outs, err := rm.Apply(ctx, views)
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range outs {
			if !o.Applied {
				t.Fatalf("rebuilding: %s version %d not applied onto stored %d", views[i].ID, views[i].Version, o.Stored)
			}
		}
	}
}

// viewDiff describes how got differs from want ("" when it does not).
func viewDiff(got, want projections.View) string {
	var d []string
	if got.ID != want.ID || got.Tenant != want.Tenant || got.CreatedBy != want.CreatedBy {
		d = append(d, fmt.Sprintf("id/tenant/creator %s/%s/%s, want %s/%s/%s", got.ID, got.Tenant, got.CreatedBy, want.ID, want.Tenant, want.CreatedBy))
	}
	if got.Version != want.Version || got.Deleted != want.Deleted || got.Position != want.Position {
		d = append(d, fmt.Sprintf("version %d deleted %v position %d, want %d %v %d", got.Version, got.Deleted, got.Position, want.Version, want.Deleted, want.Position))
	}
	if !bytes.Equal(got.Doc, want.Doc) {
		d = append(d, fmt.Sprintf("doc\n%s\nwant\n%s", got.Doc, want.Doc))
	}
	if !want.Deleted && !slices.Equal(got.UserIDs, want.UserIDs) {
		d = append(d, fmt.Sprintf("members %v, want %v", got.UserIDs, want.UserIDs))
	}
	return strings.Join(d, "; ")
}
