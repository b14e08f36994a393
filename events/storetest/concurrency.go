package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/icpservice/icp/events"
)

func runConcurrency(t *testing.T, open func(t *testing.T) events.Store) {
	runCases(t, open, []storeCase{
		{"ManyWritersOnSharedStreamsLandExactlyOnce", concurrencyManyWritersLandExactlyOnce},
		{"FollowerMissesNothingWhileWritersAppend", concurrencyFollowerMissesNothing},
		{"RacingNoStreamAppendsExactlyOneWins", concurrencyRacingNoStreamOneWins},
		{"RacingRetriesOfOneAppendBothSucceed", concurrencyRacingRetriesBothSucceed},
	})
}

func concurrencyManyWritersLandExactlyOnce(t *testing.T, open func(t *testing.T) events.Store) {
	// 50 writers each append one event to each of 20 shared streams,
	// with optimistic concurrency: on a conflict, retry at the version
	// the conflict reports. Every event must land exactly once, and
	// the global order must agree with each stream's order.
	const writers, streams = 50, 20
	s := open(t)
	head := mustHead(t, s)
	names := make([]string, streams)
	for i := range names {
		names[i] = newStream()
	}
	ids := make(map[string]bool, writers*streams)
	proposed := make([][]events.Proposed, writers)
	for w := range proposed {
		proposed[w] = newEvents(streams)
		for _, e := range proposed[w] {
			ids[e.ID] = true
		}
	}
	ctx := testCtx(t)
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			if err := appendToEveryStream(ctx, s, w, names, proposed[w], writers*4); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	wantEachEventOnceInOrder(t, readAllAfter(t, s, head), ids, writers*streams)
	for _, stream := range names {
		recs := mustReadStream(t, s, stream, 0)
		if len(recs) != writers {
			t.Fatalf("stream %s holds %d events, want %d", stream, len(recs), writers)
		}
		for i, r := range recs {
			if r.Version != uint64(i+1) || (i > 0 && r.Position <= recs[i-1].Position) {
				t.Fatalf("stream %s: event %d at version %d position %d", stream, i, r.Version, r.Position)
			}
		}
	}
}

// appendToEveryStream appends writer w's evs[i] to streams[i], one append
// each, starting at another stream for each writer so that all the streams
// are contended at once. On a conflict it retries at the version the
// conflict reports, giving up after maxAttempts attempts on one stream.
func appendToEveryStream(ctx context.Context, s events.Store, w int, streams []string, evs []events.Proposed, maxAttempts int) error {
	for i := range streams {
		stream := streams[(i+w)%len(streams)]
		ev := evs[(i+w)%len(streams)]
		var expected uint64
		for attempt := 0; ; attempt++ {
			if attempt > maxAttempts {
				return fmt.Errorf("writer %d: no progress on %s after %d attempts", w, stream, attempt)
			}
			res, err := s.Append(ctx, stream, expected, []events.Proposed{ev})
			var ce *events.ConflictError
			if errors.As(err, &ce) {
				expected = ce.Actual
				continue
			}
			if err != nil {
				return fmt.Errorf("writer %d: append to %s: %w", w, stream, err)
			}
			if res.Version != expected+1 {
				return fmt.Errorf("writer %d: append at %d answered version %d", w, expected, res.Version)
			}
			break
		}
	}
	return nil
}

// wantEachEventOnceInOrder checks that all holds n events, each of ids once,
// at strictly increasing positions, and that it shows every stream's
// events in version order from 1.
func wantEachEventOnceInOrder(t *testing.T, all []events.Recorded, ids map[string]bool, n int) {
	t.Helper()
	if len(all) != n {
		t.Fatalf("the global log holds %d new events, want %d", len(all), n)
	}
	seen := make(map[string]bool, len(all))
	last := make(map[string]events.Recorded)
	for i, r := range all {
		if i > 0 && r.Position <= all[i-1].Position {
			t.Fatalf("global log not strictly increasing: %d after %d", r.Position, all[i-1].Position)
		}
		if !ids[r.ID] || seen[r.ID] {
			t.Fatalf("event %s at position %d: unknown or stored twice", r.ID, r.Position)
		}
		seen[r.ID] = true
		if prev, ok := last[r.StreamID]; ok && r.Version != prev.Version+1 {
			t.Fatalf("global order shows %s v%d right after v%d", r.StreamID, r.Version, prev.Version)
		} else if !ok && r.Version != 1 {
			t.Fatalf("global order shows %s v%d first", r.StreamID, r.Version)
		}
		last[r.StreamID] = r
	}
}

