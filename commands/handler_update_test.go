package commands_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/icpservice/icp/commands"
	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/projections"
)

func parseUpdate(t *testing.T, body string) domain.UpdateICP {
	t.Helper()
	u, err := commands.ParseUpdate([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestUpdateRecordsTheChangeAndAnswersTheFoldedICP(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	clk := &clock{t: time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)}
	h := commands.NewHandler(st, commands.WithClock(clk.now))
	created, err := h.Create(ctx, alice, parse(t, body1, alice), "", commands.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	id := created.State.ICP.ID
	clk.add(time.Minute)

	bob := domain.Actor{UserID: "user_bob", Tenant: "org_acme"} // a member
	res, err := h.Update(ctx, bob, id, parseUpdate(t, `{"name":"Renamed","description":"now set","leadsPerList":50}`), []uint64{1}, commands.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	s := res.State
	if s.Version != 2 || s.ICP.Name != "Renamed" || *s.ICP.Description != "now set" || s.ICP.LeadsPerList != 50 {
		t.Fatalf("state %+v", s)
	}
	if s.ICP.CreatedAt != created.State.ICP.CreatedAt || s.ICP.UpdatedAt.String() != "2024-01-15T10:31:00.000Z" {
		t.Errorf("createdAt %s updatedAt %s", s.ICP.CreatedAt, s.ICP.UpdatedAt)
	}
	folded, err := events.Fold(readStream(t, st, id))
	if err != nil {
		t.Fatal(err)
	}
	view, err := projections.ViewOf(folded)
	if err != nil {
		t.Fatal(err)
	}
	if doc(t, s) != string(view.Doc) {
		t.Errorf("answer\n%s\nread model doc\n%s", doc(t, s), view.Doc)
	}

	// A stale If-Match is refused and records nothing.
	if _, err := h.Update(ctx, alice, id, parseUpdate(t, `{"name":"Lost"}`), []uint64{1}, commands.RequestMeta{}); !errors.Is(err, domain.ErrPreconditionFailed) {
		t.Fatalf("stale If-Match: %v", err)
	}
	// Clearing and an empty update.
	res, err = h.Update(ctx, alice, id, parseUpdate(t, `{"description":null}`), nil, commands.RequestMeta{})
	if err != nil || res.State.ICP.Description != nil || res.State.Version != 3 {
		t.Fatalf("clear description: %+v %v", res.State, err)
	}
	// The event holds only what changed; a clear is an explicit null.
	cleared := readStream(t, st, id)[2]
	if want := `{"id":"` + id + `","updatedAt":"2024-01-15T10:31:00.000Z","updatedBy":"user_alice","changes":{"description":null}}`; cleared.Type != events.TypeICPUpdated || cleared.SchemaVersion != 1 || string(cleared.Data) != want {
		t.Fatalf("stored %s v%d %s\nwant ICPUpdated v1 %s", cleared.Type, cleared.SchemaVersion, cleared.Data, want)
	}
	p, err := events.DecodeRecorded(cleared)
	if ch := p.(domain.ICPUpdatedV1).Changes; err != nil || !ch.Description.Set || !ch.Description.Null || ch.Name.Set || ch.CRMFilters.Set {
		t.Fatalf("decoded %+v %v", p, err)
	}
	res, err = h.Update(ctx, alice, id, parseUpdate(t, `{}`), nil, commands.RequestMeta{})
	if err != nil || res.State.Version != 3 {
		t.Fatalf("empty update: %+v %v", res.State, err)
	}
	if n := len(readStream(t, st, id)); n != 3 {
		t.Fatalf("stream has %d events, want 3", n)
	}
}

func TestDeleteIsFinal(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	h := commands.NewHandler(st)
	created, err := h.Create(ctx, alice, parse(t, body1, alice), "", commands.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	id := created.State.ICP.ID
	eve := domain.Actor{UserID: "user_eve", Tenant: "org_other", Admin: true}
	carol := domain.Actor{UserID: "user_carol", Tenant: "org_acme"}
	if _, err := h.Delete(ctx, eve, id, nil, commands.RequestMeta{}); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("another tenant's delete: %v", err)
	}
	if _, err := h.Delete(ctx, carol, id, nil, commands.RequestMeta{}); !errors.Is(err, domain.ErrForbidden) {
		t.Fatalf("a non-member's delete: %v", err)
	}
	if _, err := h.Delete(ctx, alice, id, []uint64{7}, commands.RequestMeta{}); !errors.Is(err, domain.ErrPreconditionFailed) {
		t.Fatalf("stale If-Match: %v", err)
	}
	res, err := h.Delete(ctx, alice, id, []uint64{1}, commands.RequestMeta{})
	if err != nil || !res.State.Deleted || res.State.Version != 2 {
		t.Fatalf("delete: %+v %v", res.State, err)
	}
	if _, err := h.Delete(ctx, alice, id, nil, commands.RequestMeta{}); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := h.Update(ctx, alice, id, parseUpdate(t, `{"name":"Back"}`), nil, commands.RequestMeta{}); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("update after delete: %v", err)
	}
	if _, err := h.Update(ctx, alice, "00000000-0000-4000-8000-000000000000", parseUpdate(t, `{"name":"x"}`), nil, commands.RequestMeta{}); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("update of an unknown id: %v", err)
	}
	// The history stays for audit.
	if evs := readStream(t, st, id); len(evs) != 2 || evs[1].Type != events.TypeICPDeleted {
		t.Fatalf("stream %+v", evs)
	}
}

func TestConcurrentUpdatesAreSerialised(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	h := commands.NewHandler(st, commands.WithMaxAttempts(20))
	created, err := h.Create(ctx, alice, parse(t, body1, alice), "", commands.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	id := created.State.ICP.ID
	const n = 10
	var (
		wg       sync.WaitGroup
		versions [n]uint64
		errs     [n]error
	)
	for i := range n {
		cmd := parseUpdate(t, `{"leadsPerList":`+strconv.Itoa(i+11)+`}`) // each a change: the ICP holds 10
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := h.Update(ctx, alice, id, cmd, nil, commands.RequestMeta{})
			errs[i] = err
			if err == nil {
				versions[i] = res.State.Version
			}
		}()
	}
	wg.Wait()
	seen := map[uint64]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("update %d: %v", i, errs[i])
		}
		if seen[versions[i]] {
			t.Fatalf("two updates answered version %d", versions[i])
		}
		seen[versions[i]] = true
	}
	if got := len(readStream(t, st, id)); got != n+1 {
		t.Fatalf("stream has %d events, want %d", got, n+1)
	}
}

