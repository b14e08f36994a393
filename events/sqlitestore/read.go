package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/icpservice/icp/events"
)

const selectRecorded = `SELECT position, stream, version, event_id, type, schema_version, data, metadata, recorded_at FROM events `

// ReadStream returns the events of stream with Version >= from, oldest first.
// A stream with no events returns events.ErrStreamNotFound; an existing stream
// read from beyond its end returns no events and no error.
func (s *Store) ReadStream(ctx context.Context, stream string, from uint64) ([]events.Recorded, error) {
	if s.isClosing() {
		return nil, ErrClosed
	}
	if stream == "" {
		return nil, errors.New("sqlitestore: read stream: empty stream name")
	}
	if from > math.MaxInt64 {
		from = math.MaxInt64 // no stream gets there; keeps the bound parameter a valid INTEGER
	}
	// One statement, so one snapshot: the existence check and the events
	// agree. Every stream starts at version 1, so its first event tells
	// whether the stream exists at all.
	rows, err := s.rdb.QueryContext(ctx, selectRecorded+
		`WHERE stream = ? AND (version >= ? OR version = 1) ORDER BY version`, stream, int64(from))
	if err != nil {
		return nil, s.readErr(ctx, "read stream", err)
	}
	recs, err := scanRecorded(rows)
	if err != nil {
		return nil, s.readErr(ctx, "read stream", err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("sqlitestore: read stream %q: %w", stream, events.ErrStreamNotFound)
	}
	if recs[0].Version < from { // the existence marker, not asked for
		recs = recs[1:]
	}
	return recs, nil
}

// ReadAll returns up to limit events with Position > after, in global order.
// limit must be > 0.
//
// Visibility: a reader never sees position N+1 without N. Positions are
// assigned inside the write transaction that inserts them, and write
// transactions are serialised by SQLite's write lock (one writer connection in
// this process; other processes wait for the lock), so every position is
// higher than every position of every transaction committed before it. A read
// is one statement on one WAL snapshot, which holds either all or none of a
// committed transaction. Hence the set of positions a snapshot holds is a
// prefix of the global order.
func (s *Store) ReadAll(ctx context.Context, after uint64, limit int) ([]events.Recorded, error) {
	if s.isClosing() {
		return nil, ErrClosed
	}
	if limit <= 0 {
		return nil, fmt.Errorf("sqlitestore: read all: limit must be > 0, got %d", limit)
	}
	if after >= math.MaxInt64 {
		return nil, nil
	}
	rows, err := s.rdb.QueryContext(ctx, selectRecorded+`WHERE position > ? ORDER BY position LIMIT ?`, int64(after), limit)
	if err != nil {
		return nil, s.readErr(ctx, "read all", err)
	}
	recs, err := scanRecorded(rows)
	if err != nil {
		return nil, s.readErr(ctx, "read all", err)
	}
	return recs, nil
}

func scanRecorded(rows *sql.Rows) ([]events.Recorded, error) {
	defer rows.Close()
	var recs []events.Recorded
	for rows.Next() {
		var (
			r            events.Recorded
			pos, version int64
			recordedAt   int64
		)
		if err := rows.Scan(&pos, &r.StreamID, &version, &r.ID, &r.Type, &r.SchemaVersion, &r.Data, &r.Metadata, &recordedAt); err != nil {
			return nil, err
		}
		r.Position, r.Version = uint64(pos), uint64(version)
		r.Time = time.Unix(0, recordedAt).UTC()
		recs = append(recs, r)
	}
	return recs, rows.Err()
}
