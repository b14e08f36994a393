package projections

import (
	"context"
	"fmt"
)

// EachChunk walks a member's list chunk by chunk: it calls ListChunk from the
// position cursor after (0: the start of the list), then from the Position of
// the last view of each chunk, and hands each non-empty chunk to fn, until a
// chunk comes back empty (it returns nil), fn returns an error (that error)
// or a read fails (that error; fn has then been called for every chunk
// before it). fn is called after the chunk's read has ended, so it may be
// slow; it must not keep the chunk's views beyond its return if the walk is
// to stay flat in memory.
//
// What a walk holds when the read model changes during it. Each chunk is a
// consistent read of its own, but the walk as a whole is not one snapshot:
//   - Views come in Position order, each ICP at most once (an ICP's Position
//     never changes and the cursor only moves forward).
//   - An ICP that is live and lists the member for the whole walk is
//     included, at the version its chunk read.
//   - An ICP that is created, deleted, or gains or loses the member during
//     the walk may or may not be included: it is when the chunk that reaches
//     its Position is read while it is live and lists the member, at the
//     version it had then. So a walk may include an ICP created after an ICP
//     it left out because it had been deleted in the meantime, and an ICP
//     applied late with a Position the cursor has passed (the projector's
//     replicas apply ICPs in parallel) is left out.
//
// A walk that returns nil therefore holds everything a single read at its
// start would have held except ICPs changed during it, and nothing that was
// never live for the member.
func EachChunk(ctx context.Context, rm ReadModel, tenant, user string, after uint64, maxViews, maxBytes int, fn func([]View) error) error {
	for {
		chunk, err := rm.ListChunk(ctx, tenant, user, after, maxViews, maxBytes)
		if err != nil {
			return err
		}
		if len(chunk) == 0 {
			return nil
		}
		next := chunk[len(chunk)-1].Position
		if next <= after { // an adapter that does not move forward would loop for ever
			return fmt.Errorf("projections: a list chunk after position %d ended at position %d", after, next)
		}
		if err := fn(chunk); err != nil {
			return err
		}
		after = next
	}
}
