package sqlitestore

import (
	"context"
	"database/sql"
	"errors"

	"github.com/icpservice/icp/events"
)

// Snapshots (events.Snapshotter). The table snapshots holds one row per
// stream: the fold of its events up to version, written in the transaction
// of the append that reached that version, so the row is never ahead of the
// events. A stream written without a snapshot (by Append) keeps its older
// row, which a reader completes with the events after it.

var _ events.Snapshotter = (*Store)(nil)

// snapshotReq is the snapshot an AppendWithSnapshot asks to keep.
type snapshotReq struct {
	fold  int
	state []byte
}

const upsertSnapshot = `INSERT INTO snapshots (stream, version, event_id, fold, state) VALUES (?, ?, ?, ?, ?)
	ON CONFLICT (stream) DO UPDATE SET version = excluded.version, event_id = excluded.event_id,
		fold = excluded.fold, state = excluded.state
	WHERE excluded.version > snapshots.version`

// AppendWithSnapshot is Append that also keeps state as the stream's
// snapshot at the version the append reaches, in the same transaction (see
// events.Snapshotter). The caller leaves state alone from the call on, as it
// does the events' bytes.
func (s *Store) AppendWithSnapshot(ctx context.Context, stream string, expected uint64, evs []events.Proposed, fold int, state []byte) (events.AppendResult, error) {
	if len(state) == 0 {
		return events.AppendResult{}, events.InvalidAppend("sqlitestore", stream, []error{errors.New("empty snapshot state")})
	}
	return s.append(ctx, stream, expected, evs, &snapshotReq{fold: fold, state: state})
}

// keepSnapshot writes r's snapshot, if any, at version v, the version its
// events just reached inside the open transaction.
func (w *writer) keepSnapshot(ctx context.Context, st *stmts, r *appendReq, v uint64) error {
	if r.snap == nil {
		return nil
	}
	last := r.evs[len(r.evs)-1].ID
	if _, err := st.snapshot.ExecContext(ctx, r.stream, int64(v), last, r.snap.fold, r.snap.state); err != nil {
		return w.stmtErr(r, "keep snapshot", err)
	}
	return nil
}

// ReadSnapshot returns stream's latest snapshot (see events.Snapshotter). A
// state larger than maxState is not read at all.
func (s *Store) ReadSnapshot(ctx context.Context, stream string, maxState int) (events.Snapshot, bool, error) {
	if s.isClosing() {
		return events.Snapshot{}, false, ErrClosed
	}
	var (
		snap  events.Snapshot
		v     int64
		size  int64
		state []byte
	)
	err := s.rdb.QueryRowContext(ctx, `SELECT version, event_id, fold, length(state),
		CASE WHEN length(state) <= ? THEN state END FROM snapshots WHERE stream = ?`, maxState, stream).
		Scan(&v, &snap.EventID, &snap.Fold, &size, &state)
	if errors.Is(err, sql.ErrNoRows) {
		return events.Snapshot{}, false, nil
	}
	if err != nil {
		return events.Snapshot{}, false, s.readErr(ctx, "read snapshot", err)
	}
	if v < 1 || size > int64(maxState) || state == nil {
		return events.Snapshot{}, false, nil
	}
	snap.Version, snap.State = uint64(v), state
	return snap, true, nil
}
