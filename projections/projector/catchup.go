package projector

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/watermark"
	"github.com/icpservice/icp/projections"
)

// catchUpPage bounds the events one catch-up read takes from the store, and
// the views of one read model write.
const catchUpPage = 512

// checkpoint records how far the durable got and catches up what the bus
// stream dropped before the durable got it (see events/watermark for the
// detection).
//
// The contract: when the stream no longer holds messages after the
// durable's mark, the events after the mark's position and before the
// position of the stream's first message are read from the event store, a
// page of catchUpPage at a time in store order, and applied under the read
// model's version guard: each page's events are folded onto the stored
// views and written with one conditional write, as a bus batch is, and what
// that write cannot decide goes through project one event at a time. So an
// event the read model holds already is not written again, and replicas
// catching up at once write each version once. The mark then moves past the gap. An event
// that can never be applied (a stored payload no release decodes, a view
// the read model refuses) is logged and counted in Stats.CatchUpSkipped,
// as the bus path would dead-letter it; an event of a schema this release
// does not know, or a store or read model that fails, stops the catch-up:
// the mark stays, and the next checkpoint starts again from it. Messages
// the stream still holds are left to the consumer.
//
// It runs when consuming starts, every Config.CheckpointInterval, and once
// more on a graceful stop, always on the batch writer's goroutine.
func (p *Projector) checkpoint(ctx context.Context) {
	if p.marks == nil {
		t, err := watermark.Open(ctx, p.pubJS, events.BusStream, p.cfg.Durable, p.locate)
		if err != nil {
			p.log.Warn("projector: watermark unavailable; retried at the next checkpoint", "err", err)
			return
		}
		p.marks = t
	}
	gap, found, err := p.marks.Check(ctx)
	if err != nil {
		p.log.Warn("projector: watermark check failed; retried at the next checkpoint", "err", err)
		return
	}
	if !found {
		return
	}
	p.log.Warn("projector: the bus stream dropped messages this durable may never have applied; catching up from the event store",
		"after_position", gap.After.Position, "after_seq", gap.After.Seq,
		"stream_first_seq", gap.FirstSeq, "stream_first_position", gap.FirstPosition)
	last, err := p.catchUp(ctx, gap)
	if err != nil {
		p.log.Warn("projector: catching up from the event store stopped; resumed at the next checkpoint",
			"reached_position", last, "err", err)
		return
	}
	if err := p.marks.Close(ctx, gap, last); err != nil {
		p.log.Warn("projector: caught up, but the watermark was not recorded; the catch-up is repeated (idempotent)", "err", err)
		return
	}
	p.stats.catchUps.Add(1)
	p.log.Info("projector: caught up from the event store", "to_position", last,
		"caught_up_total", p.stats.caughtUp.Load())
}

// catchUp applies the stored events of gap and returns the position of the
// last event it handled.
func (p *Projector) catchUp(ctx context.Context, gap watermark.Gap) (uint64, error) {
	end := gap.FirstPosition
	if end == 0 {
		// The stream's first message names no event the store holds:
		// catch up to the store's head, as it is now.
		head, err := p.store.Head(ctx)
		if err != nil {
			return 0, fmt.Errorf("event store head: %w", err)
		}
		end = head + 1
	}
	n := tally{applied: &p.stats.caughtUp, filled: &p.stats.caughtUp, already: &p.stats.caughtUpAlready}
	after := gap.After.Position
	for {
		recs, err := p.store.ReadAll(ctx, after, catchUpPage)
		if err != nil {
			return after, fmt.Errorf("event store read after %d: %w", after, err)
		}
		var page []events.Recorded
		for _, rec := range recs {
			if rec.Position >= end {
				break
			}
			page = append(page, rec)
		}
		if len(page) == 0 {
			return after, nil
		}
		if err := p.catchUpPage(ctx, page, n); err != nil {
			return after, err
		}
		after = page[len(page)-1].Position
		if len(page) < len(recs) {
			return after, nil
		}
	}
}

