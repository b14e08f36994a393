package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/icpservice/icp/events"
)

func runConcurrency(t *testing.T, open func(t *testing.T) events.Store) {
	t.Run("ManyWritersOnSharedStreamsLandExactlyOnce", func(t *testing.T) {
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
				for i := range names {
					// Each writer starts at another stream, so that all
					// the streams are contended at once.
					stream := names[(i+w)%streams]
					ev := proposed[w][(i+w)%streams]
					var expected uint64
					for attempt := 0; ; attempt++ {
						if attempt > writers*4 {
							errs <- fmt.Errorf("writer %d: no progress on %s after %d attempts", w, stream, attempt)
							return
						}
						res, err := s.Append(ctx, stream, expected, []events.Proposed{ev})
						var ce *events.ConflictError
						if errors.As(err, &ce) {
							expected = ce.Actual
							continue
						}
						if err != nil {
							errs <- fmt.Errorf("writer %d: append to %s: %w", w, stream, err)
							return
						}
						if res.Version != expected+1 {
							errs <- fmt.Errorf("writer %d: append at %d answered version %d", w, expected, res.Version)
							return
						}
						break
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}

		all := readAllAfter(t, s, head)
		if len(all) != writers*streams {
			t.Fatalf("the global log holds %d new events, want %d", len(all), writers*streams)
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
	})

	t.Run("FollowerMissesNothingWhileWritersAppend", func(t *testing.T) {
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
	})

	t.Run("RacingNoStreamAppendsExactlyOneWins", func(t *testing.T) {
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
	})

	t.Run("RacingRetriesOfOneAppendBothSucceed", func(t *testing.T) {
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
	})
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
