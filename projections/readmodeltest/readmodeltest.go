// Package readmodeltest is the conformance suite of the projections.ReadModel
// port. Every adapter (SQLite, MongoDB, ...) runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		readmodeltest.Run(t, func(t *testing.T) projections.ReadModel { ... })
//	}
//
// open must return a read model that is empty, or at least holds nothing under
// the random ids and tenants the suite makes up; the suite closes it.
package readmodeltest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/icpservice/icp/projections"
)

// waitBudget bounds every wait in the suite: long enough for a slow CI
// machine under -race, short enough that a hang fails instead of stalling.
const waitBudget = 30 * time.Second

// Run runs every conformance case against read models made by open.
func Run(t *testing.T, open func(t *testing.T) projections.ReadModel) {
	cases := []struct {
		name string
		fn   func(t *testing.T, rm projections.ReadModel)
	}{
		{"CreateOntoNothingApplies", testCreateOntoNothing},
		{"CreateTwiceIsNotApplied", testCreateTwice},
		{"NextVersionApplies", testNextVersion},
		{"GapIsNotApplied", testGap},
		{"BatchAppliesVersionsInOrder", testBatchInOrder},
		{"StaleVersionIsNotApplied", testStale},
		{"TombstoneCannotBeResurrected", testTombstone},
		{"GetUnknownIsNotFound", testGetUnknown},
		{"DocRoundTripsExactly", testDocRoundTrip},
		{"ListOrderTenantMembership", testList},
		{"ListPaging", testListPaging},
		{"ListFollowsMembershipChanges", testListMembershipChange},
		{"ListChunkBoundsAndOrder", testListChunkBounds},
		{"ListChunkLargeDocComesAlone", testListChunkLargeDoc},
		{"ListChunkWalkUnderWrites", testListChunkWalkUnderWrites},
		{"WaitForAlreadyThere", testWaitForAlreadyThere},
		{"WaitForWakesOnApply", testWaitForWakes},
		{"WaitForTimesOut", testWaitForTimeout},
		{"ConcurrentApplies", testConcurrentApplies},
		{"Ping", testPing},
		{"RefusedViewIsNamedAndNothingApplied", testRefused},
		{"ClosedReadModelIsUnavailable", testClosed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rm := open(t)
			t.Cleanup(func() { _ = rm.Close() })
			c.fn(t, rm)
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitBudget)
	t.Cleanup(cancel)
	return ctx
}

// icp makes the views of one made-up ICP.
type icp struct {
	id, tenant string
	position   uint64
}

func newICP(tenant string, position uint64) icp {
	return icp{id: uuid.NewString(), tenant: tenant, position: position}
}

func (c icp) view(version uint64, users ...string) projections.View {
	doc := fmt.Sprintf(`{"id":%q,"name":"v%d","userIds":[%s]}`, c.id, version, quoteAll(users))
	return projections.View{
		ID: c.id, Tenant: c.tenant, Version: version, Position: c.position,
		UserIDs: users, Doc: []byte(doc), CreatedBy: "user_creator",
	}
}

func (c icp) tombstone(version uint64) projections.View {
	return projections.View{ID: c.id, Tenant: c.tenant, Version: version, Position: c.position, Deleted: true, CreatedBy: "user_creator"}
}

func quoteAll(s []string) string {
	var b bytes.Buffer
	for i, u := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Quote(u))
	}
	return b.String()
}

func apply(t *testing.T, rm projections.ReadModel, views ...projections.View) []projections.Outcome {
	t.Helper()
	out, err := rm.Apply(ctxT(t), views)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if len(out) != len(views) {
		t.Fatalf("Apply returned %d outcomes for %d views", len(out), len(views))
	}
	return out
}

func applyOne(t *testing.T, rm projections.ReadModel, v projections.View) projections.Outcome {
	t.Helper()
	return apply(t, rm, v)[0]
}

func wantOutcome(t *testing.T, got projections.Outcome, applied bool, stored uint64) {
	t.Helper()
	if got.Applied != applied || got.Stored != stored {
		t.Fatalf("outcome = %+v, want Applied=%v Stored=%d", got, applied, stored)
	}
}

