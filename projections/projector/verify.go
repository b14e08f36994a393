package projector

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/icpservice/icp/events"
)

// ErrNotStored marks a message whose event the event store does not hold:
// forged, or left on the bus by a store that was since restored from an
// older backup. It is dead-lettered, whatever schema version it claims, and
// Reapply refuses to re-drive it.
var ErrNotStored = errors.New("event not in the event store")

// verify checks every pending item of a batch against the event store and
// replaces what the message says with the store's copy of the event.
//
// The rule: a message is applied only when the event store holds an event
// with the message's event id at the message's global position, in the
// message's stream at the message's version. The payload, type, schema
// version, metadata and time that are applied are then the store's, never
// the message's, so checking those four fields is enough: a forged payload
// under a real event id can never reach the read model, and the bus is
// only a prompt to apply what the store holds.
//
//   - The store holds another event there, or none although it has events
//     past that position: dead-lettered at once (ErrNotStored), whatever
//     version the message claims; the rule that unknown schema versions
//     are retried applies only to events the store holds.
//   - The message's position is past the store's last event: the store may
//     lag (a replica behind the one the relay read) or be a restored older
//     copy. Retried like a gap the store cannot fill, then dead-lettered
//     after Config.MissingEventDeliveries deliveries.
//   - The store cannot be read: every item of the batch is retried.
//
// Cost: the store is read in global order from the position verified last
// (Store.ReadAll, whose positions come from the store itself, never from a
// message: EventStoreDB refuses a read of $all from a position that is not
// an event's), at most twice the batch's size in events; the items that
// read does not reach (redeliveries, another replica's share, a forged
// position) are read by stream. A batch of consecutive events costs one
// read, and none of the file when the store still holds those events in
// memory (events.RecentReader: the SQLite store, for the events this
// process has just committed). BenchmarkStoreCheck measures that read,
// BenchmarkProjector the whole path.
func (p *Projector) verify(ctx context.Context, items []*item) {
	todo := pendingByPosition(items)
	if len(todo) == 0 {
		return
	}
	v := verification{p: p, ctx: ctx}
	byStream, err := v.inOrder(todo)
	if err != nil {
		v.unreadable(todo, err)
		return
	}
	v.byStream(byStream)
	if v.maxVerified > p.verified {
		p.verified = v.maxVerified
	}
	// An item still pending has been matched; one that somehow was not is
	// retried, never applied unchecked.
	v.unreadable(todo, errors.New("not checked against the event store"))
}

// pendingByPosition returns the pending items sorted by global position.
func pendingByPosition(items []*item) []*item {
	var todo []*item
	for _, it := range items {
		if it.verdict == pending {
			todo = append(todo, it)
		}
	}
	slices.SortStableFunc(todo, func(a, b *item) int { return cmp.Compare(a.rec.Position, b.rec.Position) })
	return todo
}

// inOrder checks todo, sorted by position, by reading the store in global
// order from the position verified last, at most twice len(todo) events,
// and returns the items that read did not reach, for byStream. An error
// means the store could not be read: nothing of todo is settled by it.
func (v *verification) inOrder(todo []*item) ([]*item, error) {
	cursor := v.p.verified
	budget := 2 * len(todo)
	var byStream []*item
	i := 0
	for i < len(todo) {
		it := todo[i]
		if it.rec.Position <= cursor {
			byStream = append(byStream, it)
			i++
			continue
		}
		if budget <= 0 {
			byStream = append(byStream, todo[i:]...)
			break
		}
		recs, err := v.readAll(cursor, min(len(todo)-i, budget))
		if err != nil {
			return nil, fmt.Errorf("event store read after position %d: %w", cursor, err)
		}
		budget -= len(recs)
		if len(recs) == 0 {
			// Nothing after cursor: every position still to check is
			// past the store's last event.
			for _, rest := range todo[i:] {
				v.missing(rest, "its position is past the event store's last event")
			}
			break
		}
		i, cursor = v.matchRead(todo, i, recs)
	}
	return byStream, nil
}

// readAll reads up to limit events after position after in global order:
// from the store's memory of its latest commits when it holds them
// (events.RecentReader), else from the store. A short read from memory is
// no sign of the store's end: inOrder reads on from the last event.
func (v *verification) readAll(after uint64, limit int) ([]events.Recorded, error) {
	if rr, ok := v.p.store.(events.RecentReader); ok {
		if recs, ok := rr.ReadRecent(after, limit); ok {
			return recs, nil
		}
	}
	return v.p.store.ReadAll(v.ctx, after, limit)
}

// matchRead matches todo's items from i on that recs, a read in global
// order, reaches, and returns the index of the first item left and the
// position to read on from. When recs reaches none of them, the next item
// is checked by its stream instead.
func (v *verification) matchRead(todo []*item, i int, recs []events.Recorded) (int, uint64) {
	last := recs[len(recs)-1].Position
	at := make(map[uint64]*events.Recorded, len(recs))
	for k := range recs {
		at[recs[k].Position] = &recs[k]
	}
	covered := 0
	for ; i < len(todo) && todo[i].rec.Position <= last; i++ {
		v.match(todo[i], at[todo[i].rec.Position])
		covered++
	}
	cursor := last
	if covered == 0 && i < len(todo) {
		// The batch continues far past what was read (another
		// replica took the events in between): read the next item
		// by its stream, and go on reading in order from there.
		v.byStream([]*item{todo[i]})
		if todo[i].verified {
			cursor = todo[i].rec.Position
		}
		i++
	}
	return i, cursor
}

