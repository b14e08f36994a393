package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
)

// Versions returns the version the event store holds now for each ICP of ids
// (one call to the store, however many ids). An ICP with no stream is absent
// from the map. The answer is at least as new as every command that returned
// before the call: a copy of an ICP at a lower version (a read model's view)
// is stale, and Current tells what the ICP is now.
func (h *Handler) Versions(ctx context.Context, ids []string) (map[string]uint64, error) {
	streams := make([]string, len(ids))
	for i, id := range ids {
		streams[i] = events.StreamID(id)
	}
	byStream, err := h.store.StreamVersions(ctx, streams)
	if err != nil {
		return nil, err
	}
	out := make(map[string]uint64, len(byStream))
	for i, st := range streams {
		if v, ok := byStream[st]; ok {
			out[ids[i]] = v
		}
	}
	return out, nil
}

// Current returns ICP id as the event store holds it now: known, when not
// nil, is the ICP at an earlier version (from a read model), and only the
// events after it are read and folded onto it; with known nil the whole
// stream is folded. It returns nil and no error when the ICP has no stream.
//
// Errors: an error wrapping events.ErrUnavailable when the store could not be
// read, or when the stream holds an event this release cannot decode (a
// newer release wrote it: the state cannot be told yet, retry later); any
// other error means the stream cannot be folded (corrupt, or known is not an
// earlier state of this stream).
func (h *Handler) Current(ctx context.Context, id string, known *domain.State) (*domain.State, error) {
	from := uint64(0)
	if known != nil {
		from = known.Version + 1
	}
	recs, err := h.store.ReadStream(ctx, events.StreamID(id), from)
	if errors.Is(err, events.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s := known
	for _, r := range recs {
		n, err := events.EvolveRecorded(s, r)
		if errors.Is(err, events.ErrUnknownVersion) {
			return nil, fmt.Errorf("commands: current state of %s: %w: %w", id, events.ErrUnavailable, err)
		}
		if err != nil {
			return nil, fmt.Errorf("commands: current state of %s: %w", id, err)
		}
		s = n
	}
	return s, nil
}
