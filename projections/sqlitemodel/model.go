// Package sqlitemodel is the read model on a SQLite file: the embedded
// default. It passes the conformance suite in projections/readmodeltest.
//
// Durability: the file runs in WAL mode with synchronous=FULL, so an Apply
// that returned nil has been fsynced. Concurrent Apply calls are coalesced
// by one writer goroutine into one transaction (group commit: one fsync for
// many callers). Reads use their own connections and see every committed
// write, whichever process made it.
//
// Group commit (platform/groupcommit; database/sql has nothing like it)
// because one commit per call caps SQLite near the fsync rate:
// BenchmarkApplyConcurrent measures it (docs/performance.md). Connection
// settings, checkpoints and file faults are platform/sqlite's.
package sqlitemodel

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icpservice/icp/platform/sqlite"
	"github.com/icpservice/icp/projections"
)

// Options tune the read model. The zero value is valid.
type Options struct {
	// PollInterval is how often WaitFor re-reads the stored version, so that
	// writes by another process are seen (default 100ms). Writes by this
	// process wake waiters at once.
	PollInterval time.Duration
	// MaxBatch caps the views written in one group-commit transaction
	// (default 2048).
	MaxBatch int
	// MaxDocBytes is the largest document Apply accepts (default
	// DefaultMaxDocBytes); a larger one is refused with a
	// *projections.RefusedError.
	MaxDocBytes int
	// ReadConns is the size of the read connection pool (default 4).
	ReadConns int
	// BusyTimeout is how long a statement waits for a lock held by another
	// connection or process (default 5s).
	BusyTimeout time.Duration
}

func (o *Options) withDefaults() (Options, error) {
	var problems []string
	if o.PollInterval < 0 {
		problems = append(problems, "PollInterval must not be negative")
	}
	if o.MaxBatch < 0 {
		problems = append(problems, "MaxBatch must not be negative")
	}
	if o.MaxDocBytes < 0 {
		problems = append(problems, "MaxDocBytes must not be negative")
	}
	if o.ReadConns < 0 {
		problems = append(problems, "ReadConns must not be negative")
	}
	if o.BusyTimeout < 0 {
		problems = append(problems, "BusyTimeout must not be negative")
	}
	if len(problems) > 0 {
		return Options{}, fmt.Errorf("sqlitemodel: invalid options: %s", strings.Join(problems, "; "))
	}
	n := *o
	if n.PollInterval == 0 {
		n.PollInterval = 100 * time.Millisecond
	}
	if n.MaxBatch == 0 {
		n.MaxBatch = 2048
	}
	if n.MaxDocBytes == 0 {
		n.MaxDocBytes = DefaultMaxDocBytes
	}
	if n.ReadConns == 0 {
		n.ReadConns = 4
	}
	if n.BusyTimeout == 0 {
		n.BusyTimeout = 5 * time.Second
	}
	return n, nil
}

// DefaultMaxDocBytes is the default of Options.MaxDocBytes: the limit the
// MongoDB read model has (its documents cannot exceed 16 MiB), so that an ICP
// the production read model refuses is refused by the embedded one too, and
// the two behave alike.
const DefaultMaxDocBytes = 15 << 20

// Model is the SQLite read model. It is safe for concurrent use.
type Model struct {
	opts Options
	wdb  *sql.DB // one connection: the writer's
	rdb  *sql.DB // read-only pool
	// get is Get's query, prepared once per read connection rather than
	// parsed again on every call (a third of a point read's time).
	get *sql.Stmt

	reqs       chan *applyReq
	stop       chan struct{} // closed by Close: the writer finishes what is queued and exits
	writerDone chan struct{}
	closeOnce  sync.Once
	closeErr   error

	waitMu  sync.Mutex
	waiters map[string][]chan uint64
	recent  recentCommits // guarded by waitMu

	checkpoints *sqlite.Checkpointer
	// lastCommit is when this process's writer last committed (Unix ns).
	lastCommit atomic.Int64

	commits atomic.Uint64
	written atomic.Uint64
	taken   atomic.Uint64 // calls the writer has taken off the queue

}

var _ projections.ReadModel = (*Model)(nil)

// checkpointEvery is how often the WAL is copied into the database file.
const checkpointEvery = 200 * time.Millisecond