func get(t *testing.T, rm projections.ReadModel, id string) projections.View {
	t.Helper()
	v, err := rm.Get(ctxT(t), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return v
}

func wantVersion(t *testing.T, rm projections.ReadModel, id string, version uint64) projections.View {
	t.Helper()
	v := get(t, rm, id)
	if v.Version != version {
		t.Fatalf("stored version of %s = %d, want %d", id, v.Version, version)
	}
	return v
}

func testCreateOntoNothing(t *testing.T, rm projections.ReadModel) {
	c := newICP("org_a", 10)
	wantOutcome(t, applyOne(t, rm, c.view(1, "user_1")), true, 0)
	v := wantVersion(t, rm, c.id, 1)
	if v.ID != c.id || v.Tenant != c.tenant || v.Position != c.position || v.Deleted || v.CreatedBy != "user_creator" {
		t.Fatalf("stored view = %+v", v)
	}
	if len(v.UserIDs) != 1 || v.UserIDs[0] != "user_1" {
		t.Fatalf("stored members = %q, want [user_1]", v.UserIDs)
	}
	if !bytes.Equal(v.Doc, c.view(1, "user_1").Doc) {
		t.Fatalf("stored doc = %s", v.Doc)
	}
}

func testCreateTwice(t *testing.T, rm projections.ReadModel) {
	c := newICP("org_a", 10)
	applyOne(t, rm, c.view(1, "user_1"))
	other := c.view(1, "user_2")
	other.Doc = []byte(`{"changed":true}`)
	wantOutcome(t, applyOne(t, rm, other), false, 1)
	v := wantVersion(t, rm, c.id, 1)
	if !bytes.Equal(v.Doc, c.view(1, "user_1").Doc) {
		t.Fatalf("a repeated create overwrote the doc: %s", v.Doc)
	}
}

func testNextVersion(t *testing.T, rm projections.ReadModel) {
	c := newICP("org_a", 10)
	applyOne(t, rm, c.view(1, "user_1"))
	wantOutcome(t, applyOne(t, rm, c.view(2, "user_1")), true, 1)
	v := wantVersion(t, rm, c.id, 2)
	if !bytes.Equal(v.Doc, c.view(2, "user_1").Doc) {
		t.Fatalf("doc after update = %s", v.Doc)
	}
}

func testGap(t *testing.T, rm projections.ReadModel) {
	c := newICP("org_a", 10)
	applyOne(t, rm, c.view(1, "user_1"))
	wantOutcome(t, applyOne(t, rm, c.view(3, "user_1")), false, 1)
	wantVersion(t, rm, c.id, 1)

	// An update onto nothing is a gap too.
	d := newICP("org_a", 11)
	wantOutcome(t, applyOne(t, rm, d.view(2, "user_1")), false, 0)
	if _, err := rm.Get(ctxT(t), d.id); !errors.Is(err, projections.ErrNotFound) {
		t.Fatalf("Get after a refused update onto nothing: err = %v, want ErrNotFound", err)
	}
}

func testBatchInOrder(t *testing.T, rm projections.ReadModel) {
	c := newICP("org_a", 10)
	other := newICP("org_a", 11)
	out := apply(t, rm, c.view(1, "user_1"), other.view(1, "user_1"), c.view(2, "user_1"), c.view(3, "user_2"))
	wantOutcome(t, out[0], true, 0)
	wantOutcome(t, out[1], true, 0)
	wantOutcome(t, out[2], true, 1)
	wantOutcome(t, out[3], true, 2)
	v := wantVersion(t, rm, c.id, 3)
	if len(v.UserIDs) != 1 || v.UserIDs[0] != "user_2" {
		t.Fatalf("members after batch = %q", v.UserIDs)
	}
	wantVersion(t, rm, other.id, 1)

	// A batch holding a view that does not fit applies the others and
	// reports that one.
	out = apply(t, rm, c.view(5, "user_1"), c.view(4, "user_1"))
	wantOutcome(t, out[0], false, 3)
	wantOutcome(t, out[1], true, 3)
}

func testStale(t *testing.T, rm projections.ReadModel) {
	c := newICP("org_a", 10)
	apply(t, rm, c.view(1, "user_1"), c.view(2, "user_1"), c.view(3, "user_1"))
	wantOutcome(t, applyOne(t, rm, c.view(2, "user_9")), false, 3)
	wantOutcome(t, applyOne(t, rm, c.view(3, "user_9")), false, 3)
	v := wantVersion(t, rm, c.id, 3)
	if !bytes.Equal(v.Doc, c.view(3, "user_1").Doc) {
		t.Fatalf("a stale view changed the doc: %s", v.Doc)
	}
}

func testTombstone(t *testing.T, rm projections.ReadModel) {
	c := newICP("org_tomb", 10)
	apply(t, rm, c.view(1, "user_1"), c.view(2, "user_1"))
	wantOutcome(t, applyOne(t, rm, c.tombstone(3)), true, 2)

	v := wantVersion(t, rm, c.id, 3)
	if !v.Deleted || v.Tenant != c.tenant || v.Position != c.position {
		t.Fatalf("tombstone = %+v, want Deleted with tenant and position kept", v)
	}
	if len(v.Doc) != 0 {
		t.Fatalf("tombstone still serves a doc: %s", v.Doc)
	}
	// Late redeliveries of older versions cannot bring it back.
	for _, late := range []projections.View{c.view(1, "user_1"), c.view(2, "user_1"), c.view(3, "user_1")} {
		wantOutcome(t, applyOne(t, rm, late), false, 3)
	}
	if v := wantVersion(t, rm, c.id, 3); !v.Deleted {
		t.Fatalf("tombstone resurrected: %+v", v)
	}
	if got := list(t, rm, c.tenant, "user_1", 0, 0); len(got) != 0 {
		t.Fatalf("a deleted ICP is listed: %v", ids(got))
	}
}

func testGetUnknown(t *testing.T, rm projections.ReadModel) {
	_, err := rm.Get(ctxT(t), uuid.NewString())
	if !errors.Is(err, projections.ErrNotFound) {
		t.Fatalf("Get unknown: err = %v, want ErrNotFound", err)
	}
}

func testDocRoundTrip(t *testing.T, rm projections.ReadModel) {
	c := newICP("org_a", 10)
	// Keys with dots and dollars, integers beyond 2^53 and beyond 2^64,
	// a float written in an unusual form, unicode, escapes and odd spacing:
	// the bytes must come back exactly.
	doc := []byte(`{"id":"` + c.id + `","leadProviderCriteria":[{"provider":"baseProvider",` +
		`"filters":{"location.country":["Deutschland","Österreich"],"$where":{"$gt":9007199254740993},` +
		`"company.employee_size.min":1e2,"big":123456789012345678901234567890,"neg":-0.000}}],` +
		`"crmFilters":{"query":{"$and":[{"a.b":{"$in":[1, 2 ,3]}}]},"textSearch":"Marketing* 日本語 \u00e9\n<&>"},` +
		`"emoji":"🚀","userIds":["user_1"]}`)
	v := c.view(1, "user_1")
	v.Doc = append([]byte(nil), doc...)
	applyOne(t, rm, v)
	got := get(t, rm, c.id)
	if !bytes.Equal(got.Doc, doc) {
		t.Fatalf("doc changed on the way through the read model:\n got  %s\n want %s", got.Doc, doc)
	}
	listed := list(t, rm, c.tenant, "user_1", 0, 0)
	if len(listed) != 1 || !bytes.Equal(listed[0].Doc, doc) {
		t.Fatalf("listed doc differs: %v", listed)
	}
}

func list(t *testing.T, rm projections.ReadModel, tenant, user string, after uint64, limit int) []projections.View {
	t.Helper()
	got, err := rm.List(ctxT(t), tenant, user, after, limit)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return got
}

func ids(vs []projections.View) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.ID
	}
	return out
}

