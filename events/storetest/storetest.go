// Package storetest is the conformance suite of the events.Store port. Every
// adapter runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) events.Store { ... })
//	}
//
// The suite pins EventStoreDB's semantics, because that is the production
// engine and the embedded store must behave the same way: exact expected
// versions, idempotent retries by event id at the same expected position only
// (event ids are not unique across the store), a global order that never shows
// a later position before an earlier one.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/icpservice/icp/events"
)

// Run runs every conformance test against the adapter that open returns;
// the Snapshots tests run when it implements events.Snapshotter, and say
// they were skipped when it does not.
//
// open is called once per subtest and must return a ready store; it should
// register the store's Close with t.Cleanup. The suite closes some stores
// itself, so Close must tolerate a second call. The store may already hold
// events (a shared server): every subtest works on fresh stream names and
// measures the global log from the Head it finds. Nothing else may write to
// the store while a subtest runs.
func Run(t *testing.T, open func(t *testing.T) events.Store) {
	t.Helper()
	if open == nil {
		t.Fatal("storetest.Run: nil open")
	}
	t.Run("Append", func(t *testing.T) { runAppend(t, open) })
	t.Run("Idempotency", func(t *testing.T) { runIdempotency(t, open) })
	t.Run("ReadStream", func(t *testing.T) { runReadStream(t, open) })
	t.Run("ReadAll", func(t *testing.T) { runReadAll(t, open) })
	t.Run("StreamVersions", func(t *testing.T) { runStreamVersions(t, open) })
	t.Run("Follow", func(t *testing.T) { runFollow(t, open) })
	t.Run("Concurrency", func(t *testing.T) { runConcurrency(t, open) })
	t.Run("Lifecycle", func(t *testing.T) { runLifecycle(t, open) })
	t.Run("Snapshots", func(t *testing.T) { runSnapshots(t, open) })
}

// storeCase is one named conformance case; it opens its own stores.
type storeCase struct {
	name string
	run  func(t *testing.T, open func(t *testing.T) events.Store)
}

// runCases runs each case as a subtest of t, in the order given.
func runCases(t *testing.T, open func(t *testing.T) events.Store, cases []storeCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, open) })
	}
}

// waitLimit bounds every wait of the suite for something asynchronous.
const waitLimit = 15 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitLimit)
	t.Cleanup(cancel)
	return ctx
}

// newStream returns a stream name no earlier run has used.
func newStream() string { return "storetest-" + uuid.NewString() }

// newEvent returns a valid event with a fresh id; n is visible in its data.
func newEvent(n int) events.Proposed {
	return events.Proposed{
		ID:            uuid.NewString(),
		Type:          "StoreTestEvent",
		SchemaVersion: 1,
		Data:          fmt.Appendf(nil, `{"n":%d}`, n),
		Metadata:      []byte(`{"tenant":"storetest","userId":"u1"}`),
	}
}

func newEvents(n int) []events.Proposed {
	evs := make([]events.Proposed, n)
	for i := range evs {
		evs[i] = newEvent(i)
	}
	return evs
}

func mustAppend(t *testing.T, s events.Store, stream string, expected uint64, evs ...events.Proposed) events.AppendResult {
	t.Helper()
	res, err := s.Append(testCtx(t), stream, expected, evs)
	if err != nil {
		t.Fatalf("Append(%s, expected %d, %d events): %v", stream, expected, len(evs), err)
	}
	if want := expected + uint64(len(evs)); res.Version != want {
		t.Fatalf("Append(%s, expected %d, %d events): version %d, want %d", stream, expected, len(evs), res.Version, want)
	}
	if len(res.Positions) != len(evs) {
		t.Fatalf("Append(%s): %d positions for %d events", stream, len(res.Positions), len(evs))
	}
	for i := 1; i < len(res.Positions); i++ {
		if res.Positions[i] <= res.Positions[i-1] {
			t.Fatalf("Append(%s): positions %v not strictly increasing", stream, res.Positions)
		}
	}
	if len(res.Positions) > 0 && res.Positions[0] == 0 {
		t.Fatalf("Append(%s): position 0 (positions are > 0)", stream)
	}
	return res
}

func mustReadStream(t *testing.T, s events.Store, stream string, from uint64) []events.Recorded {
	t.Helper()
	recs, err := s.ReadStream(testCtx(t), stream, from)
	if err != nil {
		t.Fatalf("ReadStream(%s, from %d): %v", stream, from, err)
	}
	return recs
}

func mustHead(t *testing.T, s events.Store) uint64 {
	t.Helper()
	h, err := s.Head(testCtx(t))
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	return h
}

// wantConflict checks that err is a *ConflictError for stream with the given
// expected and actual versions.
func wantConflict(t *testing.T, err error, stream string, expected, actual uint64) {
	t.Helper()
	if err == nil {
		t.Fatalf("append to %s at expected %d succeeded, want a conflict (stream at %d)", stream, expected, actual)
	}
	if !errors.Is(err, events.ErrConflict) {
		t.Fatalf("append to %s at expected %d: %v, want an error matching events.ErrConflict", stream, expected, err)
	}
	var ce *events.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("append to %s: %v is not a *events.ConflictError", stream, err)
	}
	if ce.Stream != stream || ce.Expected != expected || ce.Actual != actual {
		t.Fatalf("conflict %+v, want stream %s expected %d actual %d", *ce, stream, expected, actual)
	}
}

// sameEvent compares what the store must keep of a proposed event.
func sameEvent(t *testing.T, got events.Recorded, want events.Proposed) {
	t.Helper()
	if got.ID != want.ID || got.Type != want.Type || got.SchemaVersion != want.SchemaVersion ||
		!bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Metadata, want.Metadata) {
		t.Fatalf("recorded event %s %s v%d data %q metadata %q, want %s %s v%d data %q metadata %q",
			got.ID, got.Type, got.SchemaVersion, got.Data, got.Metadata,
			want.ID, want.Type, want.SchemaVersion, want.Data, want.Metadata)
	}
}

// wantStream checks that stream holds exactly evs, at versions 1.. and at the
// given positions.
func wantStream(t *testing.T, s events.Store, stream string, evs []events.Proposed, positions []uint64) {
	t.Helper()
	recs := mustReadStream(t, s, stream, 0)
	if len(recs) != len(evs) {
		t.Fatalf("stream %s holds %d events, want %d", stream, len(recs), len(evs))
	}
	for i, r := range recs {
		sameEvent(t, r, evs[i])
		if r.StreamID != stream || r.Version != uint64(i+1) || r.Position != positions[i] {
			t.Fatalf("event %d of %s: stream %s version %d position %d, want %s %d %d",
				i, stream, r.StreamID, r.Version, r.Position, stream, i+1, positions[i])
		}
	}
}

func equalPositions(a, b []uint64) bool {
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
