package projector

import (
	"context"
	"errors"
	"fmt"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/projections"
)

// Reapply re-drives one of the projector's dead letters from the event
// store, never from the message: it checks that the store holds event
// eventID as version version of stream, then brings the read model's view
// of that ICP up to that version by folding the stored events after the
// stored view onto it and applying them in one conditional write, as the
// projector fills a gap. It may run while projectors run: the version rule
// keeps each version written once.
//
// It returns how many versions it wrote, and nil when the read model holds
// the ICP at version or later (now or already). Errors: ErrNotStored (the
// store has no such event: the dead letter was never an event of this
// service), a *projections.RefusedError (the read model still refuses the
// view), events.ErrUnknownVersion (upgrade first), or a failure to read or
// write that may pass.
func Reapply(ctx context.Context, store events.Store, rm projections.ReadModel, stream string, version uint64, eventID string) (int, error) {
	id, ok := events.ICPIDFromStream(stream)
	if !ok || version == 0 {
		return 0, fmt.Errorf("%w: not an ICP event: stream %q, version %d", ErrNotStored, stream, version)
	}
	recs, err := store.ReadStream(ctx, stream, version)
	switch {
	case errors.Is(err, events.ErrStreamNotFound):
	case err != nil:
		return 0, fmt.Errorf("event store read %s: %w", stream, err)
	}
	if len(recs) == 0 || recs[0].Version != version || recs[0].ID != eventID {
		return 0, fmt.Errorf("%w: stream %s has no event %s at version %d", ErrNotStored, stream, eventID, version)
	}
	rec := recs[0]
	for range maxAttempts {
		var state *domain.State
		cur, err := rm.Get(ctx, id)
		switch {
		case errors.Is(err, projections.ErrNotFound):
		case err != nil:
			return 0, fmt.Errorf("read model get %s: %w", id, err)
		default:
			if cur.Version >= version {
				return 0, nil
			}
			if state, err = projections.StateOf(cur); err != nil {
				return 0, err
			}
		}
		views, err := fillGap(ctx, store, state, rec)
		if err != nil {
			return 0, err
		}
		out, err := rm.Apply(ctx, views)
		if err != nil {
			return 0, err
		}
		n := 0
		for _, o := range out {
			if o.Applied {
				n++
			}
		}
		if last := out[len(out)-1]; last.Applied || last.Stored >= version {
			return n, nil
		}
		// Another writer moved the ICP in between: read it again.
	}
	return 0, fmt.Errorf("%s v%d: no progress after %d attempts", id, version, maxAttempts)
}
