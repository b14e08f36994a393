package api

import (
	"context"
	"errors"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/projections"
)

// Access while the read model lags (docs/api.md, "Access while the read model
// lags"): the read model is written by the projector, after the event store,
// so a view may be older than the ICP. Serving a stale view would let a member
// removed by an acknowledged PATCH, or anyone after an acknowledged DELETE,
// read the ICP until the projector catches up. So every live view is checked
// against the event store's version of its stream before it is served (one
// indexed query for a get or a whole page of a list); a view at that version
// is served as it is, and a view that is not is replaced by the ICP as the
// store holds it, from which access is decided. A store that cannot answer
// makes the read 503: access cannot be told.

// fresh returns, of one chunk of a list's views (all of tenant actor.Tenant,
// listing actor among their members, as the read model holds them), the ICPs
// still in actor's list (domain.InList), in the same order: each view the
// store holds at its version as it is, each stale one as the store holds it
// now, without those deleted or no longer listing actor since. The list handler calls it once per chunk of
// views it reads.
func (a *api) fresh(ctx context.Context, views []projections.View, actor domain.Actor) ([]projections.View, error) {
	if len(views) == 0 {
		return views, nil
	}
	ids := make([]string, len(views))
	for i, v := range views {
		ids[i] = v.ID
	}
	versions, err := a.cmds.Versions(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := views[:0]
	for _, v := range views {
		if stored := versions[v.ID]; stored != v.Version {
			if v, err = a.currentView(ctx, v, stored); err != nil {
				return nil, err
			}
		}
		if !domain.InList(actor, v.Tenant, v.Deleted, v.UserIDs) {
			continue
		}
		out = append(out, v)
	}
	return out, nil
}

// fresh1 is fresh's check for one live view: v itself when the store holds
// the ICP at v's version, else the ICP as the store holds it now (a
// tombstone when the store has no such ICP).
func (a *api) fresh1(ctx context.Context, v projections.View) (projections.View, error) {
	versions, err := a.cmds.Versions(ctx, []string{v.ID})
	if err != nil {
		return projections.View{}, err
	}
	stored := versions[v.ID]
	if stored == v.Version {
		return v, nil
	}
	return a.currentView(ctx, v, stored)
}

// currentView returns ICP v.ID as the event store holds it now, as a view;
// stored is the store's version of it (0: no stream). A view behind the
// store is brought forward by folding only the newer events onto it. A view
// the store does not continue (the store holds fewer events, or none: it was
// restored from an older backup) is replaced by the fold of the whole
// stream, or by a tombstone when there is no stream: the store is the truth.
func (a *api) currentView(ctx context.Context, v projections.View, stored uint64) (projections.View, error) {
	var s *domain.State
	if stored > 0 {
		var known *domain.State
		if stored > v.Version {
			known, _ = projections.StateOf(v) // nil for an unreadable document: fold it all
		}
		var err error
		s, err = a.cmds.Current(ctx, v.ID, known)
		if err != nil && known != nil && !errors.Is(err, events.ErrUnavailable) {
			// The newer events do not follow v: fold the whole stream.
			s, err = a.cmds.Current(ctx, v.ID, nil)
		}
		if err != nil {
			return projections.View{}, err
		}
	}
	if s == nil {
		return projections.View{ID: v.ID, Tenant: v.Tenant, Version: v.Version, Position: v.Position, Deleted: true}, nil
	}
	return projections.ViewOf(s)
}
