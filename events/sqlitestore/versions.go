package sqlitestore

import (
	"context"
	"strings"
)

// versionsBatch is how many streams one statement of StreamVersions asks
// for: well inside SQLite's limit on bound parameters, and large enough
// that a page of a list is one statement.
const versionsBatch = 500

// StreamVersions returns the version of the last event of each stream that
// has events. Each batch of streams is one statement, answered from the
// (stream, version) index without reading any event's data.
func (s *Store) StreamVersions(ctx context.Context, streams []string) (map[string]uint64, error) {
	if s.isClosing() {
		return nil, ErrClosed
	}
	out := make(map[string]uint64, len(streams))
	args := make([]any, 0, min(len(streams), versionsBatch))
	for start := 0; start < len(streams); start += versionsBatch {
		args = args[:0]
		for _, st := range streams[start:min(start+versionsBatch, len(streams))] {
			if st != "" {
				args = append(args, st)
			}
		}
		if len(args) == 0 {
			continue
		}
		if err := s.streamVersions(ctx, args, out); err != nil {
			return nil, s.readErr(ctx, "stream versions", err)
		}
	}
	return out, nil
}

func (s *Store) streamVersions(ctx context.Context, streams []any, out map[string]uint64) error {
	q := `SELECT stream, MAX(version) FROM events WHERE stream IN (?` +
		strings.Repeat(",?", len(streams)-1) + `) GROUP BY stream`
	rows, err := s.rdb.QueryContext(ctx, q, streams...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			stream  string
			version int64
		)
		if err := rows.Scan(&stream, &version); err != nil {
			return err
		}
		out[stream] = uint64(version)
	}
	return rows.Err()
}
