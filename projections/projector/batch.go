package projector

import (
	"cmp"
	"context"
	"errors"
	"slices"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/projections"
)

// handleBatch projects the decoded messages of one batch (see inspect) and
// settles each of them.
// Every message's verdict is decided before any is acked: acks go out only
// for what the read model reported durable.
//
// The fast path folds each ICP's events of the batch onto its stored view
// (creates onto nothing, without a read) and writes all views in one Apply,
// so a batch costs one read model commit. What the fast path cannot decide
// (a gap, a conditional write another writer won, two deliveries of one
// version, an error reading the stored view, a write the read model failed
// for another reason than being unavailable) goes through project one
// message at a time, in stream order, after the batch's write: a view the
// read model refuses fails only its own message, never the batch.
func (p *Projector) handleBatch(ctx context.Context, items []*item) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.AckWait)
	defer cancel()
	p.verify(ctx, items)
	slow := p.applyFast(ctx, items)
	for _, it := range slow {
		p.judge(it, p.project(it.ctx, it.rec, it.payload))
	}
	for _, it := range items {
		p.settle(ctx, it)
	}
}

// applyFast decides what it can of the pending items with one Apply and
// returns the items left for project, in stream order.
func (p *Projector) applyFast(ctx context.Context, items []*item) []*item {
	groups, order := pendingByICP(items)
	if len(order) == 0 {
		return nil
	}
	plan := fastPlan{slow: map[*item]bool{}}
	for _, id := range order {
		p.planICP(ctx, id, groups[id], &plan)
	}
	if len(plan.views) > 0 {
		p.applyPlan(ctx, &plan)
	}
	var left []*item
	for _, it := range items {
		if plan.slow[it] {
			left = append(left, it)
		}
	}
	return left
}

// fastPlan is what applyFast writes in its one Apply: planned[i] wrote
// views[i]. slow holds the items left for project.
type fastPlan struct {
	views   []projections.View
	planned []*item
	slow    map[*item]bool
}

// pendingByICP groups the pending items by ICP, in the order each ICP first
// appears in the batch.
func pendingByICP(items []*item) (groups map[string][]*item, order []string) {
	groups = map[string][]*item{}
	for _, it := range items {
		if it.verdict != pending {
			continue
		}
		id := it.rec.ICPID()
		if _, ok := groups[id]; !ok {
			order = append(order, id)
		}
		groups[id] = append(groups[id], it)
	}
	return groups, order
}

// planICP folds the items of one ICP, in version order, onto its stored
// state and adds their views to plan. Versions the read model holds already
// are acked; from the first item that does not follow the previous version
// (a gap, a second delivery of a version already planned) or does not fold,
// the ICP's items are left for project, as they all are when the stored
// state cannot be read.
func (p *Projector) planICP(ctx context.Context, id string, g []*item, plan *fastPlan) {
	slices.SortStableFunc(g, func(a, b *item) int { return cmp.Compare(a.rec.Version, b.rec.Version) })
	state, err := p.storedState(ctx, id, g[0].rec.Version)
	if err != nil {
		plan.leaveSlow(g)
		return
	}
	var stored uint64
	if state != nil {
		stored = state.Version
	}
	for i, it := range g {
		v := it.rec.Version
		if v <= stored {
			it.verdict = ack
			p.stats.alreadyApplied.Add(1)
			continue
		}
		if state != nil && v != state.Version+1 || state == nil && v != 1 {
			plan.leaveSlow(g[i:])
			return
		}
		next, err := domain.Evolve(state, it.payload, v, it.rec.Position)
		var view projections.View
		if err == nil {
			// A create folds onto nothing: its state's ICP is the
			// payload's, whose JSON the decoding kept.
			view, err = projections.ViewOfDoc(next, it.doc)
		}
		if err != nil {
			plan.leaveSlow(g[i:])
			return
		}
		plan.views = append(plan.views, view)
		plan.planned = append(plan.planned, it)
		state = next
	}
}

// leaveSlow leaves items for project.
func (plan *fastPlan) leaveSlow(items []*item) {
	for _, it := range items {
		plan.slow[it] = true
	}
}

// applyPlan writes the plan's views in one Apply and decides each planned
// item by its view's outcome: acked once the read model holds its version,
// retried when the read model is unavailable, left for project otherwise
// (one view may be refused, or fail for a reason of its own).
func (p *Projector) applyPlan(ctx context.Context, plan *fastPlan) {
	out, err := p.rm.Apply(ctx, plan.views)
	if err == nil && len(out) != len(plan.views) {
		err = errors.New("read model apply: outcome count differs from view count")
	}
	for i, it := range plan.planned {
		switch {
		case errors.Is(err, projections.ErrUnavailable):
			it.verdict, it.reason = retry, err
		case err != nil:
			plan.slow[it] = true
		case out[i].Applied:
			it.verdict = ack
			p.stats.applied.Add(1)
		case out[i].Stored >= it.rec.Version:
			it.verdict = ack
			p.stats.alreadyApplied.Add(1)
		default:
			plan.slow[it] = true
		}
	}
}

// storedState returns the read model's state of id, or nil when first is 1:
// a create goes onto nothing, and the conditional insert reports what is
// stored if anything is.
func (p *Projector) storedState(ctx context.Context, id string, first uint64) (*domain.State, error) {
	if first <= 1 {
		return nil, nil
	}
	cur, err := p.rm.Get(ctx, id)
	switch {
	case errors.Is(err, projections.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return projections.StateOf(cur)
}
