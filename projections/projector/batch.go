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
	groups := map[string][]*item{}
	var order []string
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
	if len(order) == 0 {
		return nil
	}
	var (
		views   []projections.View
		planned []*item // planned[i] wrote views[i]
		slow    = map[*item]bool{}
	)
	for _, id := range order {
		g := groups[id]
		slices.SortStableFunc(g, func(a, b *item) int { return cmp.Compare(a.rec.Version, b.rec.Version) })
		state, err := p.storedState(ctx, id, g[0].rec.Version)
		if err != nil {
			for _, it := range g {
				slow[it] = true
			}
			continue
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
				// A gap, or a second delivery of a version already
				// planned: project decides.
				for _, rest := range g[i:] {
					slow[rest] = true
				}
				break
			}
			next, err := domain.Evolve(state, it.payload, v, it.rec.Position)
			var view projections.View
			if err == nil {
				// A create folds onto nothing: its state's ICP is the
				// payload's, whose JSON the decoding kept.
				view, err = projections.ViewOfDoc(next, it.doc)
			}
			if err != nil {
				for _, rest := range g[i:] {
					slow[rest] = true
				}
				break
			}
			views = append(views, view)
			planned = append(planned, it)
			state = next
		}
	}
	if len(views) > 0 {
		out, err := p.rm.Apply(ctx, views)
		if err == nil && len(out) != len(views) {
			err = errors.New("read model apply: outcome count differs from view count")
		}
		for i, it := range planned {
			switch {
			case errors.Is(err, projections.ErrUnavailable):
				it.verdict, it.reason = retry, err
			case err != nil:
				// One view may be refused, or fail for a reason
				// of its own: find out one message at a time.
				slow[it] = true
			case out[i].Applied:
				it.verdict = ack
				p.stats.applied.Add(1)
			case out[i].Stored >= it.rec.Version:
				it.verdict = ack
				p.stats.alreadyApplied.Add(1)
			default:
				slow[it] = true
			}
		}
	}
	var left []*item
	for _, it := range items {
		if slow[it] {
			left = append(left, it)
		}
	}
	return left
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
