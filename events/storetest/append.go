package storetest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/icpservice/icp/events"
)

func runAppend(t *testing.T, open func(t *testing.T) events.Store) {
	runCases(t, open, []storeCase{
		{"NoStreamCreatesStream", appendNoStreamCreatesStream},
		{"NoStreamOnExistingStreamConflicts", appendNoStreamOnExistingStreamConflicts},
		{"ExactExpectedVersion", appendExactExpectedVersion},
		{"WrongExpectedVersionConflicts", appendWrongExpectedVersionConflicts},
		{"PositionsIncreaseInCommitOrder", appendPositionsIncreaseInCommitOrder},
		{"DataAndMetadataRoundTripExactly", appendDataAndMetadataRoundTripExactly},
		{"RecordedTimeIsSetInUTC", appendRecordedTimeIsSetInUTC},
		{"InvalidAppendsAreRefusedAndWriteNothing", appendInvalidAppendsAreRefusedAndWriteNothing},
	})
}

func appendNoStreamCreatesStream(t *testing.T, open func(t *testing.T) events.Store) {
	s := open(t)
	head := mustHead(t, s)
	stream, evs := newStream(), newEvents(2)
	res := mustAppend(t, s, stream, events.NoStream, evs...)
	if res.Positions[0] <= head {
		t.Fatalf("first position %d not after the head %d", res.Positions[0], head)
	}
	wantStream(t, s, stream, evs, res.Positions)
}

func appendNoStreamOnExistingStreamConflicts(t *testing.T, open func(t *testing.T) events.Store) {
	s := open(t)
	stream, first := newStream(), newEvent(1)
	res := mustAppend(t, s, stream, events.NoStream, first)
	_, err := s.Append(testCtx(t), stream, events.NoStream, []events.Proposed{newEvent(2)})
	wantConflict(t, err, stream, events.NoStream, 1)
	wantStream(t, s, stream, []events.Proposed{first}, res.Positions)
}

func appendExactExpectedVersion(t *testing.T, open func(t *testing.T) events.Store) {
	s := open(t)
	stream := newStream()
	evs := newEvents(5)
	r1 := mustAppend(t, s, stream, events.NoStream, evs[0])
	r2 := mustAppend(t, s, stream, 1, evs[1])
	r3 := mustAppend(t, s, stream, 2, evs[2:]...)
	if r3.Version != 5 {
		t.Fatalf("version after three appends %d, want 5", r3.Version)
	}
	positions := append(append(append([]uint64{}, r1.Positions...), r2.Positions...), r3.Positions...)
	wantStream(t, s, stream, evs, positions)
}

func appendWrongExpectedVersionConflicts(t *testing.T, open func(t *testing.T) events.Store) {
	s := open(t)
	stream, evs := newStream(), newEvents(2)
	res := mustAppend(t, s, stream, events.NoStream, evs...)
	head := mustHead(t, s)
	for _, expected := range []uint64{1, 3, 100} {
		_, err := s.Append(testCtx(t), stream, expected, []events.Proposed{newEvent(9)})
		wantConflict(t, err, stream, expected, 2)
	}
	missing := newStream()
	_, err := s.Append(testCtx(t), missing, 3, []events.Proposed{newEvent(9)})
	wantConflict(t, err, missing, 3, 0)
	wantStream(t, s, stream, evs, res.Positions)
	if _, err := s.ReadStream(testCtx(t), missing, 0); !errors.Is(err, events.ErrStreamNotFound) {
		t.Fatalf("stream refused at expected 3 exists afterwards: ReadStream error %v", err)
	}
	if h := mustHead(t, s); h != head {
		t.Fatalf("refused appends moved the head from %d to %d", head, h)
	}
}