func TestConcurrentUpdatesWithOneIfMatchLetOneWin(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	h := commands.NewHandler(st)
	created, err := h.Create(ctx, alice, parse(t, body1, alice), "", commands.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	var (
		wg   sync.WaitGroup
		errs [n]error
	)
	cmd := parseUpdate(t, `{"name":"v2"}`)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = h.Update(ctx, alice, created.State.ICP.ID, cmd, []uint64{1}, commands.RequestMeta{})
		}()
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, domain.ErrPreconditionFailed):
			t.Errorf("update %d: %v, want success or domain.ErrPreconditionFailed", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d updates with If-Match 1 succeeded, want 1", won)
	}
}

// racingStore is the real store with another writer slipping in: after each
// of the first races reads of a stream, it appends a competing update to that
// stream, so the command's append that follows meets a moved stream. loads
// counts every read (it hides the store's snapshots, so each load is one
// read of the stream's page).
type racingStore struct {
	events.Store
	t     *testing.T
	races int
	reads int
	loads int
}

func (r *racingStore) ReadStreamPage(ctx context.Context, stream string, from uint64, limit int) ([]events.Recorded, error) {
	r.loads++
	evs, err := r.Store.ReadStreamPage(ctx, stream, from, limit)
	if err != nil || r.reads >= r.races {
		return evs, err
	}
	r.reads++
	last := evs[len(evs)-1]
	p, err := events.Encode(uuid.NewString(), domain.ICPUpdatedV1{
		ID: last.ICPID(), UpdatedAt: domain.NewTime(time.Now()), UpdatedBy: "user_other",
		Changes: domain.ICPChanges{LeadsPerList: domain.Some(int(last.Version) + 1)},
	}, events.Metadata{Tenant: "org_acme", UserID: "user_other"})
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.Store.Append(ctx, stream, last.Version, []events.Proposed{p}); err != nil {
		r.t.Fatal(err)
	}
	return evs, nil
}