// ErrClosed is returned (wrapped in projections.ErrUnavailable) by calls made
// after Close. It wraps projections.ErrClosed.
var ErrClosed = fmt.Errorf("sqlitemodel: %w", projections.ErrClosed)

// Open opens (creating if needed) the read model in the SQLite file at path
// and applies pending schema migrations.
func Open(ctx context.Context, path string, opts Options) (*Model, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if path == "" {
		return nil, errors.New("sqlitemodel: path is required")
	}
	wdb, err := openWriter(ctx, path, o)
	if err != nil {
		return nil, err
	}
	rdb, err := openReaders(path, o)
	if err != nil {
		_ = wdb.Close()
		return nil, err
	}
	m := &Model{
		opts:       o,
		wdb:        wdb,
		rdb:        rdb,
		reqs:       make(chan *applyReq, 4096),
		stop:       make(chan struct{}),
		writerDone: make(chan struct{}),
		waiters:    map[string][]chan uint64{},
	}
	if err := m.start(ctx, path); err != nil {
		_ = rdb.Close()
		_ = wdb.Close()
		return nil, fmt.Errorf("sqlitemodel: open %s: %w", path, err)
	}
	return m, nil
}

// openWriter opens the writer's durable connection and migrates the file.
//
// 2 MiB of cache: the pages being filled (ids are time-ordered, so inserts
// meet at the indexes' right edges) and the upper levels of every index
// stay in memory; other pages come from the OS's file cache. A larger cache
// made the process larger under sustained creates, memory the Go heap uses
// better (see docs/performance.md); BenchmarkApplyUpdates found random
// updates no cheaper with 8 MiB.
func openWriter(ctx context.Context, path string, o Options) (*sql.DB, error) {
	wdb, err := sqlite.Open(path, sqlite.Settings{Role: sqlite.Writer, BusyTimeout: o.BusyTimeout, CacheKiB: 2048}, 1)
	if err != nil {
		return nil, fmt.Errorf("sqlitemodel: %w", err)
	}
	if err := migrate(ctx, wdb); err != nil {
		_ = wdb.Close()
		return nil, fmt.Errorf("sqlitemodel: open %s: %w", path, sqlite.Classify(err))
	}
	return wdb, nil
}

// openReaders opens the read-only pool. 256 KiB per reader: a read
// connection drops its cache whenever the writer has committed since its
// last read, so under writes a larger cache only holds memory; reads of
// pages it lacks come from the OS's file cache. BenchmarkGet, with no
// writes at all, is no faster with 1 MiB.
func openReaders(path string, o Options) (*sql.DB, error) {
	rdb, err := sqlite.Open(path, sqlite.Settings{Role: sqlite.Reader, BusyTimeout: o.BusyTimeout, CacheKiB: 256}, o.ReadConns)
	if err != nil {
		return nil, fmt.Errorf("sqlitemodel: %w", err)
	}
	return rdb, nil
}

// start prepares Get's statement and starts the checkpoints and the writer;
// on error it has released what it started, and the caller closes the
// connections.
func (m *Model) start(ctx context.Context, path string) error {
	var err error
	m.get, err = m.rdb.PrepareContext(ctx, `SELECT `+viewColumns+` FROM icps i WHERE i.id = ?`)
	if err != nil {
		return err
	}
	m.checkpoints, err = sqlite.StartCheckpointer(path, m.opts.BusyTimeout, checkpointEvery, nil)
	if err != nil {
		_ = m.get.Close()
		return err
	}
	w, err := newWriter(ctx, m)
	if err != nil {
		_ = m.checkpoints.Close()
		_ = m.get.Close()
		return err
	}
	go w.run()
	return nil
}

// Stats counts the writer's work since Open.
type Stats struct {
	// Commits is the number of group-commit transactions committed.
	Commits uint64
	// Written is the number of views applied.
	Written uint64
}

// Stats returns the writer's counters.
func (m *Model) Stats() Stats {
	return Stats{Commits: m.commits.Load(), Written: m.written.Load()}
}

func unavailable(op string, err error) error {
	return fmt.Errorf("%w: sqlitemodel %s: %w", projections.ErrUnavailable, op, err)
}

func (m *Model) closed() bool {
	select {
	case <-m.stop:
		return true
	default:
		return false
	}
}

const maxInt64 = math.MaxInt64

const viewColumns = `i.id, i.tenant, i.version, i.position, i.deleted, i.created_by, i.user_ids, i.doc`

