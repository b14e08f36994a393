package sqlitestore

import (
	"context"
	"fmt"

	"github.com/icpservice/icp/events"
)

var _ events.Generations = (*Store)(nil)

// Generation returns the store's generation (see events.Generations): 32
// hex digits, set at random when the file was created and replaced by
// NewGeneration. A copy of the file (a backup) carries the generation it
// had when copied; restore and realign give it a new one.
func (s *Store) Generation(ctx context.Context) (string, error) {
	if s.isClosing() {
		return "", ErrClosed
	}
	var g string
	if err := s.rdb.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'generation'`).Scan(&g); err != nil {
		return "", fmt.Errorf("sqlitestore: read generation: %w", err)
	}
	if err := events.CheckGeneration(g); err != nil || g == "" {
		return "", fmt.Errorf("sqlitestore: the stored generation %q is not valid: %w", g, err)
	}
	return g, nil
}

// NewGeneration stores a fresh random generation and returns it. It
// commits through SQLite's own locking, so it is safe with other
// connections open; callers run it only while no relay publishes (restore
// and realign, with icpd stopped).
func (s *Store) NewGeneration(ctx context.Context) (string, error) {
	if s.isClosing() {
		return "", ErrClosed
	}
	var g string
	err := s.wdb.QueryRowContext(ctx, `INSERT INTO meta (key, value) VALUES ('generation', lower(hex(randomblob(16))))
		ON CONFLICT (key) DO UPDATE SET value = excluded.value RETURNING value`).Scan(&g)
	if err != nil {
		return "", fmt.Errorf("sqlitestore: new generation: %w", err)
	}
	return g, nil
}