func TestUpdateRetriesOnAMovedStreamThenGivesUp(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name        string
		races       int
		ifMatch     []uint64
		want        error
		wantVersion uint64
		wantLoads   int
	}{
		{"one race: decided again on the new version", 1, nil, nil, 3, 2},
		{"races past the attempts: conflict", 3, nil, domain.ErrConflict, 0, 3},
		{"a race under If-Match: precondition failed without a retry", 1, []uint64{1}, domain.ErrPreconditionFailed, 0, 1},
		// The new version is listed too, yet the answer is 412: the
		// version the precondition matched when decided is gone.
		{"a race under an If-Match listing the new version too", 1, []uint64{1, 2}, domain.ErrPreconditionFailed, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t)
			created, err := commands.NewHandler(st).Create(ctx, alice, parse(t, body1, alice), "", commands.RequestMeta{})
			if err != nil {
				t.Fatal(err)
			}
			id := created.State.ICP.ID
			rs := &racingStore{Store: st, t: t, races: tc.races}
			h := commands.NewHandler(rs, commands.WithMaxAttempts(3))
			res, err := h.Update(ctx, alice, id, parseUpdate(t, `{"name":"Mine"}`), tc.ifMatch, commands.RequestMeta{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if rs.loads != tc.wantLoads {
				t.Errorf("the stream was loaded %d times, want %d", rs.loads, tc.wantLoads)
			}
			evs := readStream(t, st, id)
			if tc.want != nil {
				if last := evs[len(evs)-1]; last.Version != uint64(1+tc.races) {
					t.Fatalf("the refused update recorded something: stream at %d", last.Version)
				}
				return
			}
			// The update applied onto the competing change, keeping it.
			if res.State.Version != tc.wantVersion || res.State.ICP.Name != "Mine" || res.State.ICP.LeadsPerList != 2 {
				t.Fatalf("state %+v", res.State)
			}
			folded, err := events.Fold(evs)
			if err != nil {
				t.Fatal(err)
			}
			if doc(t, folded) != doc(t, res.State) {
				t.Fatalf("answer %s\nstream folds to %s", doc(t, res.State), doc(t, folded))
			}
		})
	}
}

func TestAMemberMayLeaveAndAnAdminKeepsAccess(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	h := commands.NewHandler(st)
	created, err := h.Create(ctx, alice, parse(t, body1, alice), "", commands.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	id := created.State.ICP.ID
	// alice hands the ICP over to bob: she is no longer a member.
	res, err := h.Update(ctx, alice, id, parseUpdate(t, `{"userIds":["user_bob"]}`), nil, commands.RequestMeta{})
	if err != nil || len(res.State.ICP.UserIDs) != 1 || res.State.ICP.UserIDs[0] != "user_bob" {
		t.Fatalf("hand over: %+v %v", res.State, err)
	}
	if _, err := h.Update(ctx, alice, id, parseUpdate(t, `{"name":"x"}`), nil, commands.RequestMeta{}); !errors.Is(err, domain.ErrForbidden) {
		t.Fatalf("alice after leaving: %v, want domain.ErrForbidden", err)
	}
	admin := domain.Actor{UserID: "user_root", Tenant: "org_acme", Admin: true}
	if _, err := h.Update(ctx, admin, id, parseUpdate(t, `{"userIds":["user_alice"]}`), nil, commands.RequestMeta{}); err != nil {
		t.Fatalf("an admin who is not a member: %v", err)
	}
	if _, err := h.Delete(ctx, alice, id, nil, commands.RequestMeta{}); err != nil {
		t.Fatalf("alice back as a member: %v", err)
	}
}
