package commands

// How a write learns the ICP it decides on, in time and memory that do not
// grow with the ICP's history (BenchmarkPatchByHistory).
//
// Each update and delete appends, with its events, a snapshot of the ICP's
// state after them (events.Snapshotter; the SQLite store keeps it in the
// append's transaction). A load reads that snapshot and only the events from
// its version on, and folds those onto it. The snapshot is a cache of the
// fold and nothing else: it is used only when its fold version is
// domain.FoldVersion and the stream still holds the event the snapshot names
// at the snapshot's version; otherwise, or when the store keeps no
// snapshots, the load folds the whole stream a page at a time, and the next
// write stores a fresh snapshot. Either way the state is exactly the fold of
// the stream (TestLoadedStateIsTheFold), and the append's expected version
// still guards the decision against a concurrent write.
//
// Deciding against a state held elsewhere was weighed and refused: the read
// model lags behind the store and is another component's data, and a state
// kept in this process's memory is lost on restart and wrong with a second
// writer process. A snapshot in the store survives both, and a change of the
// fold invalidates it by version instead of by migration.

import (
	"context"
	"errors"
	"fmt"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
)

// loader reads what a decision on a stream needs.
type loader func(ctx context.Context, stream string) (*current, error)

// maxSnapshotBytes bounds the snapshot state a load reads from the store:
// a larger one (which this code never writes: an ICP's document is bounded
// by the request limits) is ignored and the stream folded instead.
const maxSnapshotBytes = 64 << 20

// foldPage is how many events a fold reads at a time, so that folding a
// long stream holds one page of events in memory, not the whole history.
const foldPage = 256

// loadFirst reads only the stream's first event: all an Idempotency-Key
// retry of a create needs (whether the stream exists, and the create it
// holds). The current it returns has no state.
func (h *Handler) loadFirst(ctx context.Context, stream string) (*current, error) {
	recs, err := h.store.ReadStreamPage(ctx, stream, 1, 1)
	if errors.Is(err, events.ErrStreamNotFound) || (err == nil && len(recs) == 0) {
		return &current{}, nil
	}
	if err != nil {
		return nil, err
	}
	first := recs[0]
	return &current{first: &first, version: first.Version, lastPosition: first.Position}, nil
}

// loadState returns the stream's state: from its snapshot and the events
// after it when the store keeps a usable one, else by folding the whole
// stream. A stream that does not exist is an empty current.
func (h *Handler) loadState(ctx context.Context, stream string) (*current, error) {
	if ss, ok := h.store.(events.Snapshotter); ok {
		snap, ok, err := ss.ReadSnapshot(ctx, stream, maxSnapshotBytes)
		if err != nil {
			return nil, err
		}
		if ok && snap.Fold == domain.FoldVersion {
			cur, usable, err := h.fromSnapshot(ctx, stream, snap)
			if err != nil || usable {
				return cur, err
			}
		}
	}
	return h.foldFrom(ctx, stream, nil, 1)
}

// fromSnapshot completes snap with the events after it. usable is false when
// the snapshot does not match the stream (its state does not decode, or the
// stream no longer holds its event at its version): the caller folds.
func (h *Handler) fromSnapshot(ctx context.Context, stream string, snap events.Snapshot) (cur *current, usable bool, err error) {
	s, err := events.DecodeState(snap.State)
	if err != nil || s.Version != snap.Version || events.StreamID(s.ICP.ID) != stream {
		return nil, false, nil
	}
	// Read from the snapshot's own event: it proves the snapshot belongs
	// to this history and gives the position of the last event.
	recs, err := h.store.ReadStreamPage(ctx, stream, snap.Version, 1)
	if errors.Is(err, events.ErrStreamNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if len(recs) != 1 || recs[0].Version != snap.Version || recs[0].ID != snap.EventID {
		return nil, false, nil
	}
	cur, err = h.foldFrom(ctx, stream, &current{state: s, version: s.Version, lastPosition: recs[0].Position}, snap.Version+1)
	return cur, err == nil, err
}

// foldFrom folds the events of stream from version from onto base (nil: from
// no state), a page at a time.
func (h *Handler) foldFrom(ctx context.Context, stream string, base *current, from uint64) (*current, error) {
	cur := base
	if cur == nil {
		cur = &current{}
	}
	for {
		recs, err := h.store.ReadStreamPage(ctx, stream, from, foldPage)
		if errors.Is(err, events.ErrStreamNotFound) {
			return &current{}, nil
		}
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			s, err := events.EvolveRecorded(cur.state, r)
			if err != nil {
				return nil, fmt.Errorf("commands: fold %s: %w", stream, err)
			}
			cur.state, cur.version, cur.lastPosition = s, r.Version, r.Position
		}
		if len(recs) < foldPage {
			return cur, nil
		}
		from = recs[len(recs)-1].Version + 1
	}
}

// snapshotOf returns the snapshot to keep with an append of proposed onto
// state at version expected: the fold of the events as the store will hold
// them (decoded from their bytes, as a load would), encoded. Nil for a
// create (its first event is all a load reads) and when the store keeps no
// snapshots.
func (h *Handler) snapshotOf(state *domain.State, expected uint64, proposed []events.Proposed) ([]byte, error) {
	if _, ok := h.store.(events.Snapshotter); !ok || state == nil {
		return nil, nil
	}
	s := state
	for i, p := range proposed {
		// An update or a delete leaves CreatedPosition as it is, the only
		// part of the state that a position not known yet would set.
		n, err := events.EvolveRecorded(s, events.Recorded{ID: p.ID, Type: p.Type, SchemaVersion: p.SchemaVersion,
			Data: p.Data, Metadata: p.Metadata, Version: expected + uint64(i) + 1})
		if err != nil {
			return nil, fmt.Errorf("commands: fold proposed events: %w", err)
		}
		s = n
	}
	return events.EncodeState(s)
}
