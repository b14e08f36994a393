// Package sqlitestore is the embedded event store: the events.Store port on a
// single SQLite file (pure Go, modernc.org/sqlite), in WAL mode with
// synchronous=FULL so that every acknowledged append has been fsynced.
//
// Writes go through one connection and one writer goroutine that commits
// concurrent appends together (group commit, see writer.go); reads use a
// separate pool of read-only connections and never block the writer.
package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/platform/groupcommit"
	"github.com/icpservice/icp/platform/sqlite"
)

// ErrClosed is returned by every method of a closed Store. It wraps
// events.ErrClosed (and so events.ErrUnavailable).
var ErrClosed = fmt.Errorf("sqlitestore: %w", events.ErrClosed)

// readConns bounds the read-only connections. WAL readers do not block the
// writer or each other; the bound only caps memory and file handles.
const readConns = 8

// Store is an events.Store on a SQLite file. It is safe for concurrent use.
// Several processes may open the same file: SQLite serialises their writers,
// and each process's Follow sees the others' events within PollInterval.
type Store struct {
	opts Options
	wdb  *sql.DB // exactly one connection: the writer's
	rdb  *sql.DB // read-only connections
	// versions is selectVersions, prepared once: StreamVersions runs on
	// every read the API serves (BenchmarkStreamVersions).
	versions *sql.Stmt

	reqs        chan *groupcommit.Request[*appendReq, appendAns]
	closing     chan struct{} // closed by Close: the writer commits what is queued and exits
	written     chan struct{} // closed when the writer goroutine has finished
	note        notifier
	checkpoints *sqlite.Checkpointer
	// head is the last position this process's writer committed (0: none
	// yet). Another process sharing the file may have committed more.
	head atomic.Uint64
	tail tail

	closeOnce sync.Once
	closeErr  error
}

var _ events.Store = (*Store)(nil)

// checkpointEvery is how often the WAL is copied into the database file.
const checkpointEvery = 200 * time.Millisecond

// Open opens (creating it if needed) the event store in the SQLite file at
// path, applies any pending schema migrations and starts the writer. It
// refuses a file whose schema is newer than this code.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlitestore: empty path")
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	wdb, err := openWriter(ctx, path, opts.BusyTimeout)
	if err != nil {
		return nil, err
	}
	rdb, err := openReaders(ctx, path, opts.BusyTimeout)
	if err != nil {
		wdb.Close()
		return nil, err
	}

	versions, err := rdb.PrepareContext(ctx, selectVersions)
	if err != nil {
		wdb.Close()
		rdb.Close()
		return nil, fmt.Errorf("sqlitestore: open %s for reading: %w", path, err)
	}
	s := &Store{
		opts:     opts,
		wdb:      wdb,
		rdb:      rdb,
		versions: versions,
		reqs:     make(chan *groupcommit.Request[*appendReq, appendAns], opts.QueueSize),
		closing:  make(chan struct{}),
		written:  make(chan struct{}),
		note:     newNotifier(),
	}
	s.checkpoints, err = sqlite.StartCheckpointer(path, opts.BusyTimeout, checkpointEvery, nil)
	if err != nil {
		wdb.Close()
		rdb.Close()
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	w, err := newWriter(s)
	if err != nil {
		s.checkpoints.Close()
		wdb.Close()
		rdb.Close()
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	go w.run()
	return s, nil
}

// openWriter opens the writer's connection, durable (WAL, synchronous=FULL,
// checked) and migrated. The writer never checkpoints: s.checkpoints does,
// off its path.
func openWriter(ctx context.Context, path string, busy time.Duration) (*sql.DB, error) {
	wdb, err := sqlite.Open(path, sqlite.Settings{Role: sqlite.Writer, BusyTimeout: busy}, 1)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	if err := sqlite.CheckDurable(ctx, wdb); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, sqlite.Classify(err))
	}
	if err := migrate(ctx, wdb); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, sqlite.Classify(err))
	}
	return wdb, nil
}

// openReaders opens the pool of read-only connections. 256 KiB of cache
// per reader: a read connection drops its cache whenever a commit happened
// since its last read, so under writes a larger one only holds memory.
func openReaders(ctx context.Context, path string, busy time.Duration) (*sql.DB, error) {
	rdb, err := sqlite.Open(path, sqlite.Settings{Role: sqlite.Reader, BusyTimeout: busy, CacheKiB: 256}, readConns)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: open %s for reading: %w", path, err)
	}
	if err := rdb.PingContext(ctx); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("sqlitestore: open %s for reading: %w", path, err)
	}
	return rdb, nil
}

// Close stops accepting appends, commits those already queued (their callers
// get their answers), waits for the writer and closes the file. Follow calls
// return ErrClosed. Calling Close again returns the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing) // releases Appends blocked on a full queue
		<-s.written
		s.closeErr = errors.Join(s.checkpoints.Close(), s.wdb.Close(), s.versions.Close(), s.rdb.Close())
	})
	return s.closeErr
}

func (s *Store) isClosing() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// Ping reports whether the file can be read now.
func (s *Store) Ping(ctx context.Context) error {
	if s.isClosing() {
		return ErrClosed
	}
	var one int
	if err := s.rdb.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return s.readErr(ctx, "ping", err)
	}
	return nil
}

// Head returns the position of the last committed event (0 when empty).
func (s *Store) Head(ctx context.Context) (uint64, error) {
	if s.isClosing() {
		return 0, ErrClosed
	}
	var head int64
	if err := s.rdb.QueryRowContext(ctx, "SELECT COALESCE(MAX(position), 0) FROM events").Scan(&head); err != nil {
		return 0, s.readErr(ctx, "head", err)
	}
	return uint64(head), nil
}

// readErr wraps a failed read: ErrClosed when the store was closed meanwhile,
// otherwise an error wrapping events.ErrUnavailable (and the context's error
// when ctx ended).
func (s *Store) readErr(ctx context.Context, op string, err error) error {
	if s.isClosing() {
		return ErrClosed
	}
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		err = fmt.Errorf("%w (%w)", ctxErr, err)
	}
	return fmt.Errorf("sqlitestore: %s: %w: %w", op, events.ErrUnavailable, err)
}
