package sqlitestore

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/icpservice/icp/events"
)

const selectRecorded = `SELECT position, stream, version, event_id, type, schema_version, data, metadata, recorded_at FROM events `

// ReadStream returns the events of stream with Version >= from, oldest first.
// A stream with no events returns events.ErrStreamNotFound; an existing stream
// read from beyond its end returns no events and no error.
func (s *Store) ReadStream(ctx context.Context, stream string, from uint64) ([]events.Recorded, error) {
	return s.readStream(ctx, stream, from, -1)
}

// ReadStreamPage returns up to limit events of stream with Version >= from,
// oldest first (see events.Store).
func (s *Store) ReadStreamPage(ctx context.Context, stream string, from uint64, limit int) ([]events.Recorded, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("sqlitestore: read stream page: limit must be > 0, got %d", limit)
	}
	return s.readStream(ctx, stream, from, limit)
}

// readStream reads up to limit events of stream from version from (limit
// -1: all).
func (s *Store) readStream(ctx context.Context, stream string, from uint64, limit int) ([]events.Recorded, error) {
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
	// whether the stream exists at all. Two index seeks, one for that
	// marker and one for the events from `from` on: a single condition
	// "version >= ? OR version = 1" walked every index entry of the stream
	// below `from`, so a read of a long stream's tail grew with its history
	// (BenchmarkPatchByHistory in commands).
	rows := limit
	if limit > 0 {
		rows++ // room for the existence marker
	}
	recs, err := s.queryRecorded(ctx, 0, `SELECT * FROM (`+selectRecorded+`WHERE stream = ?1 AND version = 1 AND ?2 > 1
		UNION ALL SELECT * FROM (`+selectRecorded+`WHERE stream = ?1 AND version >= ?2 ORDER BY version LIMIT ?3))`,
		stream, int64(from), rows)
	if err != nil {
		return nil, s.readErr(ctx, "read stream", err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("sqlitestore: read stream %q: %w", stream, events.ErrStreamNotFound)
	}
	// The existence marker, not asked for: the compound select has no
	// outer ORDER BY (it would sort the whole read in a temporary tree), so
	// it is looked for at either end.
	if recs[0].Version < from {
		recs = recs[1:]
	} else if n := len(recs); n > 1 && recs[n-1].Version < from {
		recs = recs[:n-1]
	}
	if limit > 0 && len(recs) > limit {
		recs = recs[:limit]
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
	// The limit is applied here, as rows are read (position is the rowid:
	// rows come in its order, one step each), not bound as LIMIT ?: a
	// statement whose LIMIT value changes is prepared again by SQLite, and
	// the projector's check reads a batch's size, which changes with every
	// batch (BenchmarkReadAll/page=16).
	recs, err := s.queryRecorded(ctx, limit, selectRecorded+`WHERE position > ? ORDER BY position`, int64(after))
	if err != nil {
		return nil, s.readErr(ctx, "read all", err)
	}
	return recs, nil
}

// queryRecorded runs a query of selectRecorded on a read connection and
// returns at most limit of its rows (0: all), the first ones.
//
// It reads the driver's rows directly instead of through sql.Rows.Scan: Scan
// copied every event's data and metadata a second time and converted each
// value through reflection, which measured a third of the cost of reading
// the log (BenchmarkReadAll), the larger half of a rebuild's work. The
// driver's values are fresh for every row, so they are kept as they are.
func (s *Store) queryRecorded(ctx context.Context, limit int, query string, args ...any) ([]events.Recorded, error) {
	conn, err := s.rdb.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	named := make([]driver.NamedValue, len(args))
	for i, a := range args {
		v, err := driver.DefaultParameterConverter.ConvertValue(a)
		if err != nil {
			return nil, err
		}
		named[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	var recs []events.Recorded
	err = conn.Raw(func(dc any) error {
		q, ok := dc.(driver.QueryerContext)
		if !ok {
			return fmt.Errorf("driver connection %T cannot query", dc)
		}
		rows, err := q.QueryContext(ctx, query, named)
		if err != nil {
			return err
		}
		defer rows.Close()
		row := make([]driver.Value, 9)
		for limit <= 0 || len(recs) < limit {
			if err := rows.Next(row); err != nil {
				if err == io.EOF {
					return nil
				}
				return err
			}
			r, err := recordedFromRow(row)
			if err != nil {
				return err
			}
			if recs == nil {
				recs = make([]events.Recorded, 0, max(1, min(limit, maxPrealloc)))
			}
			recs = append(recs, r)
		}
		return nil
	})
	return recs, err
}

// maxPrealloc bounds the room queryRecorded makes ahead of the rows once the
// first one is in, so that a read with a large limit that finds a few rows
// allocates little (and one that finds none, nothing).
const maxPrealloc = 1024

// recordedFromRow converts one row of selectRecorded, as the driver gives
// it: INTEGER columns as int64, TEXT as string, BLOB as []byte. A value of
// another type (a row no release of this store wrote) is an error.
func recordedFromRow(row []driver.Value) (events.Recorded, error) {
	var (
		r   events.Recorded
		bad = -1
	)
	integer := func(i int) int64 {
		v, ok := row[i].(int64)
		if !ok && bad < 0 {
			bad = i
		}
		return v
	}
	text := func(i int) string {
		v, ok := row[i].(string)
		if !ok && bad < 0 {
			bad = i
		}
		return v
	}
	blob := func(i int) []byte {
		switch v := row[i].(type) {
		case []byte:
			return v
		case string: // a blob column given text: the same bytes
			return []byte(v)
		}
		if bad < 0 {
			bad = i
		}
		return nil
	}
	r.Position = uint64(integer(0))
	r.StreamID = text(1)
	r.Version = uint64(integer(2))
	r.ID = text(3)
	r.Type = text(4)
	r.SchemaVersion = int(integer(5))
	r.Data = blob(6)
	r.Metadata = blob(7)
	r.Time = time.Unix(0, integer(8)).UTC()
	if bad >= 0 {
		return events.Recorded{}, fmt.Errorf("column %d of the event at position %d holds %T", bad, r.Position, row[bad])
	}
	return r, nil
}

// ReadAllByStream returns up to limit events with Position <= to whose
// (stream, version) sorts after (afterStream, afterVersion), ordered by
// stream (bytewise) and version: every stream's events together, oldest
// first. Paging on the last event's stream and version reads each event of
// the prefix up to to exactly once, since nothing committed later can get
// a position at or below to (see ReadAll's visibility). A replay folds each
// ICP in one go this way, instead of holding the state of every ICP whose
// stream is not finished (projections/rebuild). limit must be > 0.
func (s *Store) ReadAllByStream(ctx context.Context, afterStream string, afterVersion, to uint64, limit int) ([]events.Recorded, error) {
	if s.isClosing() {
		return nil, ErrClosed
	}
	if limit <= 0 {
		return nil, fmt.Errorf("sqlitestore: read all by stream: limit must be > 0, got %d", limit)
	}
	to, afterVersion = min(to, math.MaxInt64), min(afterVersion, math.MaxInt64)
	// The row value comparison walks the (stream, version) unique index.
	recs, err := s.queryRecorded(ctx, limit, selectRecorded+
		`WHERE (stream, version) > (?, ?) AND position <= ? ORDER BY stream, version LIMIT ?`, afterStream, int64(afterVersion), int64(to), limit)
	if err != nil {
		return nil, s.readErr(ctx, "read all by stream", err)
	}
	return recs, nil
}
