package mongomodel

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/icpservice/icp/projections"
	"github.com/icpservice/icp/projections/mongomodel/mongotest"
)

// These tests put another writer between a batch's read of the stored
// versions and its bulk write, through the beforeWrite seam, to pin what
// Apply reports when a concurrent writer (another projector replica) races
// it: never an error, never a gap or a stale view written, nothing claimed
// as applied by both writers.
//
// FerretDB (v1.24, SQLite backend) differs from MongoDB here: it runs an
// update as a query followed by a separate write, so two clients updating
// one document at the same instant can both match {_id, version: v-1}.
// MongoDB matches and writes a document atomically. The tests that need two
// writers truly at once therefore run only against a real MongoDB; the
// interleavings through beforeWrite are sequential and run on both.

// racePair opens two Models on one new database at uri.
func racePair(t *testing.T, uri string) (a, b *Model) {
	t.Helper()
	opts := Options{Database: "race_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12], OpTimeout: 20 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var err error
	if a, err = Open(ctx, uri, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = a.client.Database(opts.Database).Drop(context.Background())
		_ = a.Close()
	})
	if b, err = Open(ctx, uri, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return a, b
}

// onBoth runs f against FerretDB and, when ICP_TEST_MONGO_URI is set, a
// real MongoDB.
func onBoth(t *testing.T, f func(t *testing.T, uri string)) {
	t.Run("OnFerretDB", func(t *testing.T) { f(t, mongotest.Start(t)) })
	t.Run("OnRealMongoDB", func(t *testing.T) { f(t, mongotest.RealURI(t)) })
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func v(id string, version uint64, doc string) projections.View {
	return projections.View{ID: id, Tenant: "org_a", Version: version, Position: 1, UserIDs: []string{"user_1"}, Doc: []byte(doc)}
}

// once runs f the first time the returned func is called.
func once(f func()) func() {
	done := false
	return func() {
		if !done {
			done = true
			f()
		}
	}
}

func applyOK(t *testing.T, m *Model, views ...projections.View) []projections.Outcome {
	t.Helper()
	out, err := m.Apply(ctxFor(t), views)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return out
}

// A replace whose expected version another writer moved on matches nothing,
// while the next one of the batch matches: the counts cannot say which, so
// both are settled by reading again, and both report "already applied".
func TestRaceOnUpdates(t *testing.T) { onBoth(t, testRaceOnUpdates) }

func testRaceOnUpdates(t *testing.T, uri string) {
	a, b := racePair(t, uri)
	id := uuid.NewString()
	applyOK(t, a, v(id, 1, `{"v":1}`))
	a.beforeWrite = once(func() { applyOK(t, b, v(id, 2, `{"v":"2 by b"}`)) })

	out := applyOK(t, a, v(id, 2, `{"v":"2 by a"}`), v(id, 3, `{"v":"3 by a"}`))
	for i, o := range out {
		if o.Applied || o.Stored < uint64(i+2) {
			t.Fatalf("outcome %d = %+v, want not applied with Stored >= %d (already applied)", i, o, i+2)
		}
	}
	got, err := a.Get(ctxFor(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 3 || !bytes.Equal(got.Doc, []byte(`{"v":"3 by a"}`)) {
		t.Fatalf("stored %d %s, want version 3 by a on top of b's version 2", got.Version, got.Doc)
	}
}

// A create the batch assumed new is a duplicate: the bulk write stops before
// any replace ran, and the next round settles every view exactly.
func TestRaceOnCreate(t *testing.T) { onBoth(t, testRaceOnCreate) }

func testRaceOnCreate(t *testing.T, uri string) {
	a, b := racePair(t, uri)
	created, updated := uuid.NewString(), uuid.NewString()
	applyOK(t, a, v(updated, 1, `{"v":1}`))
	a.beforeWrite = once(func() { applyOK(t, b, v(created, 1, `{"by":"b"}`)) })

	out := applyOK(t, a, v(created, 1, `{"by":"a"}`), v(updated, 2, `{"v":2}`), v(created, 2, `{"by":"a2"}`))
	want := []projections.Outcome{{Applied: false, Stored: 1}, {Applied: true, Stored: 1}, {Applied: true, Stored: 1}}
	for i := range want {
		if out[i] != want[i] {
			t.Fatalf("outcomes %+v, want %+v", out, want)
		}
	}
	got, err := a.Get(ctxFor(t), created)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 2 || !bytes.Equal(got.Doc, []byte(`{"by":"a2"}`)) {
		t.Fatalf("stored %d %s", got.Version, got.Doc)
	}
}

// Two Models applying the same versions of one ICP at once: every version
// ends up stored, no view is reported applied by both, none as a gap. Not
// run on FerretDB, whose updates are not atomic (see above).
func TestTwoWritersSameICPOnRealMongoDB(t *testing.T) {
	a, b := racePair(t, mongotest.RealURI(t))
	id := uuid.NewString()
	const versions = 12
	type result struct {
		outs []projections.Outcome
		err  error
	}
	run := func(m *Model, ch chan<- result) {
		var outs []projections.Outcome
		for ver := uint64(1); ver <= versions; ver++ {
			out, err := m.Apply(ctxFor(t), []projections.View{v(id, ver, `{}`)})
			if err != nil {
				ch <- result{err: err}
				return
			}
			outs = append(outs, out[0])
		}
		ch <- result{outs: outs}
	}
	ra, rb := make(chan result, 1), make(chan result, 1)
	go run(a, ra)
	go run(b, rb)
	resA, resB := <-ra, <-rb
	if resA.err != nil || resB.err != nil {
		t.Fatalf("Apply errors: %v, %v", resA.err, resB.err)
	}
	for i := range versions {
		ver := uint64(i + 1)
		oa, ob := resA.outs[i], resB.outs[i]
		if oa.Applied && ob.Applied {
			t.Fatalf("version %d reported applied by both writers", ver)
		}
		for _, o := range []projections.Outcome{oa, ob} {
			if (o.Applied && o.Stored != ver-1) || (!o.Applied && o.Stored < ver) {
				t.Fatalf("version %d: outcome %+v is neither applied onto %d nor already applied", ver, o, ver-1)
			}
		}
	}
	got, err := a.Get(ctxFor(t), id)
	if err != nil || got.Version != versions {
		t.Fatalf("stored = %+v, %v; want version %d", got, err, versions)
	}
}
