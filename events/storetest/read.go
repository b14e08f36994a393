package storetest

import (
	"errors"
	"testing"

	"github.com/icpservice/icp/events"
)

func runReadStream(t *testing.T, open func(t *testing.T) events.Store) {
	runCases(t, open, []storeCase{
		{"OrderAndFrom", readStreamOrderAndFrom},
		{"Pages", readStreamPages},
		{"MissingStreamIsNotFound", readStreamMissingStreamIsNotFound},
		{"OnlyTheStreamsOwnEvents", readStreamOnlyTheStreamsOwnEvents},
	})
}

func readStreamOrderAndFrom(t *testing.T, open func(t *testing.T) events.Store) {
	s := open(t)
	stream, evs := newStream(), newEvents(5)
	r1 := mustAppend(t, s, stream, events.NoStream, evs[:2]...)
	r2 := mustAppend(t, s, stream, 2, evs[2])
	r3 := mustAppend(t, s, stream, 3, evs[3:]...)
	positions := append(append(append([]uint64{}, r1.Positions...), r2.Positions...), r3.Positions...)
	for _, from := range []uint64{0, 1, 2, 4, 5, 6, 1000} {
		recs := mustReadStream(t, s, stream, from)
		first := max(from, 1)
		want := 0
		if first <= 5 {
			want = int(5 - first + 1)
		}
		if len(recs) != want {
			t.Fatalf("ReadStream from %d: %d events, want %d", from, len(recs), want)
		}
		for i, r := range recs {
			v := first + uint64(i)
			if r.Version != v || r.Position != positions[v-1] || r.StreamID != stream {
				t.Fatalf("ReadStream from %d, event %d: version %d position %d stream %s, want %d %d %s",
					from, i, r.Version, r.Position, r.StreamID, v, positions[v-1], stream)
			}
			sameEvent(t, r, evs[v-1])
		}
	}
}

func readStreamPages(t *testing.T, open func(t *testing.T) events.Store) {
	s := open(t)
	stream, evs := newStream(), newEvents(5)
	res := mustAppend(t, s, stream, events.NoStream, evs...)
	for _, tc := range []struct {
		from     uint64
		limit    int
		versions []uint64
	}{
		{0, 2, []uint64{1, 2}}, {1, 2, []uint64{1, 2}}, {3, 2, []uint64{3, 4}}, {5, 2, []uint64{5}},
		{2, 10, []uint64{2, 3, 4, 5}}, {4, 1, []uint64{4}}, {6, 2, nil}, {1000, 1, nil},
	} {
		recs, err := s.ReadStreamPage(testCtx(t), stream, tc.from, tc.limit)
		if err != nil {
			t.Fatalf("ReadStreamPage from %d limit %d: %v", tc.from, tc.limit, err)
		}
		if len(recs) != len(tc.versions) {
			t.Fatalf("ReadStreamPage from %d limit %d: %d events, want versions %v", tc.from, tc.limit, len(recs), tc.versions)
		}
		for i, r := range recs {
			v := tc.versions[i]
			if r.Version != v || r.Position != res.Positions[v-1] || r.StreamID != stream {
				t.Fatalf("ReadStreamPage from %d limit %d, event %d: version %d position %d, want %d %d",
					tc.from, tc.limit, i, r.Version, r.Position, v, res.Positions[v-1])
			}
			sameEvent(t, r, evs[v-1])
		}
	}
	if _, err := s.ReadStreamPage(testCtx(t), newStream(), 1, 2); !errors.Is(err, events.ErrStreamNotFound) {
		t.Fatalf("ReadStreamPage of a missing stream: %v, want events.ErrStreamNotFound", err)
	}
	if recs, err := s.ReadStreamPage(testCtx(t), stream, 1, 0); err == nil {
		t.Fatalf("ReadStreamPage with limit 0 returned %d events and no error", len(recs))
	}
}

func readStreamMissingStreamIsNotFound(t *testing.T, open func(t *testing.T) events.Store) {
	s := open(t)
	for _, from := range []uint64{0, 1, 5} {
		recs, err := s.ReadStream(testCtx(t), newStream(), from)
		if !errors.Is(err, events.ErrStreamNotFound) {
			t.Fatalf("ReadStream of a missing stream from %d: %d events, error %v; want events.ErrStreamNotFound", from, len(recs), err)
		}
	}
}

func readStreamOnlyTheStreamsOwnEvents(t *testing.T, open func(t *testing.T) events.Store) {
	s := open(t)
	a, b := newStream(), newStream()
	evA, evB := newEvents(3), newEvents(3)
	var posA, posB []uint64
	for i := range 3 {
		posA = append(posA, mustAppend(t, s, a, uint64(i), evA[i]).Positions...)
		posB = append(posB, mustAppend(t, s, b, uint64(i), evB[i]).Positions...)
	}
	wantStream(t, s, a, evA, posA)
	wantStream(t, s, b, evB, posB)
}

