package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/icpservice/icp/platform/sqlite"
)

// migrations is the ordered schema history. The file's PRAGMA user_version is
// the number of migrations already applied; Open applies the rest in one
// transaction. Append new steps at the end; never edit a released one.
var migrations = []string{
	// 1: the global log. position is the global order: AUTOINCREMENT so a
	// position is never reused, even after the last row was rolled back or
	// deleted. (stream, version) is unique: one event per stream version.
	// event_id is deliberately not unique: the same id in another stream or
	// at another version is another event (EventStoreDB's rule).
	`CREATE TABLE events (
		position       INTEGER PRIMARY KEY AUTOINCREMENT,
		stream         TEXT    NOT NULL,
		version        INTEGER NOT NULL CHECK (version >= 1),
		event_id       TEXT    NOT NULL,
		type           TEXT    NOT NULL,
		schema_version INTEGER NOT NULL CHECK (schema_version >= 1),
		data           BLOB    NOT NULL,
		metadata       BLOB    NOT NULL,
		recorded_at    INTEGER NOT NULL, -- Unix nanoseconds, UTC
		UNIQUE (stream, version)
	)`,
	// 2: facts about the store as a whole, one row per key (see
	// generation.go).
	`CREATE TABLE meta (
		key   TEXT PRIMARY KEY,
		value TEXT NOT NULL
	) WITHOUT ROWID`,
	// 3: the store's first generation, at random: two stores (or two
	// restores of one backup) never share one.
	`INSERT INTO meta (key, value) VALUES ('generation', lower(hex(randomblob(16))))`,
	// 4: the latest snapshot of each stream's fold (see snapshot.go): a
	// cache kept in the append's transaction, never the source of truth.
	`CREATE TABLE snapshots (
		stream   TEXT    PRIMARY KEY,
		version  INTEGER NOT NULL CHECK (version >= 1),
		event_id TEXT    NOT NULL,
		fold     INTEGER NOT NULL,
		state    BLOB    NOT NULL
	)`,
}

// migrate brings the schema of db up to len(migrations). It refuses a file
// written by a newer release (user_version beyond what this code knows).
func migrate(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: concurrent openers queue here
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	var have int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&have); err != nil {
		return fmt.Errorf("migrate: read schema version: %w", err)
	}
	if have > len(migrations) {
		return sqlite.NewerSchema(have, len(migrations))
	}
	if have == len(migrations) {
		return nil
	}
	for i := have; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migrate to schema version %d: %w", i+1, err)
		}
	}
	// PRAGMA takes no bound parameters; the value is a constant of this code.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
		return fmt.Errorf("migrate: set schema version: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}
