package commands_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/icpservice/icp/commands"
	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/esdbstore"
	"github.com/icpservice/icp/events/esdbstore/esdbtest"
)

// Writes on EventStoreDB read from the server a number of events that does
// not grow with the ICP's history: the adapter keeps snapshots in side
// streams, and the server counts what it sends (esdbtest.EventsServed).

// appendHistory appends n updates of ICP id straight to the store, without
// snapshots, as another writer (or an older release) would.
func appendHistory(t *testing.T, st events.Store, id string, from uint64, n int) {
	t.Helper()
	md := events.Metadata{Tenant: alice.Tenant, UserID: alice.UserID}
	for v := from; v < from+uint64(n); {
		batch := make([]events.Proposed, 0, 200)
		for len(batch) < cap(batch) && v+uint64(len(batch)) < from+uint64(n) {
			ev, err := events.Encode(uuid.NewString(), domain.ICPUpdatedV1{ID: id, UpdatedAt: domain.NewTime(time.Now()), UpdatedBy: alice.UserID,
				Changes: domain.ICPChanges{LeadsPerList: domain.Some(int(v)%50 + 1 + len(batch)%2)}}, md)
			if err != nil {
				t.Fatal(err)
			}
			batch = append(batch, ev)
		}
		if _, err := st.Append(context.Background(), events.StreamID(id), v, batch); err != nil {
			t.Fatal(err)
		}
		v += uint64(len(batch))
	}
}

// served returns how many events the server sent while f ran.
func served(srv *esdbtest.Server, f func()) uint64 {
	before := srv.EventsServedTotal()
	f()
	return srv.EventsServedTotal() - before
}

