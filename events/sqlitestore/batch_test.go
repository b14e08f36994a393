package sqlitestore

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/platform/groupcommit"
)

// These tests hand one batch to the writer directly, so that what the
// conformance suite can only provoke by timing (several appends to one stream
// inside a single transaction) is certain here.

func ev(schemaVersion int) events.Proposed {
	return events.Proposed{ID: uuid.NewString(), Type: "T", SchemaVersion: schemaVersion, Data: []byte(`{}`)}
}

// commitBatch hands reqs to a writer as one batch, on a queue of its own,
// and returns each append's answer as Append would. The caller of gone
// (nil: none) gives up once the batch is queued, before it is taken.
func commitBatch(t *testing.T, s *Store, gone *appendReq, reqs ...*appendReq) []appendAns {
	t.Helper()
	w, err := newWriter(s)
	if err != nil {
		t.Fatal(err)
	}
	defer w.closeStmts()
	closed, exited := make(chan struct{}), make(chan struct{})
	q := groupcommit.Queue[*appendReq, appendAns]{Requests: make(chan *groupcommit.Request[*appendReq, appendAns], len(reqs)), Closed: closed, Exited: exited}
	goneCtx, giveUp := context.WithCancel(context.Background())
	defer giveUp()
	answers := make([]chan appendAns, len(reqs))
	for i, r := range reqs {
		ctx := context.Background()
		if r == gone {
			ctx = goneCtx
		}
		r.ctx = ctx
		answers[i] = make(chan appendAns, 1)
		go func() {
			out, err := q.Call(ctx, []*appendReq{r})
			res, err := answer(ctx, r.stream, out, err)
			answers[i] <- appendAns{res, err}
		}()
		// One at a time, so that the batch holds them in this order.
		for deadline := time.Now().Add(10 * time.Second); len(q.Requests) < i+1; runtime.Gosched() {
			if time.Now().After(deadline) {
				t.Fatalf("append %d was not queued", i)
			}
		}
	}
	giveUp()
	go func() {
		defer close(exited)
		q.Serve(groupcommit.Writer[*appendReq, appendAns]{MaxBatch: len(reqs), Write: w.write, Committed: w.committed})
	}()
	close(closed)
	<-exited
	ans := make([]appendAns, len(reqs))
	for i, ch := range answers {
		ans[i] = <-ch
	}
	return ans
}

func openTestStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "events.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestBatchDecidesEachAppendAgainstEarlierOnesInTheSameBatch(t *testing.T) {
	s := openTestStore(t)
	a, b, c, d, e := ev(1), ev(1), ev(1), ev(1), ev(1)
	gone := &appendReq{stream: "s3", expected: events.NoStream, evs: []events.Proposed{ev(1)}}
	ans := commitBatch(t, s, gone,
		&appendReq{stream: "s1", expected: events.NoStream, evs: []events.Proposed{a}},    // 0: creates s1
		&appendReq{stream: "s1", expected: events.NoStream, evs: []events.Proposed{b}},    // 1: second create: conflict
		&appendReq{stream: "s1", expected: events.NoStream, evs: []events.Proposed{a}},    // 2: retry of 0
		&appendReq{stream: "s1", expected: 1, evs: []events.Proposed{c}},                  // 3: onto 0
		&appendReq{stream: "s2", expected: events.NoStream, evs: []events.Proposed{d, e}}, // 4: creates s2
		&appendReq{stream: "s2", expected: 1, evs: []events.Proposed{ev(1)}},              // 5: stale: conflict
		gone, // 6: caller gone
	)
	if ans[0].err != nil || ans[0].res.Version != 1 {
		t.Fatalf("first create: %+v", ans[0])
	}
	var ce *events.ConflictError
	if !errors.As(ans[1].err, &ce) || ce.Actual != 1 || ce.Expected != events.NoStream {
		t.Fatalf("second create of s1 in the same batch: %v, want a conflict at version 1", ans[1].err)
	}
	if ans[2].err != nil || ans[2].res.Version != 1 || ans[2].res.Positions[0] != ans[0].res.Positions[0] {
		t.Fatalf("retry inside the batch: %+v, want the first create's result %+v", ans[2], ans[0].res)
	}
	if ans[3].err != nil || ans[3].res.Version != 2 || ans[3].res.Positions[0] != ans[0].res.Positions[0]+1 {
		t.Fatalf("append onto the batch's own create: %+v", ans[3])
	}
	if ans[4].err != nil || ans[4].res.Version != 2 {
		t.Fatalf("create of s2: %+v", ans[4])
	}
	if !errors.As(ans[5].err, &ce) || ce.Actual != 2 || ce.Expected != 1 {
		t.Fatalf("stale append to s2: %v, want a conflict at version 2", ans[5].err)
	}
	if !errors.Is(ans[6].err, context.Canceled) {
		t.Fatalf("append of a caller that gave up: %v", ans[6].err)
	}

	ctx := context.Background()
	all, err := s.ReadAll(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i, r := range all {
		if r.Position != uint64(i+1) {
			t.Fatalf("positions %v are not 1..%d", positionsOf(all), len(all))
		}
		ids = append(ids, r.ID)
	}
	if want := []string{a.ID, c.ID, d.ID, e.ID}; !equalStrings(ids, want) {
		t.Fatalf("stored %v, want %v", ids, want)
	}
	if _, err := s.ReadStream(ctx, "s3", 0); !errors.Is(err, events.ErrStreamNotFound) {
		t.Fatalf("append of a caller that gave up was written: %v", err)
	}
}

// A statement that fails for one append (here a CHECK constraint that
// validation would normally keep from being reached) undoes that append only,
// including the events of it that were already inserted.
func TestBatchFailureOfOneAppendKeepsTheOthers(t *testing.T) {
	s := openTestStore(t)
	good1, good2 := ev(1), ev(1)
	ans := commitBatch(t, s, nil,
		&appendReq{stream: "ok1", expected: events.NoStream, evs: []events.Proposed{good1}},
		&appendReq{stream: "bad", expected: events.NoStream, evs: []events.Proposed{ev(1), ev(0)}},
		&appendReq{stream: "ok2", expected: events.NoStream, evs: []events.Proposed{good2}},
	)
	if ans[0].err != nil || ans[2].err != nil {
		t.Fatalf("good appends beside a failing one: %v, %v", ans[0].err, ans[2].err)
	}
	if ans[1].err == nil || !errors.Is(ans[1].err, events.ErrUnavailable) {
		t.Fatalf("failing append answered %v, want an error", ans[1].err)
	}
	ctx := context.Background()
	if _, err := s.ReadStream(ctx, "bad", 0); !errors.Is(err, events.ErrStreamNotFound) {
		t.Fatalf("part of the failed append was kept: %v", err)
	}
	all, err := s.ReadAll(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].ID != good1.ID || all[1].ID != good2.ID || all[1].Position != all[0].Position+1 {
		t.Fatalf("stored %v at %v, want the two good events at consecutive positions", all, positionsOf(all))
	}
}

func positionsOf(recs []events.Recorded) []uint64 {
	ps := make([]uint64, len(recs))
	for i, r := range recs {
		ps[i] = r.Position
	}
	return ps
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A lone caller is never held back by the linger: each of its appends is
// the only one of its batch.
func TestLingerDoesNotDelayALoneCaller(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "events.db"), Options{Linger: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	start := time.Now()
	for i := range 10 {
		if _, err := s.Append(context.Background(), "lone-"+uuid.NewString(), events.NoStream, []events.Proposed{ev(1)}); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	// Lingering would cost a second per append after the first.
	if took := time.Since(start); took >= 5*time.Second {
		t.Fatalf("10 appends one after the other took %s with a 1s linger", took)
	}
}
