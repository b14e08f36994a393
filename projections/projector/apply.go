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
		var (
			stored    *projections.View
			storedVer uint64
		)
		// A create goes onto nothing: skip the read, the conditional
		// insert reports what is stored if anything is.
		if v > 1 {
			cur, err := p.rm.Get(ctx, id)
			switch {
			case errors.Is(err, projections.ErrNotFound):
			case err != nil:
				return fmt.Errorf("read model get %s: %w", id, err)
			default:
				stored, storedVer = &cur, cur.Version
			}
		}
		if storedVer >= v {
			n.already.Add(1)
			return nil
		}
		var state *domain.State
		if stored != nil {
			s, err := projections.StateOf(*stored)
			if err != nil {
				return fmt.Errorf("%w: stored view: %v", errPermanent, err)
			}
			state = s
		}
		var views []projections.View
		var err error
		if storedVer == v-1 {
			views, err = foldOne(state, rec, payload)
		} else {
			views, err = fillGap(ctx, p.store, state, rec)
		}
		if err != nil {
			return err
		}
		out, err := p.rm.Apply(ctx, views)
		if projections.RefusedView(err, id) {
			return fmt.Errorf("%w: %v", errPermanent, err)
		}
		if err != nil {
			return fmt.Errorf("read model apply %s v%d: %w", id, v, err)
		}
		if len(out) != len(views) {
			return fmt.Errorf("read model apply %s: %d outcomes for %d views", id, len(out), len(views))
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
			return nil
		}
		if last.Stored >= v {
			n.already.Add(1)
			return nil
		}
		// Someone else moved the ICP between our read and our write (or
		// a create met a stored view): read again and decide again.
	}
	return fmt.Errorf("%s v%d: no progress after %d attempts", id, v, maxAttempts)
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
