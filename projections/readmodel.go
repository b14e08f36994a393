// Package projections builds the read model from the event stream: the
// projector that consumes the bus, the read model port, its adapters and their
// conformance suite.
package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrNotFound is returned by Get for an id the read model has never seen.
var ErrNotFound = errors.New("icp not found in read model")

// ErrUnavailable wraps errors that mean the read model could not be reached:
// retry later; nothing was applied that was not reported as applied.
var ErrUnavailable = errors.New("read model unavailable")

// ErrRefused is wrapped by errors that mean the read model will never accept
// a view as it is (a document too large or invalid for the engine): retrying
// cannot help. A *RefusedError names the view.
var ErrRefused = errors.New("read model refused the view")

// RefusedError reports the view the read model refused. It wraps ErrRefused.
// A write shared with other callers' views (group commit) fails for all of
// them with the same error: ID and Version say whose view it was.
type RefusedError struct {
	ID      string
	Version uint64
	// Reason says why, in the engine's terms.
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%v: ICP %s v%d: %s", ErrRefused, e.ID, e.Version, e.Reason)
}

// Unwrap lets errors.Is(err, ErrRefused) match.
func (e *RefusedError) Unwrap() error { return ErrRefused }

// RefusedView reports whether err is the read model's refusal of ICP id's
// view (at any version), as opposed to another caller's view of a shared
// write or a failure that may pass.
func RefusedView(err error, id string) bool {
	var re *RefusedError
	return errors.As(err, &re) && re.ID == id
}

// View is one ICP as the read model holds it.
//
// A deleted ICP stays as a tombstone: Deleted true, its Version, Tenant and
// Position kept, so a late redelivery of an older event cannot bring it back.
type View struct {
	ID      string
	Tenant  string
	Version uint64
	// Position is the global position of the ICP's ICPCreated event: lists
	// are ordered by it.
	Position uint64
	Deleted  bool
	// UserIDs are the members: List finds the ICP for these users.
	UserIDs []string
	// Doc is the ICP's JSON in the contract's shape, byte for byte what the
	// API serves (free-form JSON kept exactly). Empty on a tombstone.
	Doc json.RawMessage
	// CreatedBy is the user who created the ICP.
	CreatedBy string
}

// Outcome is the result of one View in an Apply batch.
type Outcome struct {
	// Applied: the view was written.
	Applied bool
	// Stored is the version the read model held for the ICP before the
	// write (0: none). When Applied is false: Stored >= v means the event
	// was already applied (ack it); Stored < v-1 means a gap (fill it).
	Stored uint64
}

// ReadModel is the read model port. Every adapter passes the conformance suite
// in projections/readmodeltest.
type ReadModel interface {
	// Apply writes each view only if the stored version of its ICP is
	// exactly view.Version-1 (no row at all for Version 1): one conditional
	// write per view, never a blind overwrite. Views are applied in slice
	// order, so a batch may hold versions v and v+1 of one ICP. It returns one
	// Outcome per view. When it returns nil, every applied view is durable;
	// on error, nothing in the batch may be assumed applied (callers retry the
	// batch; already-applied views then report Applied false, Stored >= v).
	// A view that breaks the port's rules (ValidateView) is refused before
	// anything of the call is written.
	// Errors: ErrUnavailable, retry later; a *RefusedError (ErrRefused), the
	// named view can never be written as it is; anything else is not known
	// to pass or to last.
	Apply(ctx context.Context, views []View) ([]Outcome, error)

	// Get returns the view of one ICP, tombstones included, from the
	// strongest read the engine offers. ErrNotFound when never seen.
	Get(ctx context.Context, id string) (View, error)

	// List returns the live (not deleted) ICPs of tenant that list user among
	// their members, ordered by Position ascending, starting after the
	// position cursor after (0: from the start), at most limit (limit <= 0:
	// all).
	List(ctx context.Context, tenant, user string, after uint64, limit int) ([]View, error)

	// ListChunk returns the next chunk of the same list: the live ICPs of
	// tenant that list user among their members, ordered by Position
	// ascending, after the position cursor after, at most maxViews of them
	// and at most maxBytes of Doc in all, except that a first view larger
	// than maxBytes is returned alone, so every call that finds a view
	// makes progress. maxViews and maxBytes below 1 count as 1. An empty
	// chunk means that nothing follows the cursor.
	//
	// Each call is one short read that has ended when it returns: no
	// transaction, snapshot or server cursor is held between calls, so a
	// caller may take as long as it likes between two chunks (a slow HTTP
	// client) without holding back the engine (SQLite WAL checkpoints,
	// MongoDB cursors and their memory). Memory per call is bounded by
	// maxBytes plus one document, whatever the length of the list. See
	// EachChunk for what a walk over chunks may include when the read
	// model changes during it.
	ListChunk(ctx context.Context, tenant, user string, after uint64, maxViews, maxBytes int) ([]View, error)

	// WaitFor blocks until the read model holds the ICP id at a version >=
	// version (tombstones count), then returns nil; or returns ctx.Err() when
	// ctx ends first. It must work when the writer is another process: it
	// may use an in-process signal as a hint, but the answer comes from the
	// stored data.
	WaitFor(ctx context.Context, id string, version uint64) error

	// MaxDocBytes is the longest View.Doc the engine stores, with the
	// view's other fields at their largest (100 members of 128 bytes, ids
	// and tenant of 256). Apply may refuse a longer one, so the service
	// refuses a change whose ICP would be longer before recording it.
	MaxDocBytes() int

	// Ping reports whether the read model is reachable now.
	Ping(ctx context.Context) error

	// Close releases the read model. Every later call fails with an error
	// wrapping ErrClosed and ErrUnavailable.
	Close() error
}
