// Package sqlite is the one home of what the service knows about the SQLite
// engine (modernc.org/sqlite, pure Go) below the stores: how a connection is
// set up (Settings, DSN, Open), that a writer really is durable
// (CheckDurable), WAL checkpoints off the writer's path (Checkpointer) and
// what can be wrong with a file found in the data directory (Classify,
// ErrNotDatabase, ErrNewerSchema).
//
// The event store (events/sqlitestore), the read model and its rebuild
// builder (projections/sqlitemodel) and the operator's tools (cmd/icpctl)
// open their files through it, so a connection's pragmas are chosen in one
// place and differ between them only by the Settings they pass.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Role is what a connection is for; it decides the pragmas that are not a
// matter of tuning.
type Role int

const (
	// Writer is the one connection that writes a store: transactions take
	// the write lock when they begin (BEGIN IMMEDIATE), the journal is a
	// WAL, and the connection never checkpoints (a Checkpointer does, off
	// its path).
	Writer Role = iota
	// Reader is a connection of a read pool: it can never write
	// (query_only).
	Reader
	// Plain sets nothing but the busy timeout and the cache: for a
	// Checkpointer, a backup, or a file whose journal mode is not this
	// connection's to choose.
	Plain
	// ReadOnlyFile opens the file read-only (mode=ro): a closed copy that
	// must not be changed, not even by a recovery.
	ReadOnlyFile
)

// Sync is the writer's synchronous setting.
type Sync int

const (
	// SyncFull (the default): a commit is durable when it returns; the
	// event store and the live read model need nothing less.
	SyncFull Sync = iota
	// SyncNormal: commits are not flushed one by one; a crash may lose
	// the latest of them, never corrupt the file (WAL). For writes a
	// later durable commit covers (the rebuild's shadow tables).
	SyncNormal
)

// Settings are how one connection (or pool) of a file is set up. The zero
// value is a durable Writer with SQLite's own defaults for the rest.
type Settings struct {
	Role Role
	// Sync applies to a Writer only.
	Sync Sync
	// BusyTimeout is how long a statement waits for a lock another
	// connection holds before failing SQLITE_BUSY (0: it fails at once).
	BusyTimeout time.Duration
	// CacheKiB is the page cache of each connection, in KiB (0: SQLite's
	// default). Each cached page costs about twice its size of the
	// process's memory: the driver's allocator rounds a page and its
	// header up to a power of two.
	CacheKiB int
	// TempMemory keeps statement journals and temporary tables in memory
	// rather than in temporary files.
	TempMemory bool
	// NoMmap turns the memory map off, so that pages read through it do
	// not count in the process's resident memory.
	NoMmap bool
}

// DSN is the data source name of path for the "sqlite" driver with the
// pragmas of s. The path is made absolute and written as a file: URI, so
// that no character of it is read as a URI parameter.
func DSN(path string, s Settings) (string, error) {
	if path == "" {
		return "", errors.New("sqlite: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("sqlite: path %q: %w", path, err)
	}
	uri := (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
	if q := s.params().Encode(); q != "" {
		uri += "?" + q
	}
	return uri, nil
}

// params are the driver's parameters for s. The driver runs busy_timeout
// first, then the other pragmas.
func (s Settings) params() url.Values {
	q := url.Values{}
	if s.BusyTimeout > 0 {
		q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", s.BusyTimeout.Milliseconds()))
	}
	switch s.Role {
	case Writer:
		q.Set("_txlock", "immediate")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "wal_autocheckpoint(0)")
		if s.Sync == SyncNormal {
			q.Add("_pragma", "synchronous(NORMAL)")
		} else {
			q.Add("_pragma", "synchronous(FULL)")
		}
	case Reader:
		q.Add("_pragma", "query_only(1)")
	case ReadOnlyFile:
		q.Set("mode", "ro")
	}
	if s.CacheKiB > 0 {
		q.Add("_pragma", fmt.Sprintf("cache_size(-%d)", s.CacheKiB))
	}
	if s.TempMemory {
		q.Add("_pragma", "temp_store(MEMORY)")
	}
	if s.NoMmap {
		q.Add("_pragma", "mmap_size(0)")
	}
	return q
}

// Open returns a pool of at most conns connections to path with the
// settings s; a Writer always gets exactly one, kept open for the pool's
// life (its pragmas and prepared statements live on it). A Reader pool's
// connections keep the statements of their queries (stmtcache.go). Nothing is read
// before the first use: errors about the file itself come then (see
// Classify).
func Open(path string, s Settings, conns int) (*sql.DB, error) {
	dsn, err := DSN(path, s)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if s.Role == Reader { // see stmtcache.go
		drv := db.Driver()
		db.Close()
		db = sql.OpenDB(&cachingConnector{dsn: dsn, drv: drv})
	}
	if s.Role == Writer || conns < 1 {
		conns = 1
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	if conns == 1 {
		db.SetConnMaxLifetime(0)
		db.SetConnMaxIdleTime(0)
	}
	return db, nil
}

// CheckDurable makes sure a Writer's connection really got WAL mode and
// synchronous=FULL: without them an acknowledged commit could be lost on
// power failure. Its error is the file's (see Classify).
func CheckDurable(ctx context.Context, db *sql.DB) error {
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if mode != "wal" {
		return fmt.Errorf("journal_mode is %q, want wal", mode)
	}
	var sync int
	if err := db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		return err
	}
	if sync != 2 { // FULL
		return fmt.Errorf("synchronous is %d, want 2 (FULL)", sync)
	}
	return nil
}