func wantIDs(t *testing.T, got []projections.View, want ...string) {
	t.Helper()
	g := ids(got)
	if len(g) != len(want) {
		t.Fatalf("listed %v, want %v", g, want)
	}
	for i := range g {
		if g[i] != want[i] {
			t.Fatalf("listed %v, want %v", g, want)
		}
	}
}

func testList(t *testing.T, rm projections.ReadModel) {
	tenant := "org_" + uuid.NewString()
	// Applied out of position order: the list follows Position, not the
	// order of writes nor the ids.
	a := newICP(tenant, 300)
	b := newICP(tenant, 100)
	c := newICP(tenant, 200)
	notMember := newICP(tenant, 150)
	otherTenant := newICP("org_"+uuid.NewString(), 50)
	deleted := newICP(tenant, 250)
	apply(t, rm,
		a.view(1, "user_1", "user_2"),
		b.view(1, "user_1"),
		c.view(1, "user_2", "user_1"),
		notMember.view(1, "user_2"),
		otherTenant.view(1, "user_1"),
		deleted.view(1, "user_1"),
	)
	applyOne(t, rm, deleted.tombstone(2))
	got := list(t, rm, tenant, "user_1", 0, 0)
	wantIDs(t, got, b.id, c.id, a.id)
	for _, v := range got {
		if v.Tenant != tenant || v.Deleted || len(v.Doc) == 0 {
			t.Fatalf("listed view %+v", v)
		}
	}
	wantIDs(t, list(t, rm, tenant, "user_2", 0, 0), notMember.id, c.id, a.id)
	wantIDs(t, list(t, rm, otherTenant.tenant, "user_1", 0, 0), otherTenant.id)
	wantIDs(t, list(t, rm, tenant, "user_nobody", 0, 0))
}