// A PATCH, the same PATCH again (a client's retry, which records nothing), an
// Idempotency-Key retry of the create and a DELETE each read as many events
// from the server on an ICP of 2,000 versions as on one of 2. Only the first
// write after a history left without snapshots folds it, once.
func TestWritesOnEventStoreDBReadBoundedEventsWhateverTheHistory(t *testing.T) {
	ctx := context.Background()
	srv, st := openESDBServer(t)
	h := commands.NewHandler(st)
	create := func(key string) string {
		t.Helper()
		res, err := h.Create(ctx, alice, parse(t, body1, alice), key, commands.RequestMeta{})
		if err != nil {
			t.Fatal(err)
		}
		return res.State.ICP.ID
	}
	update := func(id, body string) commands.Result {
		t.Helper()
		res, err := h.Update(ctx, alice, id, parseUpdate(t, body), nil, commands.RequestMeta{})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	const history = 2000
	small, big := create("key-small"), create("key-big")
	appendHistory(t, st, big, 1, history-2)
	update(small, `{"leadsPerList":77}`)
	var first commands.Result
	if n := served(srv, func() { first = update(big, `{"leadsPerList":77}`) }); n < history-1 {
		t.Fatalf("the first write after %d versions without a snapshot read %d events, want the whole stream (is the count working?)", history-1, n)
	}
	if first.State.Version != history {
		t.Fatalf("the large ICP is at version %d, want %d", first.State.Version, history)
	}

	for _, op := range []struct {
		name string
		run  func(id, key string)
	}{
		{"PATCH", func(id, _ string) { update(id, `{"name":"Renamed"}`) }},
		{"the same PATCH again", func(id, _ string) {
			if res := update(id, `{"name":"Renamed"}`); res.State.ICP.Name != "Renamed" {
				t.Fatalf("repeated PATCH answered %+v", res.State.ICP)
			}
		}},
		{"Idempotency-Key retry of the create", func(id, key string) {
			if res, err := h.Create(ctx, alice, parse(t, body1, alice), key, commands.RequestMeta{}); err != nil || !res.Replayed || res.State.ICP.ID != id {
				t.Fatalf("replay: %+v %v", res, err)
			}
		}},
		{"DELETE", func(id, _ string) {
			if _, err := h.Delete(ctx, alice, id, nil, commands.RequestMeta{}); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		onSmall := served(srv, func() { op.run(small, "key-small") })
		onBig := served(srv, func() { op.run(big, "key-big") })
		t.Logf("%s read %d events at 2 versions, %d at %d", op.name, onSmall, onBig, history)
		if onBig > onSmall {
			t.Errorf("%s read %d events from the server on an ICP of %d versions, %d on one of 2", op.name, onBig, history, onSmall)
		}
	}
	// The answers were the fold: the stream, read whole, agrees.
	folded, err := events.Fold(readStream(t, st, big))
	if err != nil || !folded.Deleted || folded.ICP.Name != "Renamed" || folded.Version != history+2 {
		t.Fatalf("the large ICP folds to version %d deleted %v name %q (%v)", folded.Version, folded.Deleted, folded.ICP.Name, err)
	}
}

// A snapshot event the adapter did not write, or that does not match the
// stream, is never trusted: the write folds the events, and its answer is
// the fold. Each case leaves its event last in the snapshot stream, where
// the next write reads it, with a forged state the answer would show.
func TestHostileSnapshotsOnEventStoreDBAreIgnored(t *testing.T) {
	ctx := context.Background()
	srv, st := openESDBServer(t)
	h := commands.NewHandler(st)
	created, err := h.Create(ctx, alice, parse(t, body1, alice), "", commands.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	id := created.State.ICP.ID
	stream := events.StreamID(id)
	const renamed = `{"name":"Renamed"}`
	if _, err := h.Update(ctx, alice, id, parseUpdate(t, renamed), nil, commands.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	evs := readStream(t, st, id)
	truth, err := events.Fold(evs)
	if err != nil {
		t.Fatal(err)
	}
	forged := *truth
	forged.ICP.Name = "Forged"
	forgedState, err := events.EncodeState(&forged)
	if err != nil {
		t.Fatal(err)
	}
	meta := func(stream string, version uint64, eventID string, fold int) []byte {
		return fmt.Appendf(nil, `{"stream":%q,"version":%d,"eventId":%q,"fold":%d}`, stream, version, eventID, fold)
	}
	last := evs[len(evs)-1]
	for _, c := range []struct {
		name, typ  string
		data, meta []byte
	}{
		{"another writer's event", "Other", []byte(`{"name":"Forged"}`), []byte(`{"by":"someone else"}`)},
		{"a state that does not decode", "Snapshot", []byte(`{"not":"a state"}`), meta(stream, last.Version, last.ID, domain.FoldVersion)},
		{"a state of another fold", "Snapshot", forgedState, meta(stream, last.Version, last.ID, domain.FoldVersion+1)},
		{"an event the stream does not hold", "Snapshot", forgedState, meta(stream, last.Version, uuid.NewString(), domain.FoldVersion)},
		{"another stream's snapshot", "Snapshot", forgedState, meta(events.StreamID(uuid.NewString()), last.Version, last.ID, domain.FoldVersion)},
		{"metadata with unknown members", "Snapshot", forgedState, []byte(`{"stream":"` + stream + `","version":2,"eventId":"` + last.ID + `","fold":1,"trust":"me"}`)},
		{"metadata that is not JSON", "Snapshot", forgedState, []byte(`{"stream":`)},
	} {
		srv.WriteEventWithMetadata(esdbstore.SnapshotStream(stream), c.typ, c.data, c.meta)
		folds := srv.EventsServed(stream)
		// A PATCH that changes nothing answers the ICP as loaded.
		res, err := h.Update(ctx, alice, id, parseUpdate(t, renamed), nil, commands.RequestMeta{})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if doc(t, res.State) != doc(t, truth) || res.State.Version != truth.Version {
			t.Fatalf("%s: the write decided on %s (version %d), want the fold %s (version %d)",
				c.name, doc(t, res.State), res.State.Version, doc(t, truth), truth.Version)
		}
		if n := srv.EventsServed(stream) - folds; n < uint64(len(evs)) {
			t.Fatalf("%s: the write read %d events of the stream, want all %d (a fold)", c.name, n, len(evs))
		}
	}
}