func scanView(sc interface{ Scan(...any) error }) (projections.View, error) {
	var (
		v        projections.View
		version  int64
		position int64
		deleted  int64
		users    string
		doc      []byte
	)
	if err := sc.Scan(&v.ID, &v.Tenant, &version, &position, &deleted, &v.CreatedBy, &users, &doc); err != nil {
		return v, err
	}
	v.Version, v.Position, v.Deleted = uint64(version), uint64(position), deleted != 0
	if err := json.Unmarshal([]byte(users), &v.UserIDs); err != nil {
		return v, fmt.Errorf("user_ids of %s: %w", v.ID, err)
	}
	if len(doc) > 0 {
		v.Doc = doc
	}
	return v, nil
}

// Get returns the view of one ICP, tombstones included, as committed.
// projections.ErrNotFound when the id was never applied.
func (m *Model) Get(ctx context.Context, id string) (projections.View, error) {
	if m.closed() {
		return projections.View{}, unavailable("get", ErrClosed)
	}
	row := m.get.QueryRowContext(ctx, id)
	v, err := scanView(row)
	if errors.Is(err, sql.ErrNoRows) {
		return projections.View{}, projections.ErrNotFound
	}
	if err != nil {
		return projections.View{}, unavailable("get", err)
	}
	return v, nil
}

// List returns the live ICPs of tenant that list user as a member, ordered
// by Position, after the exclusive cursor after, at most limit (<= 0: all).
func (m *Model) List(ctx context.Context, tenant, user string, after uint64, limit int) ([]projections.View, error) {
	if m.closed() {
		return nil, unavailable("list", ErrClosed)
	}
	if after > maxInt64 {
		return []projections.View{}, nil
	}
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := m.rdb.QueryContext(ctx, listQuery, tenant, user, int64(after), limit)
	if err != nil {
		return nil, unavailable("list", err)
	}
	defer rows.Close()
	out := []projections.View{}
	for rows.Next() {
		v, err := scanView(rows)
		if err != nil {
			return nil, unavailable("list", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable("list", err)
	}
	return out, nil
}

// listQuery reads a member's list from the membership index, in (position,
// id) order, after a position, at most a number of rows (-1: all).
const listQuery = `SELECT ` + viewColumns + `
	FROM icp_members m JOIN icps i ON i.id = m.id
	WHERE m.tenant = ? AND m.user_id = ? AND m.position > ? AND i.deleted = 0 AND i.tenant = m.tenant
	ORDER BY m.position, m.id
	LIMIT ?`

// ListChunk returns the next chunk of a member's list (see
// projections.ReadModel): one statement on one read connection, closed
// before it returns, so its WAL snapshot does not outlive the call and the
// checkpointer is never held back by a slow caller between chunks. The row
// that would overflow maxBytes is read (the driver reads whole rows) and
// dropped; the next chunk reads it again.
func (m *Model) ListChunk(ctx context.Context, tenant, user string, after uint64, maxViews, maxBytes int) ([]projections.View, error) {
	if m.closed() {
		return nil, unavailable("list", ErrClosed)
	}
	if after > maxInt64 {
		return []projections.View{}, nil
	}
	maxViews, maxBytes = max(1, maxViews), max(1, maxBytes)
	rows, err := m.rdb.QueryContext(ctx, listQuery, tenant, user, int64(after), maxViews)
	if err != nil {
		return nil, unavailable("list", err)
	}
	defer rows.Close()
	out := []projections.View{}
	size := 0
	for rows.Next() {
		v, err := scanView(rows)
		if err != nil {
			return nil, unavailable("list", err)
		}
		if len(out) > 0 && size+len(v.Doc) > maxBytes {
			break
		}
		size += len(v.Doc)
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable("list", err)
	}
	return out, nil
}

// Ping reports whether the file can be read now.
func (m *Model) Ping(ctx context.Context) error {
	if m.closed() {
		return unavailable("ping", ErrClosed)
	}
	var one int
	if err := m.rdb.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

// Close finishes the Apply calls already queued, refuses new calls, wakes
// waiters (they return an error) and closes the file. It is idempotent.
func (m *Model) Close() error {
	m.closeOnce.Do(func() {
		close(m.stop)
		<-m.writerDone
		m.closeErr = errors.Join(m.checkpoints.Close(), m.get.Close(), m.rdb.Close(), m.wdb.Close())
	})
	return m.closeErr
}