func testListPaging(t *testing.T, rm projections.ReadModel) {
	tenant := "org_" + uuid.NewString()
	var want []string
	var views []projections.View
	for i := range 7 {
		c := newICP(tenant, uint64(1000+10*i))
		want = append(want, c.id)
		views = append(views, c.view(1, "user_1"))
	}
	apply(t, rm, views...)
	var got []string
	var after uint64
	for page := 0; ; page++ {
		if page > 10 {
			t.Fatal("paging does not end")
		}
		vs := list(t, rm, tenant, "user_1", after, 3)
		if len(vs) > 3 {
			t.Fatalf("page of %d views with limit 3", len(vs))
		}
		if len(vs) == 0 {
			break
		}
		got = append(got, ids(vs)...)
		after = vs[len(vs)-1].Position
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("paged ids %v, want %v", got, want)
	}
	// The cursor is exclusive and works from any position.
	wantIDs(t, list(t, rm, tenant, "user_1", 1015, 2), want[2], want[3])
	wantIDs(t, list(t, rm, tenant, "user_1", 1060, 0))
}

func testListMembershipChange(t *testing.T, rm projections.ReadModel) {
	tenant := "org_" + uuid.NewString()
	c := newICP(tenant, 10)
	applyOne(t, rm, c.view(1, "user_1", "user_2"))
	wantIDs(t, list(t, rm, tenant, "user_2", 0, 0), c.id)
	applyOne(t, rm, c.view(2, "user_1", "user_3"))
	wantIDs(t, list(t, rm, tenant, "user_2", 0, 0))
	wantIDs(t, list(t, rm, tenant, "user_3", 0, 0), c.id)
	got := list(t, rm, tenant, "user_1", 0, 0)
	wantIDs(t, got, c.id)
	if got[0].Version != 2 {
		t.Fatalf("listed version %d, want 2", got[0].Version)
	}
}

func chunk(t *testing.T, rm projections.ReadModel, tenant, user string, after uint64, maxViews, maxBytes int) []projections.View {
	t.Helper()
	got, err := rm.ListChunk(ctxT(t), tenant, user, after, maxViews, maxBytes)
	if err != nil {
		t.Fatalf("ListChunk: %v", err)
	}
	if got == nil {
		t.Fatal("ListChunk returned nil, want an empty chunk")
	}
	return got
}

func docBytes(vs []projections.View) int {
	n := 0
	for _, v := range vs {
		n += len(v.Doc)
	}
	return n
}

// sized is c's view whose doc is padded to exactly n bytes.
func (c icp) sized(n int, users ...string) projections.View {
	v := c.view(1, users...)
	pad := n - len(v.Doc) - len(`,"pad":""`)
	if pad < 0 {
		panic("doc size too small")
	}
	v.Doc = append(v.Doc[:len(v.Doc)-1], []byte(`,"pad":"`+strings.Repeat("x", pad)+`"}`)...)
	return v
}