func appendPositionsIncreaseInCommitOrder(t *testing.T, open func(t *testing.T) events.Store) {
	s := open(t)
	var last uint64
	for i := range 10 {
		stream := newStream()
		res := mustAppend(t, s, stream, events.NoStream, newEvents(1+i%3)...)
		if res.Positions[0] <= last {
			t.Fatalf("append %d starts at position %d, not after the previous append's %d", i, res.Positions[0], last)
		}
		last = res.Positions[len(res.Positions)-1]
	}
	if h := mustHead(t, s); h != last {
		t.Fatalf("head %d, want the last appended position %d", h, last)
	}
}

func appendDataAndMetadataRoundTripExactly(t *testing.T, open func(t *testing.T) events.Store) {
	s := open(t)
	stream := newStream()
	evs := []events.Proposed{
		{
			ID: newEvent(0).ID, Type: "Exotic.Type-Name_v2", SchemaVersion: 7,
			// Not canonical JSON on purpose: spacing, key order, escapes,
			// big and precise numbers, HTML characters, non-ASCII text.
			Data:     []byte("{ \"z\" : 1, \"a\":[1.0, 1e400, 12345678901234567890],\n\t\"html\":\"<&>\", \"u\":\"\\u00e9 é 日本 🎉\" }"),
			Metadata: []byte(`{"tenant":"t","userId":"u","traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","extra":{"k":[null]}}`),
		},
		{ID: newEvent(0).ID, Type: "NoMetadata", SchemaVersion: 1, Data: []byte(`{}`)},
		{ID: newEvent(0).ID, Type: "Big", SchemaVersion: 1, Data: []byte(`"` + strings.Repeat("x", 200_000) + `"`), Metadata: []byte(`{}`)},
	}
	res := mustAppend(t, s, stream, events.NoStream, evs...)
	wantStream(t, s, stream, evs, res.Positions)
	if recs := mustReadStream(t, s, stream, 0); len(recs[1].Metadata) != 0 {
		t.Fatalf("event appended without metadata reads back metadata %q", recs[1].Metadata)
	}
}

func appendRecordedTimeIsSetInUTC(t *testing.T, open func(t *testing.T) events.Store) {
	s := open(t)
	stream := newStream()
	before := time.Now()
	mustAppend(t, s, stream, events.NoStream, newEvents(2)...)
	after := time.Now()
	for _, r := range mustReadStream(t, s, stream, 0) {
		if r.Time.IsZero() {
			t.Fatalf("event %d has no recorded time", r.Version)
		}
		if r.Time.Location() != time.UTC {
			t.Fatalf("recorded time %v is not in UTC", r.Time)
		}
		// A remote server's clock may differ a little from ours.
		if r.Time.Before(before.Add(-time.Minute)) || r.Time.After(after.Add(time.Minute)) {
			t.Fatalf("recorded time %v far from the append (%v .. %v)", r.Time, before, after)
		}
	}
}

func appendInvalidAppendsAreRefusedAndWriteNothing(t *testing.T, open func(t *testing.T) events.Store) {
	s := open(t)
	head := mustHead(t, s)
	valid := newEvent(1)
	with := func(f func(*events.Proposed)) []events.Proposed {
		e := valid
		f(&e)
		return []events.Proposed{e}
	}
	cases := []struct {
		name   string
		stream string
		evs    []events.Proposed
	}{
		{"no events", newStream(), nil},
		{"empty stream name", "", []events.Proposed{valid}},
		{"empty event id", newStream(), with(func(e *events.Proposed) { e.ID = "" })},
		{"event id not a UUID", newStream(), with(func(e *events.Proposed) { e.ID = "not-a-uuid" })},
		{"event id in upper case", newStream(), with(func(e *events.Proposed) { e.ID = strings.ToUpper(e.ID) })},
		{"empty type", newStream(), with(func(e *events.Proposed) { e.Type = "" })},
		{"schema version 0", newStream(), with(func(e *events.Proposed) { e.SchemaVersion = 0 })},
		{"one bad event among good ones", newStream(), append(newEvents(2), with(func(e *events.Proposed) { e.ID = "x" })...)},
	}
	for _, c := range cases {
		_, err := s.Append(testCtx(t), c.stream, events.NoStream, c.evs)
		if err == nil {
			t.Fatalf("%s: append accepted", c.name)
		}
		if errors.Is(err, events.ErrConflict) || errors.Is(err, events.ErrUnavailable) {
			t.Fatalf("%s: %v; a malformed append is neither a conflict nor worth a retry", c.name, err)
		}
		if !errors.Is(err, events.ErrInvalidAppend) {
			t.Fatalf("%s: %v, want an error matching events.ErrInvalidAppend", c.name, err)
		}
		if c.stream != "" {
			if _, err := s.ReadStream(testCtx(t), c.stream, 0); !errors.Is(err, events.ErrStreamNotFound) {
				t.Fatalf("%s: the refused stream exists afterwards (ReadStream: %v)", c.name, err)
			}
		}
	}
	if h := mustHead(t, s); h != head {
		t.Fatalf("refused appends moved the head from %d to %d", head, h)
	}
}