// verification is the state of one batch's check.
type verification struct {
	p   *Projector
	ctx context.Context
	// head is the store's last position, read once when first needed.
	head    uint64
	headErr error
	gotHead bool
	// maxVerified is the largest position of an event the batch found in
	// the store.
	maxVerified uint64
}

// match checks the item against the store's event at its position (nil:
// none there) and, when they agree, takes the store's copy.
func (v *verification) match(it *item, st *events.Recorded) {
	c := it.rec
	switch {
	case st == nil:
		it.deadLetter(fmt.Errorf("%w: no event of this service at position %d (message: event %s, %s v%d)",
			ErrNotStored, c.Position, c.ID, c.StreamID, c.Version))
		return
	case st.ID != c.ID || st.StreamID != c.StreamID || st.Version != c.Version || st.Position != c.Position:
		it.deadLetter(fmt.Errorf("%w: the store holds event %s (%s v%d) at position %d, the message claims event %s (%s v%d) at position %d",
			ErrNotStored, st.ID, st.StreamID, st.Version, st.Position, c.ID, c.StreamID, c.Version, c.Position))
		return
	}
	it.verified = true
	v.maxVerified = max(v.maxVerified, st.Position)
	if !bytes.Equal(st.Data, c.Data) || st.Type != c.Type || st.SchemaVersion != c.SchemaVersion {
		// The message's body is not the store's: decode the store's.
		v.p.log.Warn("projector: message differs from the stored event; the stored event is applied",
			"event", st.ID, "stream", st.StreamID, "version", st.Version)
		it.payload, it.doc, it.decodeErr = decode(*st)
	}
	it.rec = *st
	switch err := it.decodeErr; {
	case errors.Is(err, events.ErrUnknownVersion):
		it.verdict, it.reason = retry, err
	case err != nil:
		it.deadLetter(err)
	}
}

// byStream checks items by reading their streams from the store, one read
// per stream from the lowest version the items claim.
func (v *verification) byStream(items []*item) {
	groups := map[string][]*item{}
	var order []string
	for _, it := range items {
		if it.verdict != pending || it.verified {
			continue
		}
		s := it.rec.StreamID
		if _, ok := groups[s]; !ok {
			order = append(order, s)
		}
		groups[s] = append(groups[s], it)
	}
	for _, s := range order {
		g := groups[s]
		from := g[0].rec.Version
		for _, it := range g {
			from = min(from, it.rec.Version)
		}
		recs, err := v.p.store.ReadStream(v.ctx, s, from)
		if err != nil && !errors.Is(err, events.ErrStreamNotFound) {
			v.unreadable(g, fmt.Errorf("event store read %s: %w", s, err))
			continue
		}
		at := make(map[uint64]*events.Recorded, len(recs))
		for k := range recs {
			at[recs[k].Version] = &recs[k]
		}
		for _, it := range g {
			if st := at[it.rec.Version]; st != nil {
				v.match(it, st)
				continue
			}
			v.absent(it)
		}
	}
}

// absent decides about an item whose stream lacks its version: forged when
// the store has events past its position, else perhaps not visible yet.
func (v *verification) absent(it *item) {
	if !v.gotHead {
		v.head, v.headErr = v.p.store.Head(v.ctx)
		v.gotHead = true
	}
	c := it.rec
	switch {
	case v.headErr != nil:
		v.unreadable([]*item{it}, fmt.Errorf("event store head: %w", v.headErr))
	case c.Position <= v.head:
		it.deadLetter(fmt.Errorf("%w: stream %s has no version %d (message: event %s at position %d)",
			ErrNotStored, c.StreamID, c.Version, c.ID, c.Position))
	default:
		v.missing(it, fmt.Sprintf("stream %s has no version %d and position %d is past the store's last event, %d",
			c.StreamID, c.Version, c.Position, v.head))
	}
}

// missing retries an item whose event the store may not show yet, and
// dead-letters it after Config.MissingEventDeliveries deliveries.
func (v *verification) missing(it *item, why string) {
	err := fmt.Errorf("%w: event %s: %s", errMissingInStore, it.rec.ID, why)
	if it.d.delivered >= uint64(v.p.cfg.MissingEventDeliveries) {
		it.deadLetter(fmt.Errorf("%w (after %d deliveries)", err, it.d.delivered))
		return
	}
	it.verdict, it.reason = retry, err
}

// unreadable retries items the store could not be asked about.
func (v *verification) unreadable(items []*item, err error) {
	for _, it := range items {
		if it.verdict == pending && !it.verified {
			it.verdict, it.reason = retry, err
		}
	}
}