func testListChunkBounds(t *testing.T, rm projections.ReadModel) {
	tenant := "org_" + uuid.NewString()
	// Docs of 100 to 460 bytes, applied out of position order; a
	// non-member, another tenant's ICP and a deleted ICP in between.
	var views []projections.View
	byID := map[string]projections.View{}
	for i := range 10 {
		c := newICP(tenant, uint64(1000-10*i))
		v := c.sized(100+40*i, "user_1", "user_2")
		views = append(views, v)
		byID[c.id] = v
	}
	deleted := newICP(tenant, 995)
	views = append(views,
		newICP(tenant, 985).view(1, "user_2"),
		newICP("org_"+uuid.NewString(), 975).view(1, "user_1"),
		deleted.view(1, "user_1"))
	apply(t, rm, views...)
	applyOne(t, rm, deleted.tombstone(2))
	want := list(t, rm, tenant, "user_1", 0, 0)
	if len(want) != 10 {
		t.Fatalf("List found %d ICPs, want 10", len(want))
	}

	for _, b := range []chunkBound{{3, 1 << 20}, {100, 700}, {4, 500}, {1, 1}, {0, 0}} {
		got, after := walkChunks(t, rm, tenant, b)
		wantIDs(t, got, ids(want)...)
		for i, v := range got {
			if !bytes.Equal(v.Doc, byID[v.ID].Doc) || v.Position != want[i].Position || v.Tenant != tenant || v.Deleted ||
				v.Version != 1 || len(v.UserIDs) != 2 || v.CreatedBy != "user_creator" {
				t.Fatalf("chunked view %d = %+v, want %+v", i, v, want[i])
			}
		}
		if rest := chunk(t, rm, tenant, "user_1", after, b.views, b.bytes); len(rest) != 0 {
			t.Fatalf("after the last view, ListChunk found %v", ids(rest))
		}
	}
	if got := chunk(t, rm, tenant, "user_nobody", 0, 10, 1<<20); len(got) != 0 {
		t.Fatalf("a non-member's chunk holds %v", ids(got))
	}
	if got := chunk(t, rm, tenant, "user_1", math.MaxUint64, 10, 1<<20); len(got) != 0 {
		t.Fatalf("a chunk after the largest position holds %v", ids(got))
	}
}

// chunkBound is the maxViews and maxBytes of a ListChunk.
type chunkBound struct{ views, bytes int }

// walkChunks reads user_1's views of tenant chunk by chunk under b, at most
// 20 chunks, checking that each chunk keeps to b and stops only at it. It
// returns the views read and the position after which the walk stopped.
func walkChunks(t *testing.T, rm projections.ReadModel, tenant string, b chunkBound) ([]projections.View, uint64) {
	t.Helper()
	var got []projections.View
	var after uint64
	for range 20 {
		c := chunk(t, rm, tenant, "user_1", after, b.views, b.bytes)
		if len(c) == 0 {
			break
		}
		if len(c) > max(1, b.views) {
			t.Fatalf("maxViews %d: a chunk of %d views", b.views, len(c))
		}
		if len(c) > 1 && docBytes(c) > b.bytes {
			t.Fatalf("maxBytes %d: a chunk of %d views holds %d bytes", b.bytes, len(c), docBytes(c))
		}
		// A chunk stops only at a bound: it is full, or the next
		// view would not have fit.
		if rest := chunk(t, rm, tenant, "user_1", c[len(c)-1].Position, 1, 1); len(rest) > 0 &&
			len(c) < max(1, b.views) && docBytes(c)+len(rest[0].Doc) <= b.bytes {
			t.Fatalf("maxViews %d maxBytes %d: a chunk of %d views (%d bytes) stopped before a view of %d bytes",
				b.views, b.bytes, len(c), docBytes(c), len(rest[0].Doc))
		}
		got = append(got, c...)
		after = c[len(c)-1].Position
	}
	return got, after
}

func testListChunkLargeDoc(t *testing.T, rm projections.ReadModel) {
	tenant := "org_" + uuid.NewString()
	small1, large, small2 := newICP(tenant, 10), newICP(tenant, 20), newICP(tenant, 30)
	apply(t, rm, small1.sized(200, "user_1"), large.sized(64<<10, "user_1"), small2.sized(200, "user_1"))
	// The large doc does not fit beside the first, and comes alone.
	wantIDs(t, chunk(t, rm, tenant, "user_1", 0, 10, 1024), small1.id)
	got := chunk(t, rm, tenant, "user_1", 10, 10, 1024)
	wantIDs(t, got, large.id)
	if len(got[0].Doc) != 64<<10 {
		t.Fatalf("the large doc came back with %d bytes", len(got[0].Doc))
	}
	wantIDs(t, chunk(t, rm, tenant, "user_1", 20, 10, 1024), small2.id)
}