func runIdempotency(t *testing.T, open func(t *testing.T) events.Store) {
	runCases(t, open, []storeCase{
		{"RetryOfNoStreamAppendIsNoOp", idempotencyRetryOfNoStreamAppendIsNoOp},
		{"RetryAtExpectedVersionIsNoOp", idempotencyRetryAtExpectedVersionIsNoOp},
		{"RetryAfterLaterAppendsIsNoOp", idempotencyRetryAfterLaterAppendsIsNoOp},
		{"RetryComparesIDsNotBodies", idempotencyRetryComparesIDsNotBodies},
		{"RetryOfAPrefixIsNoOp", idempotencyRetryOfAPrefixIsNoOp},
		{"PartlyMatchingRetryConflicts", idempotencyPartlyMatchingRetryConflicts},
		{"SameIDInAnotherStreamIsANewEvent", idempotencySameIDInAnotherStreamIsANewEvent},
		{"SameIDAtAnotherPositionIsANewEvent", idempotencySameIDAtAnotherPositionIsANewEvent},
	})
}

func idempotencyRetryOfNoStreamAppendIsNoOp(t *testing.T, open func(t *testing.T) events.Store) {
	s := open(t)
	stream, evs := newStream(), newEvents(2)
	first := mustAppend(t, s, stream, events.NoStream, evs...)
	head := mustHead(t, s)
	again := mustAppend(t, s, stream, events.NoStream, evs...)
	if again.Version != first.Version || !equalPositions(again.Positions, first.Positions) {
		t.Fatalf("retry answered %+v, want the original %+v", again, first)
	}
	wantStream(t, s, stream, evs, first.Positions)
	if h := mustHead(t, s); h != head {
		t.Fatalf("retry moved the head from %d to %d", head, h)
	}
}

func idempotencyRetryAtExpectedVersionIsNoOp(t *testing.T, open func(t *testing.T) events.Store) {
	s := open(t)
	stream, evs := newStream(), newEvents(3)
	r1 := mustAppend(t, s, stream, events.NoStream, evs[0])
	r2 := mustAppend(t, s, stream, 1, evs[1:]...)
	head := mustHead(t, s)
	again := mustAppend(t, s, stream, 1, evs[1:]...)
	if again.Version != r2.Version || !equalPositions(again.Positions, r2.Positions) {
		t.Fatalf("retry answered %+v, want the original %+v", again, r2)
	}
	wantStream(t, s, stream, evs, append(r1.Positions, r2.Positions...))
	if h := mustHead(t, s); h != head {
		t.Fatalf("retry moved the head from %d to %d", head, h)
	}
}

func idempotencyRetryAfterLaterAppendsIsNoOp(t *testing.T, open func(t *testing.T) events.Store) {
	s := open(t)
	stream, evs := newStream(), newEvents(3)
	r1 := mustAppend(t, s, stream, events.NoStream, evs[0])
	r2 := mustAppend(t, s, stream, 1, evs[1])
	r3 := mustAppend(t, s, stream, 2, evs[2])
	again := mustAppend(t, s, stream, events.NoStream, evs[0])
	if again.Version != 1 || !equalPositions(again.Positions, r1.Positions) {
		t.Fatalf("late retry answered %+v, want the original %+v", again, r1)
	}
	wantStream(t, s, stream, evs, []uint64{r1.Positions[0], r2.Positions[0], r3.Positions[0]})
}

