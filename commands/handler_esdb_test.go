package commands_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"

	"github.com/icpservice/icp/commands"
	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/esdbstore"
	"github.com/icpservice/icp/events/esdbstore/esdbtest"
)

// The core update and delete rules again, on the EventStoreDB adapter driven
// over real gRPC against the in-process server: there a conflict is the
// server's wrong-expected-version answer, not SQLite's, and the handler must
// read it the same way.

// openESDB returns the EventStoreDB adapter on a fresh in-process server;
// both stop when the test ends (the store first).
func openESDB(t *testing.T) events.Store {
	t.Helper()
	_, st := openESDBServer(t)
	return st
}

// openESDBServer is openESDB that also returns the server.
func openESDBServer(t *testing.T) (*esdbtest.Server, *esdbstore.Store) {
	t.Helper()
	srv := esdbtest.Start(t)
	st, err := esdbstore.Open(context.Background(), srv.ConnString(), esdbstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return srv, st
}

func TestUpdateOnEventStoreDBRetriesOnAMovedStreamThenGivesUp(t *testing.T) {
	ctx := context.Background()
	st := openESDB(t)
	for _, tc := range []struct {
		name      string
		races     int
		ifMatch   []uint64
		want      error
		wantLoads int
	}{
		{"one race: decided again on the new version", 1, nil, nil, 2},
		{"races past the attempts: conflict", 3, nil, domain.ErrConflict, 3},
		{"a race under If-Match: precondition failed without a retry", 1, []uint64{1}, domain.ErrPreconditionFailed, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
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
			if res.State.Version != 3 || res.State.ICP.Name != "Mine" || res.State.ICP.LeadsPerList != 2 {
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

func TestConcurrentUpdatesOnEventStoreDB(t *testing.T) {
	ctx := context.Background()
	st := openESDB(t)
	const n = 8
	// run sends n updates of one ICP at once and returns their results.
	run := func(t *testing.T, h *commands.Handler, ifMatch []uint64) (id string, versions [n]uint64, errs [n]error) {
		t.Helper()
		created, err := h.Create(ctx, alice, parse(t, body1, alice), "", commands.RequestMeta{})
		if err != nil {
			t.Fatal(err)
		}
		id = created.State.ICP.ID
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			cmd := parseUpdate(t, `{"leadsPerList":`+strconv.Itoa(i+1)+`}`)
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				res, err := h.Update(ctx, alice, id, cmd, ifMatch, commands.RequestMeta{})
				errs[i] = err
				if err == nil {
					versions[i] = res.State.Version
				}
			}()
		}
		close(start)
		wg.Wait()
		return id, versions, errs
	}

	t.Run("without If-Match each is applied once, on its own version", func(t *testing.T) {
		// n attempts let every update through even if it loses every race.
		id, versions, errs := run(t, commands.NewHandler(st, commands.WithMaxAttempts(n)), nil)
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
	})

	t.Run("with one If-Match one wins and the others fail the precondition", func(t *testing.T) {
		id, _, errs := run(t, commands.NewHandler(st), []uint64{1})
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
		if got := len(readStream(t, st, id)); got != 2 {
			t.Fatalf("stream has %d events, want 2", got)
		}
	})
}

func TestDeleteOnEventStoreDBIsFinalAndKeepsTheHistory(t *testing.T) {
	ctx := context.Background()
	st := openESDB(t)
	h := commands.NewHandler(st)
	created, err := h.Create(ctx, alice, parse(t, body1, alice), "", commands.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	id := created.State.ICP.ID
	if _, err := h.Update(ctx, alice, id, parseUpdate(t, `{"name":"Renamed"}`), nil, commands.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Delete(ctx, alice, id, []uint64{1}, commands.RequestMeta{}); !errors.Is(err, domain.ErrPreconditionFailed) {
		t.Fatalf("stale If-Match: %v", err)
	}
	res, err := h.Delete(ctx, alice, id, []uint64{2}, commands.RequestMeta{})
	if err != nil || !res.State.Deleted || res.State.Version != 3 {
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
	// The history stays for audit: create, update, delete, nothing after.
	evs := readStream(t, st, id)
	if len(evs) != 3 || evs[0].Type != events.TypeICPCreated || evs[1].Type != events.TypeICPUpdated || evs[2].Type != events.TypeICPDeleted {
		t.Fatalf("stream %+v", evs)
	}
	folded, err := events.Fold(evs)
	if err != nil || !folded.Deleted || folded.ICP.Name != "Renamed" {
		t.Fatalf("the stream folds to %+v %v", folded, err)
	}
}
