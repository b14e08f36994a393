package sqlitemodel

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/icpservice/icp/platform/sqlite"
	"github.com/icpservice/icp/projections"
)

// migrations are applied in order at Open; PRAGMA user_version counts how
// many have been applied to the file. Append only: never edit a released one.
var migrations = []string{
	// 1: the views and the membership index that List reads.
	`CREATE TABLE icps (
		id         TEXT PRIMARY KEY,
		tenant     TEXT NOT NULL,
		version    INTEGER NOT NULL CHECK (version >= 1),
		position   INTEGER NOT NULL,
		deleted    INTEGER NOT NULL DEFAULT 0,
		created_by TEXT NOT NULL,
		user_ids   TEXT NOT NULL, -- JSON array of member ids, in their order
		doc        BLOB            -- the ICP's JSON, byte for byte; NULL on a tombstone
	);
	CREATE TABLE icp_members (
		tenant   TEXT NOT NULL,
		user_id  TEXT NOT NULL,
		position INTEGER NOT NULL,
		id       TEXT NOT NULL,
		PRIMARY KEY (tenant, user_id, position, id)
	) WITHOUT ROWID;`,
}

// migrate brings the schema to the latest version inside one IMMEDIATE
// transaction, so two processes opening the same new file cannot both
// create it. A file written by a newer release (more migrations than this
// code knows) is refused rather than misread.
func migrate(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: the write DSN sets _txlock
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	var have int
	if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&have); err != nil {
		return err
	}
	if have > len(migrations) {
		return fmt.Errorf("sqlitemodel: %w", sqlite.NewerSchema(have, len(migrations)))
	}
	for i := have; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("sqlitemodel: migration %d: %w", i+1, err)
		}
	}
	if have < len(migrations) {
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, len(migrations))); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// storedForm is how the icps table stores a view's tombstone flag and
// document: deleted 1 and a NULL doc for a tombstone, 0 and the document
// byte for byte otherwise.
func storedForm(v projections.View) (deleted int, doc []byte) {
	if v.Deleted {
		return 1, nil
	}
	return 0, v.Doc
}