func idempotencyRetryComparesIDsNotBodies(t *testing.T, open func(t *testing.T) events.Store) {
	// EventStoreDB's rule: the ids at the expected position decide. This
	// is why event ids are random per attempt and never derived from
	// the command.
	s := open(t)
	stream, ev := newStream(), newEvent(1)
	first := mustAppend(t, s, stream, events.NoStream, ev)
	changed := ev
	changed.Data = []byte(`{"n":"something else"}`)
	again := mustAppend(t, s, stream, events.NoStream, changed)
	if !equalPositions(again.Positions, first.Positions) {
		t.Fatalf("retry with another body answered %+v, want the original %+v", again, first)
	}
	wantStream(t, s, stream, []events.Proposed{ev}, first.Positions)
}

func idempotencyRetryOfAPrefixIsNoOp(t *testing.T, open func(t *testing.T) events.Store) {
	s := open(t)
	stream, evs := newStream(), newEvents(3)
	first := mustAppend(t, s, stream, events.NoStream, evs...)
	again := mustAppend(t, s, stream, events.NoStream, evs[:2]...)
	if again.Version != 2 || !equalPositions(again.Positions, first.Positions[:2]) {
		t.Fatalf("retry of the first two events answered %+v, want version 2 at %v", again, first.Positions[:2])
	}
	wantStream(t, s, stream, evs, first.Positions)
}

func idempotencyPartlyMatchingRetryConflicts(t *testing.T, open func(t *testing.T) events.Store) {
	s := open(t)
	stream, evs := newStream(), newEvents(2)
	first := mustAppend(t, s, stream, events.NoStream, evs...)
	cases := map[string][]events.Proposed{
		"same first id, other second id": {evs[0], newEvent(3)},
		"ids in another order":           {evs[1], evs[0]},
		"one event more than stored":     {evs[0], evs[1], newEvent(3)},
		"other ids":                      newEvents(2),
	}
	for name, try := range cases {
		_, err := s.Append(testCtx(t), stream, events.NoStream, try)
		if err == nil {
			t.Fatalf("%s: accepted as a retry", name)
		}
		wantConflict(t, err, stream, events.NoStream, 2)
	}
	wantStream(t, s, stream, evs, first.Positions)
}

func idempotencySameIDInAnotherStreamIsANewEvent(t *testing.T, open func(t *testing.T) events.Store) {
	s := open(t)
	a, b, ev := newStream(), newStream(), newEvent(1)
	ra := mustAppend(t, s, a, events.NoStream, ev)
	rb := mustAppend(t, s, b, events.NoStream, ev)
	if rb.Positions[0] <= ra.Positions[0] {
		t.Fatalf("the event in the second stream got position %d, not after %d", rb.Positions[0], ra.Positions[0])
	}
	wantStream(t, s, a, []events.Proposed{ev}, ra.Positions)
	wantStream(t, s, b, []events.Proposed{ev}, rb.Positions)
}

func idempotencySameIDAtAnotherPositionIsANewEvent(t *testing.T, open func(t *testing.T) events.Store) {
	s := open(t)
	stream, ev := newStream(), newEvent(1)
	r1 := mustAppend(t, s, stream, events.NoStream, ev)
	r2 := mustAppend(t, s, stream, 1, ev)
	if r2.Version != 2 || r2.Positions[0] <= r1.Positions[0] {
		t.Fatalf("second append of the same id answered %+v, want version 2 at a new position", r2)
	}
	wantStream(t, s, stream, []events.Proposed{ev, ev}, []uint64{r1.Positions[0], r2.Positions[0]})
}