func runReadAll(t *testing.T, open func(t *testing.T) events.Store) {
	runCases(t, open, []storeCase{
		{"PagesByPositionAndLimit", readAllPagesByPositionAndLimit},
		{"NothingAfterTheHead", readAllNothingAfterTheHead},
		{"InvalidLimitIsRefused", readAllInvalidLimitIsRefused},
	})
}

func readAllPagesByPositionAndLimit(t *testing.T, open func(t *testing.T) events.Store) {
	s := open(t)
	head := mustHead(t, s)
	type stored struct {
		ev  events.Proposed
		pos uint64
	}
	var want []stored
	for i := range 4 {
		stream := newStream()
		evs := newEvents(1 + i%2) // 1, 2, 1, 2 events: 6 in all
		res := mustAppend(t, s, stream, events.NoStream, evs...)
		for j := range evs {
			want = append(want, stored{evs[j], res.Positions[j]})
		}
	}
	var got []events.Recorded
	after := head
	for page := 0; ; page++ {
		if page > len(want) {
			t.Fatalf("ReadAll never ran dry: %d pages", page)
		}
		recs, err := s.ReadAll(testCtx(t), after, 4)
		if err != nil {
			t.Fatalf("ReadAll(after %d, limit 4): %v", after, err)
		}
		if len(recs) > 4 {
			t.Fatalf("ReadAll(limit 4) returned %d events", len(recs))
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			if r.Position <= after {
				t.Fatalf("ReadAll(after %d) returned position %d", after, r.Position)
			}
			after = r.Position
		}
		got = append(got, recs...)
	}
	if len(got) != len(want) {
		t.Fatalf("paging read %d events, want %d", len(got), len(want))
	}
	for i, r := range got {
		if r.Position != want[i].pos {
			t.Fatalf("event %d of the global log at position %d, want %d", i, r.Position, want[i].pos)
		}
		sameEvent(t, r, want[i].ev)
	}
	// A page that starts mid-way returns the rest, from the next position.
	recs, err := s.ReadAll(testCtx(t), want[2].pos, 100)
	if err != nil {
		t.Fatalf("ReadAll(after %d): %v", want[2].pos, err)
	}
	if len(recs) != 3 || recs[0].Position != want[3].pos {
		t.Fatalf("ReadAll(after %d): %d events from %v, want 3 from position %d", want[2].pos, len(recs), positionsOf(recs), want[3].pos)
	}
}

func readAllNothingAfterTheHead(t *testing.T, open func(t *testing.T) events.Store) {
	s := open(t)
	mustAppend(t, s, newStream(), events.NoStream, newEvent(1))
	head := mustHead(t, s)
	recs, err := s.ReadAll(testCtx(t), head, 10)
	if err != nil || len(recs) != 0 {
		t.Fatalf("ReadAll after the head: %d events, error %v; want none, no error", len(recs), err)
	}
}

func readAllInvalidLimitIsRefused(t *testing.T, open func(t *testing.T) events.Store) {
	s := open(t)
	for _, limit := range []int{0, -1} {
		if _, err := s.ReadAll(testCtx(t), 0, limit); err == nil {
			t.Fatalf("ReadAll with limit %d accepted", limit)
		}
	}
}

func positionsOf(recs []events.Recorded) []uint64 {
	ps := make([]uint64, len(recs))
	for i, r := range recs {
		ps[i] = r.Position
	}
	return ps
}

func runLifecycle(t *testing.T, open func(t *testing.T) events.Store) {
	t.Run("HeadFollowsAppends", func(t *testing.T) {
		s := open(t)
		before := mustHead(t, s)
		res := mustAppend(t, s, newStream(), events.NoStream, newEvents(3)...)
		if h := mustHead(t, s); h != res.Positions[2] || h <= before {
			t.Fatalf("head %d after an append ending at %d (head before: %d)", h, res.Positions[2], before)
		}
	})

	t.Run("Ping", func(t *testing.T) {
		s := open(t)
		if err := s.Ping(testCtx(t)); err != nil {
			t.Fatalf("Ping of an open store: %v", err)
		}
	})

	t.Run("ClosedStoreIsUnavailable", func(t *testing.T) {
		s := open(t)
		stream := newStream()
		mustAppend(t, s, stream, events.NoStream, newEvent(1))
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		closed := func(err error) bool { return errors.Is(err, events.ErrClosed) && errors.Is(err, events.ErrUnavailable) }
		if _, err := s.Append(testCtx(t), stream, 1, []events.Proposed{newEvent(2)}); !closed(err) {
			t.Fatalf("Append on a closed store: %v, want an error matching events.ErrClosed and events.ErrUnavailable", err)
		}
		if _, err := s.ReadStream(testCtx(t), stream, 0); !closed(err) {
			t.Fatalf("ReadStream on a closed store: %v, want an error matching events.ErrClosed and events.ErrUnavailable", err)
		}
		if err := s.Ping(testCtx(t)); !closed(err) {
			t.Fatalf("Ping on a closed store: %v, want an error matching events.ErrClosed and events.ErrUnavailable", err)
		}
		// A second Close (the cleanup's) must return, whatever it answers.
		_ = s.Close()
	})
}
