// Package rebuild replays the event history into a read model: the fold of
// every ICP's stream, written in bulk, for a rebuild that is swapped in
// while the service keeps serving, and for an audit that compares the
// history with the live read model.
//
// A replay applies the projector's rules, so that a rebuilt read model is
// the one the projector would have built: events are folded per ICP in
// version order (domain.Evolve, projections.ViewOf); an event that can
// never be applied (corrupt, or not foldable onto its stream) leaves its ICP
// at its last good version and skips the ICP's later events, as the
// projector's dead-lettering does; an event written by a newer release stops
// the replay (ErrNewerRelease), where the projector would wait for the
// upgrade.
//
// Speed: BenchmarkRebuild measures a rebuild of the SQLite read model from
// the SQLite event store, reported as events/s and CPU per event;
// docs/performance.md ("Rebuild and verify at scale") has the figures of
// icpctl rebuild on a million events, with the commands that produced
// them. Reading, decoding, folding and writing run on goroutines of their
// own. The bound is the read model's single writer: each ICP's row and
// membership rows, and the WAL's pages written twice (WAL, then
// checkpoint); folding in memory and writing each ICP's state once, in
// large transactions, is what keeps that cost per ICP rather than per
// event. Reading the store is the next largest cost.
package rebuild

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/projections"
)

// Target is where a replay writes: a read model being built that nothing
// else writes to (sqlitemodel.Builder).
type Target interface {
	// Load returns the views stored under ids; ids with none are absent
	// from the map.
	Load(ctx context.Context, ids []string) (map[string]projections.View, error)
	// Put writes views atomically: nil means all are durable, an error
	// that none may be. created are views of ICPs the target holds none of
	// (Load did not return them); each of replaced replaces the view Load
	// returned for its ICP.
	Put(ctx context.Context, created, replaced []projections.View) error
}

// Swapper is a Target that can replace the live read model atomically.
type Swapper interface {
	Target
	// Swap locks out every other writer of the live read model, runs final
	// (whose Load and Put take part in the swap), then makes the target
	// the live read model, all in one transaction. On error nothing
	// changed.
	Swap(ctx context.Context, final func(ctx context.Context) error) error
}

// Defaults of Options.
const (
	DefaultMaxStates = 20_000
	DefaultSwapBelow = 2048
	// maxCatchUpRounds bounds the catch-up before the swap under a write
	// load that keeps up with the replay; the swap's own catch-up then
	// takes the rest.
	maxCatchUpRounds = 8
)

// Phase names what a replay is doing, for progress reports.
type Phase string

// Phases of a rebuild.
const (
	PhaseHistory Phase = "history"  // the history up to the head at start
	PhaseCatchUp Phase = "catch-up" // events recorded while the history was replayed
	PhaseSwap    Phase = "swap"     // the last events, under the write lock, and the swap
)

// Progress is reported after each chunk of events a replay folded.
type Progress struct {
	Phase Phase
	// Position is the last position replayed; Head the position this
	// phase replays up to. Positions grow with the history but need not be
	// contiguous (EventStoreDB's are not). A history phase read in stream
	// order (StreamOrderReader) reports the number of events replayed
	// instead, at most Head: the SQLite store's positions are contiguous
	// but for rolled-back writes, so it approaches Head.
	Position, Head uint64
	// Events is the number of events replayed since the replay began.
	Events uint64
	// Elapsed is the time since the replay began.
	Elapsed time.Duration
}

// Options tune a replay. The zero value is valid.
type Options struct {
	// MaxStates bounds the ICP states held in memory (default
	// DefaultMaxStates; a state holds its ICP's document and the data of
	// the event that last set its filters, a few KB). A state that left the
	// cache is read back from the target when its ICP has another event.
	MaxStates int
	// SwapBelow: Rebuild swaps once a catch-up round found fewer new events
	// than this (default DefaultSwapBelow). The events of the last round
	// are applied while every writer of the read model waits.
	SwapBelow int
	// Progress, when set, is called after each chunk, from the replaying
	// goroutine.
	Progress func(Progress)
}

func (o Options) withDefaults() (Options, error) {
	if o.MaxStates < 0 || o.SwapBelow < 0 {
		return o, errors.New("rebuild: MaxStates and SwapBelow must not be negative")
	}
	if o.MaxStates == 0 {
		o.MaxStates = DefaultMaxStates
	}
	if o.SwapBelow == 0 {
		o.SwapBelow = DefaultSwapBelow
	}
	return o, nil
}

// Result is what a replay did.
type Result struct {
	// Events is the number of events read; Last the position of the last.
	Events uint64
	Last   uint64
	// Views is the number of views written (an ICP written several times
	// counts each time).
	Views uint64
	// Skipped counts the events that could not be applied; Problems lists
	// the first of them.
	Skipped  uint64
	Problems []Problem
	// Elapsed is the replay's duration.
	Elapsed time.Duration
}

// Replay folds the events with positions in (after, to] into target, in
// global order. ICPs whose stream began at or before after must already be
// in target at the version of their last event up to after.
func Replay(ctx context.Context, store events.Store, target Target, after, to uint64, opts Options) (Result, error) {
	r, err := newReplayer(store, target, opts)
	if err != nil {
		return Result{}, err
	}
	_, err = r.replay(ctx, PhaseHistory, after, to)
	return r.result(), err
}

// Rebuild replays the whole history into target and swaps it in: first the
// history up to the store's head, then, in rounds, what was recorded
// meanwhile, until a round is small; then, inside Swap, everything up to the
// store's head as read under the read model's write lock.
//
// Why nothing is lost or applied twice with the service running: the live
// projector applies only events the store had already committed, and it
// cannot write while Swap holds the lock. So every event it applied to the
// old tables has a position at or below the head read under the lock, and
// is in the new tables; every later event reaches the projector after the
// swap and is applied onto the new tables by its version rule (onto v-1
// only; already there: acknowledged).
func Rebuild(ctx context.Context, store events.Store, target Swapper, opts Options) (Result, error) {
	r, err := newReplayer(store, target, opts)
	if err != nil {
		return Result{}, err
	}
	head, err := store.Head(ctx)
	if err != nil {
		return r.result(), fmt.Errorf("rebuild: event store head: %w", err)
	}
	last, err := r.replay(ctx, PhaseHistory, 0, head)
	if err != nil {
		return r.result(), err
	}
	for range maxCatchUpRounds {
		head, err := store.Head(ctx)
		if err != nil {
			return r.result(), fmt.Errorf("rebuild: event store head: %w", err)
		}
		before := r.events
		if last, err = r.replay(ctx, PhaseCatchUp, last, head); err != nil {
			return r.result(), err
		}
		if r.events-before < uint64(r.opts.SwapBelow) {
			break
		}
	}
	err = target.Swap(ctx, func(ctx context.Context) error {
		head, err := store.Head(ctx)
		if err != nil {
			return fmt.Errorf("rebuild: event store head: %w", err)
		}
		_, err = r.replay(ctx, PhaseSwap, last, head)
		return err
	})
	return r.result(), err
}
