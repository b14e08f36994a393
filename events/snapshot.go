package events

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/icpservice/icp/domain"
)

// Snapshot is an ICP stream's state as kept beside its events: the fold of
// events 1..Version, encoded with EncodeState by fold domain.FoldVersion Fold.
// EventID is the id of the event at Version: a reader trusts the snapshot
// only while the stream still holds that event at that version.
type Snapshot struct {
	Version uint64
	EventID string
	Fold    int
	State   []byte
}

// Snapshotter is an optional capability of a Store: it keeps, for each
// stream, the latest snapshot written with AppendWithSnapshot. A snapshot is
// a cache of the fold, never the source of truth: a reader that finds none,
// an older one, one of another Fold, or one that does not match the stream
// folds the events instead, and gets the same state.
type Snapshotter interface {
	// AppendWithSnapshot is Append that, when it writes evs, also keeps
	// state (the fold of the stream up to and including evs, by fold
	// version fold) as the stream's snapshot at version expected+len(evs),
	// atomically with the events where the adapter can (the SQLite store
	// does, in the same transaction; EventStoreDB writes it right after).
	// An append answered as a retry of events already stored writes no
	// snapshot where the adapter can tell it is one (SQLite); otherwise it
	// may write again the snapshot already kept at that version and event,
	// which changes nothing a reader sees. A snapshot the adapter fails to
	// keep after the events are stored is not an error of the append: the
	// events are the truth, and the next write keeps one. Errors as for
	// Append.
	AppendWithSnapshot(ctx context.Context, stream string, expected uint64, evs []Proposed, fold int, state []byte) (AppendResult, error)

	// ReadSnapshot returns the stream's latest snapshot; ok false when it
	// has none, or when its state is larger than maxState bytes (a reader
	// never loads more than it asked for).
	ReadSnapshot(ctx context.Context, stream string, maxState int) (snap Snapshot, ok bool, err error)
}

// EncodeState encodes s for a snapshot of fold domain.FoldVersion; a change
// of this encoding is a change of domain.FoldVersion.
func EncodeState(s *domain.State) ([]byte, error) {
	if s == nil {
		return nil, fmt.Errorf("events: encode a nil state")
	}
	return MarshalJSON(s)
}

// DecodeState decodes a snapshot's state written by EncodeState of this fold
// version. Data from the store is untrusted: anything that is not exactly one
// domain.State is an error (the reader then folds the events).
func DecodeState(data []byte) (*domain.State, error) {
	var s domain.State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("events: decode snapshot state: %w", err)
	}
	if s.Version == 0 || s.ICP.ID == "" {
		return nil, fmt.Errorf("events: decode snapshot state: no ICP")
	}
	return &s, nil
}
