package projector

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/projections"
)

// errPermanent marks an event that can never be applied by any retry: it is
// dead-lettered.
var errPermanent = errors.New("cannot be applied")

// errMissingInStore marks a gap the event store cannot fill (yet): retried,
// then dead-lettered after Config.MissingEventDeliveries deliveries.
var errMissingInStore = errors.New("events missing in the event store")

// maxAttempts bounds the re-evaluations of one message when other writers
// keep winning the conditional write; past it the message is retried later.
const maxAttempts = 8

// project applies the event rec (decoded as payload) to the read model,
// following the version rule: version v goes only onto stored version v-1,
// in one conditional write. It returns nil once the read model holds the ICP
// at a version >= v durably (so the message may be acked).
//
//   - stored >= v: already applied.
//   - stored == v-1: fold the event onto the stored view and apply it.
//   - stored <  v-1: a gap. The missing events are read from the event store
//     (the truth; the bus only prompts) and applied with this one, in order,
//     in one batch.
//
// When the conditional write is refused, another writer got there first: the
// stored version is read again and the rule re-evaluated. When the read
// model refuses this ICP's view for good (projections.RefusedError), the
// error wraps errPermanent: the message is dead-lettered, and the ICP stays
// at its last version until the dead letter is re-driven (later events of
// it fill the gap through the refused version and are dead-lettered too).
func (p *Projector) project(ctx context.Context, rec events.Recorded, payload any) error {
	return p.projectCounting(ctx, rec, payload, tally{applied: &p.stats.applied, filled: &p.stats.gapFilled, already: &p.stats.alreadyApplied})
}

// tally is where projectCounting counts what it wrote: the event itself
// (applied), the events before it that filled a gap (filled), or nothing
// because the read model held it already (already).
type tally struct {
	applied, filled, already *atomic.Uint64
}

// projectCounting is project with the counters to add to.
func (p *Projector) projectCounting(ctx context.Context, rec events.Recorded, payload any, n tally) error {
	id := rec.ICPID()
	v := rec.Version
	for range maxAttempts {
		cur, found, err := p.storedView(ctx, id, v)
		if err != nil {
			return err
		}
		var storedVer uint64
		if found {
			storedVer = cur.Version
		}
		if storedVer >= v {
			n.already.Add(1)
			return nil
		}
		views, err := p.viewsOnto(ctx, &cur, found, rec, payload)
		if err != nil {
			return err
		}
		done, err := p.applyCounting(ctx, id, v, views, n)
		if done || err != nil {
			return err
		}
		// Someone else moved the ICP between our read and our write (or
		// a create met a stored view): read again and decide again.
	}
	return fmt.Errorf("%s v%d: no progress after %d attempts", id, v, maxAttempts)
}

// storedView returns the read model's view of id; found is false when it
// holds none. A create (v 1) goes onto nothing: the read is skipped, the
// conditional insert reports what is stored if anything is.
func (p *Projector) storedView(ctx context.Context, id string, v uint64) (cur projections.View, found bool, err error) {
	if v <= 1 {
		return projections.View{}, false, nil
	}
	cur, err = p.rm.Get(ctx, id)
	switch {
	case errors.Is(err, projections.ErrNotFound):
		return projections.View{}, false, nil
	case err != nil:
		return projections.View{}, false, fmt.Errorf("read model get %s: %w", id, err)
	}
	return cur, true, nil
}

// viewsOnto returns the views that bring the stored view cur (none when not
// found) to rec's version: rec folded onto it when it is at the version
// before, else the gap filled from the event store (see fillGap). A stored
// view that does not decode wraps errPermanent.
func (p *Projector) viewsOnto(ctx context.Context, cur *projections.View, found bool, rec events.Recorded, payload any) ([]projections.View, error) {
	var (
		state     *domain.State
		storedVer uint64
	)
	if found {
		s, err := projections.StateOf(*cur)
		if err != nil {
			return nil, fmt.Errorf("%w: stored view: %v", errPermanent, err)
		}
		state, storedVer = s, cur.Version
	}
	if storedVer == rec.Version-1 {
		return foldOne(state, rec, payload)
	}
	return fillGap(ctx, p.store, state, rec)
}

// applyCounting writes views, the last of which is id's version v, in one
// conditional Apply, and counts what it wrote. done reports that the read
// model holds version v or later durably; not done, without an error, means
// another writer moved the ICP first. A view the read model refuses for
// good wraps errPermanent.
func (p *Projector) applyCounting(ctx context.Context, id string, v uint64, views []projections.View, n tally) (done bool, err error) {
	out, err := p.rm.Apply(ctx, views)
	if projections.RefusedView(err, id) {
		return false, fmt.Errorf("%w: %v", errPermanent, err)
	}
	if err != nil {
		return false, fmt.Errorf("read model apply %s v%d: %w", id, v, err)
	}
	if len(out) != len(views) {
		return false, fmt.Errorf("read model apply %s: %d outcomes for %d views", id, len(out), len(views))
	}
	for i, o := range out {
		if !o.Applied {
			continue
		}
		if i == len(out)-1 {
			n.applied.Add(1)
		} else {
			n.filled.Add(1)
		}
	}
	last := out[len(out)-1]
	if last.Applied {
		return true, nil
	}
	if last.Stored >= v {
		n.already.Add(1)
		return true, nil
	}
	return false, nil
}

// foldOne folds the bus event onto the stored state.
func foldOne(state *domain.State, rec events.Recorded, payload any) ([]projections.View, error) {
	next, err := domain.Evolve(state, payload, rec.Version, rec.Position)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errPermanent, err)
	}
	view, err := projections.ViewOf(next)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errPermanent, err)
	}
	return []projections.View{view}, nil
}

// fillGap reads the events after state from the event store and folds them
// up to rec's version, returning one view per version, oldest first.
func fillGap(ctx context.Context, store events.Store, state *domain.State, rec events.Recorded) ([]projections.View, error) {
	var from uint64 = 1
	if state != nil {
		from = state.Version + 1
	}
	stream, err := store.ReadStream(ctx, rec.StreamID, from)
	switch {
	case errors.Is(err, events.ErrStreamNotFound):
		return nil, fmt.Errorf("%w: stream %s has no events, the bus has version %d", errMissingInStore, rec.StreamID, rec.Version)
	case err != nil:
		return nil, fmt.Errorf("event store read %s: %w", rec.StreamID, err)
	}
	var views []projections.View
	for _, e := range stream {
		if e.Version > rec.Version {
			break
		}
		next, err := events.EvolveRecorded(state, e)
		switch {
		case errors.Is(err, events.ErrUnknownVersion):
			return nil, err // retried: a newer release wrote it
		case err != nil:
			return nil, fmt.Errorf("%w: stored event %s v%d (%s): %v", errPermanent, e.StreamID, e.Version, e.ID, err)
		}
		view, err := projections.ViewOf(next)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errPermanent, err)
		}
		views = append(views, view)
		state = next
	}
	if state == nil || state.Version < rec.Version {
		var have uint64
		if state != nil {
			have = state.Version
		}
		return nil, fmt.Errorf("%w: stream %s reaches version %d, the bus has version %d", errMissingInStore, rec.StreamID, have, rec.Version)
	}
	return views, nil
}