func concurrencyFollowerMissesNothing(t *testing.T, open func(t *testing.T) events.Store) {
	// A follower that saw position N+1 before N would resume after
	// N+1 and never deliver N. Follow while many writers append, then
	// compare with the log read at rest.
	const writers, perWriter = 20, 25
	s := open(t)
	head := mustHead(t, s)
	f := startFollow(t, s, head, 7)
	ctx := testCtx(t)
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				if _, err := s.Append(ctx, newStream(), events.NoStream, []events.Proposed{newEvent(i)}); err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := f.next(t, writers*perWriter, 7)
	wantPositions(t, got, positionsOf(readAllAfter(t, s, head)))
}

func concurrencyRacingNoStreamOneWins(t *testing.T, open func(t *testing.T) events.Store) {
	// Pairs of appends race to create the same stream, all pairs at
	// once, so that a group-committing store sees many pairs inside one
	// batch. In each pair exactly one wins.
	const pairs = 100
	s := open(t)
	ctx := testCtx(t)
	type outcome struct {
		ev  events.Proposed
		res events.AppendResult
		err error
	}
	results := make([][2]outcome, pairs)
	streams := make([]string, pairs)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for p := range pairs {
		streams[p] = newStream()
		for k := range 2 {
			ev := newEvent(k)
			wg.Go(func() {
				<-start
				res, err := s.Append(ctx, streams[p], events.NoStream, []events.Proposed{ev})
				results[p][k] = outcome{ev, res, err}
			})
		}
	}
	close(start)
	wg.Wait()
	for p, pair := range results {
		var winner, loser outcome
		switch {
		case pair[0].err == nil && pair[1].err != nil:
			winner, loser = pair[0], pair[1]
		case pair[1].err == nil && pair[0].err != nil:
			winner, loser = pair[1], pair[0]
		default:
			t.Fatalf("stream %s: racing creates answered %v and %v; want exactly one success", streams[p], pair[0].err, pair[1].err)
		}
		wantConflict(t, loser.err, streams[p], events.NoStream, 1)
		wantStream(t, s, streams[p], []events.Proposed{winner.ev}, winner.res.Positions)
	}
}

func concurrencyRacingRetriesBothSucceed(t *testing.T, open func(t *testing.T) events.Store) {
	// The same append sent twice at once (a client retrying before the
	// first answer arrived) is one append: both calls succeed with the
	// same result, the events are stored once.
	const streams = 50
	s := open(t)
	ctx := testCtx(t)
	type outcome struct {
		res events.AppendResult
		err error
	}
	results := make([][2]outcome, streams)
	names := make([]string, streams)
	evs := make([][]events.Proposed, streams)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for p := range streams {
		names[p], evs[p] = newStream(), newEvents(2)
		for k := range 2 {
			wg.Go(func() {
				<-start
				res, err := s.Append(ctx, names[p], events.NoStream, evs[p])
				results[p][k] = outcome{res, err}
			})
		}
	}
	close(start)
	wg.Wait()
	for p, pair := range results {
		if pair[0].err != nil || pair[1].err != nil {
			t.Fatalf("stream %s: concurrent identical appends answered %v and %v, want both to succeed", names[p], pair[0].err, pair[1].err)
		}
		if !equalPositions(pair[0].res.Positions, pair[1].res.Positions) || pair[0].res.Version != pair[1].res.Version {
			t.Fatalf("stream %s: identical appends answered %+v and %+v", names[p], pair[0].res, pair[1].res)
		}
		wantStream(t, s, names[p], evs[p], pair[0].res.Positions)
	}
}

// readAllAfter pages through the global log after a position.
func readAllAfter(t *testing.T, s events.Store, after uint64) []events.Recorded {
	t.Helper()
	var all []events.Recorded
	for {
		recs, err := s.ReadAll(testCtx(t), after, 250)
		if err != nil {
			t.Fatalf("ReadAll(after %d): %v", after, err)
		}
		if len(recs) == 0 {
			return all
		}
		all = append(all, recs...)
		after = recs[len(recs)-1].Position
	}
}