// testListChunkWalkUnderWrites pins what EachChunk promises when the read
// model changes between two chunks of a walk.
func testListChunkWalkUnderWrites(t *testing.T, rm projections.ReadModel) {
	tenant := "org_" + uuid.NewString()
	var cs []icp
	for i := range 8 {
		c := newICP(tenant, uint64(100+10*i)) // positions 100..170
		cs = append(cs, c)
		applyOne(t, rm, c.view(1, "user_1"))
	}
	early := newICP(tenant, 50) // applied late, behind the cursor
	late := newICP(tenant, 500) // created during the walk, ahead of it
	var got []projections.View
	chunks := 0
	err := projections.EachChunk(ctxT(t), rm, tenant, "user_1", 0, 2, 1<<20, func(c []projections.View) error {
		chunks++
		got = append(got, c...)
		if chunks == 1 { // read: positions 100 and 110
			apply(t, rm,
				cs[0].tombstone(2),               // passed: already listed
				cs[3].view(2, "user_1"),          // ahead: listed at version 2
				cs[4].tombstone(2),               // ahead: left out
				cs[5].view(2, "user_2"),          // ahead, loses the member: left out
				early.view(1, "user_1"),          // behind the cursor: left out
				late.view(1, "user_1", "user_2"), // ahead: listed
			)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("EachChunk: %v", err)
	}
	wantIDs(t, got, cs[0].id, cs[1].id, cs[2].id, cs[3].id, cs[6].id, cs[7].id, late.id)
	if got[3].Version != 2 || !bytes.Equal(got[3].Doc, cs[3].view(2, "user_1").Doc) {
		t.Fatalf("an ICP updated ahead of the walk was listed at version %d: %s", got[3].Version, got[3].Doc)
	}
	if chunks != 4 {
		t.Fatalf("the walk took %d chunks of at most 2 views for 7 views, want 4", chunks)
	}

	// fn's error ends the walk and is returned as it is.
	stop := errors.New("stop")
	calls := 0
	err = projections.EachChunk(ctxT(t), rm, tenant, "user_1", 0, 2, 1<<20, func([]projections.View) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("EachChunk after fn failed: err = %v after %d calls, want stop after 1", err, calls)
	}
	// An empty list calls fn never.
	err = projections.EachChunk(ctxT(t), rm, tenant, "user_nobody", 0, 2, 1<<20, func([]projections.View) error {
		t.Fatal("fn called for an empty list")
		return nil
	})
	if err != nil {
		t.Fatalf("EachChunk on an empty list: %v", err)
	}
}

func testWaitForAlreadyThere(t *testing.T, rm projections.ReadModel) {
	c := newICP("org_a", 10)
	apply(t, rm, c.view(1, "user_1"), c.view(2, "user_1"))
	for _, v := range []uint64{1, 2} {
		if err := rm.WaitFor(ctxT(t), c.id, v); err != nil {
			t.Fatalf("WaitFor(%d) with version 2 stored: %v", v, err)
		}
	}
	// Tombstones count.
	applyOne(t, rm, c.tombstone(3))
	if err := rm.WaitFor(ctxT(t), c.id, 3); err != nil {
		t.Fatalf("WaitFor a tombstone: %v", err)
	}
}

func testWaitForWakes(t *testing.T, rm projections.ReadModel) {
	c := newICP("org_a", 10)
	applyOne(t, rm, c.view(1, "user_1"))
	done := make(chan error, 1)
	go func() { done <- rm.WaitFor(ctxT(t), c.id, 2) }()
	select {
	case err := <-done:
		t.Fatalf("WaitFor(2) returned %v while version 1 is stored", err)
	default:
	}
	applyOne(t, rm, c.view(2, "user_1"))
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("WaitFor after the version landed: %v", err)
		}
	case <-time.After(waitBudget):
		t.Fatal("WaitFor did not return after the version landed")
	}

	// A waiter for an id never seen before wakes on its create.
	d := newICP("org_a", 11)
	go func() { done <- rm.WaitFor(ctxT(t), d.id, 1) }()
	applyOne(t, rm, d.view(1, "user_1"))
	if err := <-done; err != nil {
		t.Fatalf("WaitFor a new id: %v", err)
	}
}