// catchUpPage applies one page of stored events with one read model write
// for what folds onto the stored views (as a bus batch does, see
// applyFast); what that write cannot decide goes through catchUpOne, one
// event at a time: ICP by ICP in the order each ICP first appears in the
// page, and each ICP's events in store order. Events of different ICPs are
// independent, so only the order within an ICP matters.
func (p *Projector) catchUpPage(ctx context.Context, page []events.Recorded, n tally) error {
	groups, order, err := p.groupPage(ctx, page, n)
	if err != nil {
		return err
	}
	plan := pagePlan{slow: map[*pageEvent]bool{}}
	for _, id := range order {
		if err := p.planPageICP(ctx, id, groups[id], n, &plan); err != nil {
			return err
		}
	}
	if len(plan.views) > 0 {
		if err := p.applyPagePlan(ctx, &plan, n); err != nil {
			return err
		}
	}
	for _, id := range order {
		for _, e := range groups[id] {
			if plan.slow[e] {
				if err := p.catchUpOne(ctx, e.rec, n); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// pageEvent is a stored event of a catch-up page with its decoding.
type pageEvent struct {
	rec     events.Recorded
	payload any
	doc     []byte
}

// pagePlan is what catchUpPage writes in its one Apply: planned[i] wrote
// views[i]. slow holds the events left for catchUpOne.
type pagePlan struct {
	views   []projections.View
	planned []*pageEvent
	slow    map[*pageEvent]bool
}

// groupPage decodes the page's events of ICP streams and groups them by
// ICP, in the order each ICP first appears, each ICP's in store order. An
// event that does not decode goes through catchUpOne at once, in store
// order; its error stops the catch-up.
func (p *Projector) groupPage(ctx context.Context, page []events.Recorded, n tally) (groups map[string][]*pageEvent, order []string, err error) {
	groups = map[string][]*pageEvent{}
	for _, rec := range page {
		id, ok := events.ICPIDFromStream(rec.StreamID)
		if !ok {
			continue
		}
		payload, doc, err := decode(rec)
		if err != nil {
			if err := p.catchUpOne(ctx, rec, n); err != nil {
				return nil, nil, err
			}
			continue
		}
		if _, ok := groups[id]; !ok {
			order = append(order, id)
		}
		groups[id] = append(groups[id], &pageEvent{rec: rec, payload: payload, doc: doc})
	}
	return groups, order, nil
}

// planPageICP folds the events of one ICP onto its stored state and adds
// their views to plan. Versions the read model holds already are counted
// as such; from the first event that does not follow the previous version
// or does not fold, the ICP's events are left for catchUpOne. An error
// reading the stored state stops the catch-up.
func (p *Projector) planPageICP(ctx context.Context, id string, g []*pageEvent, n tally, plan *pagePlan) error {
	state, err := p.storedState(ctx, id, g[0].rec.Version)
	if err != nil {
		return fmt.Errorf("read model get %s: %w", id, err)
	}
	var have uint64
	if state != nil {
		have = state.Version
	}
	for i, e := range g {
		v := e.rec.Version
		if v <= have {
			n.already.Add(1)
			continue
		}
		if state != nil && v != state.Version+1 || state == nil && v != 1 {
			plan.leaveSlow(g[i:])
			return nil
		}
		next, err := domain.Evolve(state, e.payload, v, e.rec.Position)
		var view projections.View
		if err == nil {
			view, err = projections.ViewOfDoc(next, e.doc)
		}
		if err != nil {
			plan.leaveSlow(g[i:])
			return nil
		}
		plan.views = append(plan.views, view)
		plan.planned = append(plan.planned, e)
		state = next
	}
	return nil
}

// leaveSlow leaves events for catchUpOne.
func (plan *pagePlan) leaveSlow(evs []*pageEvent) {
	for _, e := range evs {
		plan.slow[e] = true
	}
}

// applyPagePlan writes the plan's views in one Apply and counts each
// planned event by its view's outcome; what the write did not decide is
// left for catchUpOne. A read model that is unavailable stops the catch-up.
func (p *Projector) applyPagePlan(ctx context.Context, plan *pagePlan, n tally) error {
	out, err := p.rm.Apply(ctx, plan.views)
	if err == nil && len(out) != len(plan.views) {
		err = errors.New("read model apply: outcome count differs from view count")
	}
	if errors.Is(err, projections.ErrUnavailable) {
		return err
	}
	for i, e := range plan.planned {
		switch {
		case err != nil:
			plan.slow[e] = true
		case out[i].Applied:
			n.applied.Add(1)
		case out[i].Stored >= e.rec.Version:
			n.already.Add(1)
		default:
			plan.slow[e] = true
		}
	}
	return nil
}

// catchUpOne applies one stored event; an error stops the catch-up.
func (p *Projector) catchUpOne(ctx context.Context, rec events.Recorded, n tally) error {
	payload, _, err := decode(rec)
	if err != nil && !errors.Is(err, events.ErrUnknownVersion) {
		err = fmt.Errorf("%w: %v", errPermanent, err)
	}
	if err == nil {
		err = p.projectCounting(ctx, rec, payload, n)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errPermanent):
		p.stats.catchUpSkipped.Add(1)
		p.log.Error("projector: stored event can never be applied; skipped by the catch-up",
			"event", rec.ID, "stream", rec.StreamID, "version", rec.Version, "position", rec.Position, "err", err)
		return nil
	default:
		return fmt.Errorf("%s v%d: %w", rec.StreamID, rec.Version, err)
	}
}

// locate trusts a bus message's position only when the event store holds
// the event the message names at that position: the mark is where catch-up
// reads the store from, and a forged header must not move it.
func (p *Projector) locate(ctx context.Context, m *jetstream.RawStreamMsg) (uint64, bool) {
	rec, err := events.FromHeaders(m.Header.Get, m.Data)
	if err != nil {
		return 0, false
	}
	recs, err := p.store.ReadStreamPage(ctx, rec.StreamID, rec.Version, 1)
	if err != nil || len(recs) != 1 || recs[0].ID != rec.ID || recs[0].Position != rec.Position {
		return 0, false
	}
	return rec.Position, true
}