func testWaitForTimeout(t *testing.T, rm projections.ReadModel) {
	c := newICP("org_a", 10)
	applyOne(t, rm, c.view(1, "user_1"))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := rm.WaitFor(ctx, c.id, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor a version that never comes: err = %v, want context.DeadlineExceeded", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if err := rm.WaitFor(ctx, uuid.NewString(), 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitFor with a cancelled context: err = %v, want context.Canceled", err)
	}
}

func testConcurrentApplies(t *testing.T, rm projections.ReadModel) {
	const writers, perWriter = 32, 8
	tenant := "org_" + uuid.NewString()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	created := make([][]icp, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				c := newICP(tenant, uint64(1+w*perWriter+i))
				created[w] = append(created[w], c)
				// Create and update in separate calls, so that many
				// goroutines' calls are in flight at once.
				for _, v := range []projections.View{c.view(1, "user_1"), c.view(2, "user_1")} {
					out, err := rm.Apply(ctxT(t), []projections.View{v})
					if err != nil {
						errs <- err
						return
					}
					if !out[0].Applied {
						errs <- fmt.Errorf("view %s v%d not applied: %+v", v.ID, v.Version, out[0])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, cs := range created {
		for _, c := range cs {
			wantVersion(t, rm, c.id, 2)
		}
	}
	if got := list(t, rm, tenant, "user_1", 0, 0); len(got) != writers*perWriter {
		t.Fatalf("listed %d ICPs, want %d", len(got), writers*perWriter)
	}
}

func testPing(t *testing.T, rm projections.ReadModel) {
	if err := rm.Ping(ctxT(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// Every call after Close fails with projections.ErrClosed, wrapped in
// projections.ErrUnavailable, and applies nothing.
func testClosed(t *testing.T, rm projections.ReadModel) {
	c := newICP("org_closed", 1)
	if err := rm.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	closed := func(err error) bool {
		return errors.Is(err, projections.ErrClosed) && errors.Is(err, projections.ErrUnavailable)
	}
	if _, err := rm.Apply(ctxT(t), []projections.View{c.view(1, "user_1")}); !closed(err) {
		t.Fatalf("Apply after Close: %v, want ErrClosed wrapped in ErrUnavailable", err)
	}
	if _, err := rm.Get(ctxT(t), c.id); !closed(err) {
		t.Fatalf("Get after Close: %v, want ErrClosed wrapped in ErrUnavailable", err)
	}
	if err := rm.Ping(ctxT(t)); !closed(err) {
		t.Fatalf("Ping after Close: %v, want ErrClosed wrapped in ErrUnavailable", err)
	}
}

// A view no engine can hold (here a live view whose doc is not JSON) is
// refused with a *projections.RefusedError naming it, not an unavailability:
// retrying can never help. Nothing of the call is applied.
func testRefused(t *testing.T, rm projections.ReadModel) {
	good, bad := newICP("org_refused", 1), newICP("org_refused", 2)
	v := bad.view(1, "user_1")
	v.Doc = []byte(`{"id":`)
	_, err := rm.Apply(ctxT(t), []projections.View{good.view(1, "user_1"), v})
	if !errors.Is(err, projections.ErrRefused) || errors.Is(err, projections.ErrUnavailable) {
		t.Fatalf("Apply of an invalid doc: err = %v, want ErrRefused and not ErrUnavailable", err)
	}
	if !projections.RefusedView(err, bad.id) || projections.RefusedView(err, good.id) {
		t.Fatalf("refusal %v does not name the refused view %s (and only it)", err, bad.id)
	}
	if _, err := rm.Get(ctxT(t), good.id); !errors.Is(err, projections.ErrNotFound) {
		t.Fatalf("the other view of the refused call: Get = %v, want not found", err)
	}
	wantOutcome(t, applyOne(t, rm, good.view(1, "user_1")), true, 0)
}
