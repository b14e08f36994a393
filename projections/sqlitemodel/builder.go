package sqlitemodel

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/icpservice/icp/platform/sqlite"
	"github.com/icpservice/icp/projections"
)

// Builder builds a complete read model beside the live one, in the same
// file, and swaps it in atomically: a rebuild from the event history while
// the service keeps serving from the old tables.
//
// The new views go into shadow tables (icps_rebuild, icp_members_rebuild)
// that nothing reads. Put writes them in large transactions on the
// builder's own connection, not through the group-commit queue: the caller
// folds a chunk of history in memory and writes each ICP's state once.
//
// Durability: the commits of Put are not flushed to disk (WAL with
// synchronous=NORMAL: a crash may lose the latest of them, never corrupt
// the file, and a crash discards the unswapped build anyway); the swap's
// commit is (synchronous=FULL), and with it every page written before it.
// Swap takes the file's write lock (BEGIN IMMEDIATE: a running Model's
// writer, in this process or another, waits for it), lets the caller write
// the last events into the shadow tables, and renames them over the live
// ones in the same transaction. Readers see either the old tables or the
// new ones, never a mix; a running Model carries on with the new tables,
// because SQLite prepares a statement again when the schema it was
// prepared against has changed.
//
// One Builder at a time per file: OpenBuilder takes an exclusive lock
// (flock) on path + ".rebuild-lock", which stays on disk. Shadow tables left
// by an interrupted rebuild are dropped when the next one opens.
type Builder struct {
	path string
	db   *sql.DB
	conn *sql.Conn
	lock io.Closer
	// ckpt copies the WAL into the file after each of the builder's
	// commits, on a connection and goroutine of its own: left to the
	// builder's connection the copy was about a fifth of a rebuild's
	// write cost, on the writing goroutine.
	ckpt *sqlite.Checkpointer

	inSwap  bool
	swapped bool
	closed  bool
	st      builderStmts
	stats   BuildStats
}

// BuildStats counts what a Builder wrote.
type BuildStats struct {
	// Views is the number of views Put wrote (a view rewritten later
	// counts again).
	Views uint64
	// Commits is the number of transactions that wrote them.
	Commits uint64
}

// Names of the shadow tables a rebuild writes, and of the live tables while
// Swap replaces them.
const (
	rebuildSuffix  = "_rebuild"
	replacedSuffix = "_replaced"
)

// shadowSchemaVersion is the schema version (number of migrations) that
// shadowSchema reproduces. OpenBuilder refuses to run when the migrations
// moved on: a rebuild must never swap in tables of an older schema.
// TestShadowSchemaMatchesMigrations fails when the two drift apart.
const shadowSchemaVersion = 1

// shadowSchema is the schema of the latest migration with every table
// name carrying suffix.
func shadowSchema(suffix string) string {
	return `CREATE TABLE icps` + suffix + ` (
		id         TEXT PRIMARY KEY,
		tenant     TEXT NOT NULL,
		version    INTEGER NOT NULL CHECK (version >= 1),
		position   INTEGER NOT NULL,
		deleted    INTEGER NOT NULL DEFAULT 0,
		created_by TEXT NOT NULL,
		user_ids   TEXT NOT NULL, -- JSON array of member ids, in their order
		doc        BLOB            -- the ICP's JSON, byte for byte; NULL on a tombstone
	);
	CREATE TABLE icp_members` + suffix + ` (
		tenant   TEXT NOT NULL,
		user_id  TEXT NOT NULL,
		position INTEGER NOT NULL,
		id       TEXT NOT NULL,
		PRIMARY KEY (tenant, user_id, position, id)
	) WITHOUT ROWID;`
}

// liveTables are the tables a swap replaces, in the order they are renamed.
var liveTables = []string{"icps", "icp_members"}

// OpenBuilder opens (creating and migrating if needed) the read model file at
// path for a rebuild, and starts it with empty shadow tables. It fails when
// another Builder holds the file. Close it when done; without a Swap, Close
// drops the shadow tables and the live read model is untouched.
func OpenBuilder(ctx context.Context, path string) (*Builder, error) {
	if path == "" {
		return nil, errors.New("sqlitemodel: path is required")
	}
	if len(migrations) != shadowSchemaVersion {
		return nil, fmt.Errorf("sqlitemodel: the rebuild tables follow schema version %d, the migrations are at %d", shadowSchemaVersion, len(migrations))
	}
	lock, err := lockFile(path + ".rebuild-lock")
	if err != nil {
		return nil, fmt.Errorf("sqlitemodel: %s: %w", path, err)
	}
	b := &Builder{path: path, lock: lock}
	if err := b.open(ctx); err != nil {
		_ = b.release()
		return nil, fmt.Errorf("sqlitemodel: open %s for a rebuild: %w", path, err)
	}
	return b, nil
}

func (b *Builder) open(ctx context.Context) error {
	// Put's commits need not be durable (see Builder), and waiting for an
	// fsync of the WAL after each stalled the writer; Swap switches to FULL
	// for its own commit. The WAL is copied into the database file by the
	// checkpointer, on another connection and goroutine, not after the
	// builder's commits.
	db, err := sqlite.Open(b.path, builderSettings, 1)
	if err != nil {
		return err
	}
	b.db = db
	if err := migrate(ctx, db); err != nil {
		return err
	}
	if b.conn, err = db.Conn(ctx); err != nil {
		return err
	}
	if err := b.exec(ctx, `BEGIN IMMEDIATE`); err != nil {
		return err
	}
	ddl := dropTables(rebuildSuffix) + dropTables(replacedSuffix) + shadowSchema(rebuildSuffix)
	if err := b.exec(ctx, ddl); err != nil {
		_ = b.exec(ctx, `ROLLBACK`)
		return err
	}
	if err := b.exec(ctx, `COMMIT`); err != nil {
		_ = b.exec(ctx, `ROLLBACK`)
		return err
	}
	b.st.prepare()
	b.ckpt, err = sqlite.StartCheckpointer(b.path, time.Second, 0, nil)
	return err
}

// builderSettings are the builder's connection's. The live writer's
// transactions are short: a wait as long as the busy timeout means trouble.
// 16 MiB of cache: enough for the pages inserts keep coming back to (the id
// index, the member runs); a larger cache measured slower, as every page it
// holds is allocated once more. Statement journals are kept in memory. No
// memory map: every page of the new file read through one would count in
// the process's resident memory, which then grew with the read model (up to
// the map's size). With histories read by stream (projections/rebuild),
// views are inserted in id order and the pages read back are few: a map
// saved no CPU in a rebuild of a million events (docs/performance.md,
// "Rebuild and verify at scale").
var builderSettings = sqlite.Settings{
	Role:        sqlite.Writer,
	Sync:        sqlite.SyncNormal,
	BusyTimeout: 30 * time.Second,
	CacheKiB:    16384,
	TempMemory:  true,
	NoMmap:      true,
}

func dropTables(suffix string) string {
	var s strings.Builder
	for _, t := range liveTables {
		s.WriteString(`DROP TABLE IF EXISTS ` + t + suffix + `; `)
	}
	return s.String()
}

func (b *Builder) exec(ctx context.Context, q string, args ...any) error {
	_, err := b.conn.ExecContext(ctx, q, args...)
	return err
}

// Load returns the views the shadow tables hold for ids (ids not there are
// absent from the map). Inside Swap's final function it reads in the swap's
// transaction.
func (b *Builder) Load(ctx context.Context, ids []string) (map[string]projections.View, error) {
	if err := b.usable(); err != nil {
		return nil, err
	}
	out := make(map[string]projections.View, len(ids))
	for len(ids) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := min(len(ids), loadRows)
		st, err := b.st.multi(ctx, b.conn, &b.st.load, n, func(n int) string {
			return `SELECT ` + viewColumns + ` FROM icps` + rebuildSuffix + ` i WHERE i.id IN (` + placeholders(n, 1) + `)`
		})
		if err != nil {
			return nil, fmt.Errorf("sqlitemodel: rebuild load: %w", err)
		}
		args := make([]any, n)
		for i, id := range ids[:n] {
			args[i] = id
		}
		if err := func() error {
			rows, err := st.QueryContext(quiet(ctx), args...)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				v, err := scanView(rows)
				if err != nil {
					return err
				}
				out[v.ID] = v
			}
			return rows.Err()
		}(); err != nil {
			return nil, fmt.Errorf("sqlitemodel: rebuild load: %w", err)
		}
		ids = ids[n:]
	}
	return out, nil
}

// Put writes views into the shadow tables: created are ICPs the tables hold
// no view of yet (written with multi-row inserts, the bulk of a rebuild),
// replaced are ICPs whose stored view each replaces (no version condition:
// the caller replays the history in order and owns these tables). Outside
// Swap the views are written in one transaction, all or nothing, and made
// durable by the swap's commit; inside Swap's final function they join the
// swap's transaction. A created view whose id is stored already fails the
// whole Put.
func (b *Builder) Put(ctx context.Context, created, replaced []projections.View) (err error) {
	if err := b.usable(); err != nil {
		return err
	}
	if len(created)+len(replaced) == 0 {
		return nil
	}
	users := func(views []projections.View) ([][]byte, error) {
		out := make([][]byte, len(views))
		for i, v := range views {
			if err := validateBuilt(v); err != nil {
				return nil, fmt.Errorf("sqlitemodel: rebuild view %q v%d: %w", v.ID, v.Version, err)
			}
			var err error
			if out[i], err = membersJSON(v); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	cUsers, err := users(created)
	if err != nil {
		return err
	}
	rUsers, err := users(replaced)
	if err != nil {
		return err
	}
	if !b.inSwap {
		if err := b.exec(ctx, `BEGIN IMMEDIATE`); err != nil {
			return fmt.Errorf("sqlitemodel: rebuild begin: %w", err)
		}
		defer func() {
			if err != nil {
				_ = b.exec(context.WithoutCancel(ctx), `ROLLBACK`)
			}
		}()
	}
	if err := b.st.insertAll(quiet(ctx), b.conn, created, cUsers); err != nil {
		return fmt.Errorf("sqlitemodel: rebuild insert: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := b.st.replaceAll(quiet(ctx), b.conn, replaced, rUsers); err != nil {
		return fmt.Errorf("sqlitemodel: rebuild replace: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !b.inSwap {
		if err := b.exec(ctx, `COMMIT`); err != nil {
			return fmt.Errorf("sqlitemodel: rebuild commit: %w", err)
		}
		b.stats.Commits++
		b.ckpt.Kick()
	}
	b.stats.Views += uint64(len(created) + len(replaced))
	return nil
}

// quiet is ctx without its cancellation, for the many short statements of
// Put and Load: modernc.org/sqlite watches a cancellable context with a
// goroutine of its own for every statement: hundreds of thousands in a
// rebuild, each created, scheduled and torn down (the execution tracer
// showed them as the largest source of scheduling delay). Put and Load
// check ctx between their parts instead, so a cancel ends them within one
// part.
func quiet(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// validateBuilt is validate without re-parsing the doc: a rebuild's views
// come from projections.ViewOf, whose doc is encoding/json output, and
// scanning every doc again measured a tenth of a rebuild's write cost.
func validateBuilt(v projections.View) error {
	if !v.Deleted && len(v.Doc) == 0 {
		return errors.New("a live view needs a doc")
	}
	d := v
	d.Deleted, d.Doc = true, nil // the port's checks without the JSON scan
	if err := projections.ValidateView(d); err != nil {
		return err
	}
	for _, u := range v.UserIDs {
		if u == "" {
			return errors.New("empty member id")
		}
	}
	return nil
}

// membersJSON is the user_ids column of v, byte for byte what the live
// writer stores (json.Marshal of the member list, [] for a tombstone).
// Member ids are plain ASCII in practice; those are written directly, which
// skips encoding/json's reflection. Anything else goes through json.Marshal.
func membersJSON(v projections.View) ([]byte, error) {
	if v.Deleted || len(v.UserIDs) == 0 {
		return []byte("[]"), nil
	}
	n := 1
	for _, u := range v.UserIDs {
		for i := 0; i < len(u); i++ {
			c := u[i]
			if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				return json.Marshal(v.UserIDs)
			}
		}
		n += len(u) + 3
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, u := range v.UserIDs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, u...)
		b = append(b, '"')
	}
	return append(b, ']'), nil
}

// Swap makes the shadow tables the live read model, atomically. It takes the
// file's write lock, runs final (which may Load and Put inside the same
// transaction: the place to apply the events that arrived while the rebuild
// ran), renames the live tables away and the shadow tables into their
// place, and commits. If final or the swap fails, nothing changed. After a
// successful commit the replaced tables are dropped in a transaction of
// their own; should that fail, the error says so, the swap stands, and the
// next OpenBuilder drops them.
//
// While final runs, every writer of the file waits: keep it short (catch up
// first, outside Swap).
func (b *Builder) Swap(ctx context.Context, final func(ctx context.Context) error) (err error) {
	if err := b.usable(); err != nil {
		return err
	}
	// The swap's commit flushes the WAL, and with it every page Put wrote
	// before it.
	if err := b.exec(ctx, `PRAGMA synchronous = FULL`); err != nil {
		return fmt.Errorf("sqlitemodel: swap: %w", err)
	}
	if err := b.exec(ctx, `BEGIN IMMEDIATE`); err != nil {
		_ = b.exec(context.WithoutCancel(ctx), `PRAGMA synchronous = NORMAL`)
		return fmt.Errorf("sqlitemodel: swap: take the write lock: %w", err)
	}
	b.inSwap = true
	defer func() {
		b.inSwap = false
		if err != nil {
			_ = b.exec(context.WithoutCancel(ctx), `ROLLBACK`)
			_ = b.exec(context.WithoutCancel(ctx), `PRAGMA synchronous = NORMAL`)
		}
	}()
	if final != nil {
		if err := final(ctx); err != nil {
			return err
		}
	}
	var ddl strings.Builder
	for _, t := range liveTables {
		fmt.Fprintf(&ddl, "ALTER TABLE %s RENAME TO %s%s; ", t, t, replacedSuffix)
	}
	for _, t := range liveTables {
		fmt.Fprintf(&ddl, "ALTER TABLE %s%s RENAME TO %s; ", t, rebuildSuffix, t)
	}
	// The builder's statements name the shadow tables, which are about to
	// be renamed: close them first.
	if err := b.st.close(); err != nil {
		return fmt.Errorf("sqlitemodel: swap: %w", err)
	}
	if err := b.exec(ctx, ddl.String()); err != nil {
		return fmt.Errorf("sqlitemodel: swap: rename tables: %w", err)
	}
	if err := b.exec(ctx, `COMMIT`); err != nil {
		return fmt.Errorf("sqlitemodel: swap: commit: %w", err)
	}
	b.swapped = true
	if err := b.exec(ctx, `BEGIN IMMEDIATE; `+dropTables(replacedSuffix)+`COMMIT;`); err != nil {
		_ = b.exec(context.WithoutCancel(ctx), `ROLLBACK`)
		return fmt.Errorf("sqlitemodel: swapped, but dropping the replaced tables failed (the next rebuild drops them): %w", err)
	}
	return nil
}

// Stats returns what Put wrote so far.
func (b *Builder) Stats() BuildStats { return b.stats }

// ErrSwapped is returned by Load, Put and Swap after a successful Swap.
var ErrSwapped = errors.New("sqlitemodel: the rebuild was swapped in already")

func (b *Builder) usable() error {
	switch {
	case b.closed:
		return fmt.Errorf("sqlitemodel: rebuild: %w", ErrClosed)
	case b.swapped:
		return ErrSwapped
	}
	return nil
}

// Close ends the rebuild. Without a successful Swap it drops the shadow
// tables; the live read model is as it was. It releases the rebuild lock.
func (b *Builder) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	var errs []error
	errs = append(errs, b.st.close())
	if !b.swapped && b.conn != nil {
		ctx := context.Background()
		if err := b.exec(ctx, `BEGIN IMMEDIATE; `+dropTables(rebuildSuffix)+`COMMIT;`); err != nil {
			_ = b.exec(ctx, `ROLLBACK`)
			errs = append(errs, fmt.Errorf("drop the unfinished rebuild's tables: %w", err))
		}
	}
	errs = append(errs, b.release())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlitemodel: close rebuild: %w", err)
	}
	return nil
}

func (b *Builder) release() error {
	var errs []error
	if b.ckpt != nil {
		errs = append(errs, b.ckpt.Close())
	}
	if b.conn != nil {
		errs = append(errs, b.conn.Close())
	}
	if b.db != nil {
		errs = append(errs, b.db.Close())
	}
	errs = append(errs, b.lock.Close())
	return errors.Join(errs...)
}

// Rows per multi-row statement: one statement per row costs more in the
// driver and database/sql than in SQLite itself.
const (
	insertRows = 64
	memberRows = 128
	loadRows   = 64
)

// builderStmts are the statements of Put and Load on the shadow tables.
// Multi-row statements are prepared per row count on first use.
type builderStmts struct {
	insert, members, load, old, update, delMembers, delDerived, insDerived map[int]*sql.Stmt
}

// prepare readies the statement caches; statements are prepared on first
// use, per row count.
func (s *builderStmts) prepare() {
	s.insert, s.members, s.load = map[int]*sql.Stmt{}, map[int]*sql.Stmt{}, map[int]*sql.Stmt{}
	s.old, s.update, s.delMembers = map[int]*sql.Stmt{}, map[int]*sql.Stmt{}, map[int]*sql.Stmt{}
	s.delDerived, s.insDerived = map[int]*sql.Stmt{}, map[int]*sql.Stmt{}
}

// multi returns the statement of cache for n rows, preparing it with
// query(n) on first use.
func (s *builderStmts) multi(ctx context.Context, conn *sql.Conn, cache *map[int]*sql.Stmt, n int, query func(n int) string) (*sql.Stmt, error) {
	if st, ok := (*cache)[n]; ok {
		return st, nil
	}
	st, err := conn.PrepareContext(ctx, query(n))
	if err != nil {
		return nil, err
	}
	(*cache)[n] = st
	return st, nil
}

// placeholders returns n groups of cols placeholders: "(?, ?), (?, ?)" for
// n=2, cols=2; for cols=1 just "?, ?".
func placeholders(n, cols int) string {
	one := "?" + strings.Repeat(", ?", cols-1)
	if cols > 1 {
		one = "(" + one + ")"
	}
	return one + strings.Repeat(", "+one, n-1)
}

func (s *builderStmts) close() error {
	var errs []error
	for _, m := range []map[int]*sql.Stmt{s.insert, s.members, s.load, s.old, s.update, s.delMembers, s.delDerived, s.insDerived} {
		for n, st := range m {
			errs = append(errs, st.Close())
			delete(m, n)
		}
	}
	return errors.Join(errs...)
}

// insertAll inserts views that are not stored yet, and their membership
// rows, with multi-row inserts.
//
// The membership rows are made by SQLite from the rows just inserted (their
// user_ids, through json_each): binding four values per member measured
// twice the cost. json_each gives back each member id byte
// for byte when it is valid UTF-8, as every id decoded from JSON is; views
// with other ids have their rows bound one by one.
func (s *builderStmts) insertAll(ctx context.Context, conn *sql.Conn, views []projections.View, users [][]byte) error {
	if len(views) == 0 {
		return nil
	}
	derive := validMembers(views)
	var last int64 // the rows inserted below get rowids above it
	if derive {
		if err := conn.QueryRowContext(ctx, `SELECT COALESCE(MAX(rowid), 0) FROM icps`+rebuildSuffix).Scan(&last); err != nil {
			return err
		}
	}
	var ms []member
	for start := 0; start < len(views); start += insertRows {
		part := views[start:min(len(views), start+insertRows)]
		st, err := s.multi(ctx, conn, &s.insert, len(part), func(n int) string {
			// OR ROLLBACK: a multi-row statement that could fail halfway
			// needs a statement journal (a copy of every page it changes);
			// a conflict here is a caller's bug and fails the whole Put.
			return `INSERT OR ROLLBACK INTO icps` + rebuildSuffix + ` (id, tenant, version, position, deleted, created_by, user_ids, doc) VALUES ` + placeholders(n, 8)
		})
		if err != nil {
			return err
		}
		args := make([]any, 0, 8*len(part))
		for i, v := range part {
			deleted, doc := storedForm(v)
			if !v.Deleted && !derive {
				for _, u := range v.UserIDs {
					ms = append(ms, member{v.Tenant, u, int64(v.Position), v.ID})
				}
			}
			args = append(args, v.ID, v.Tenant, int64(v.Version), int64(v.Position), deleted, v.CreatedBy, users[start+i], doc)
		}
		if _, err := st.ExecContext(ctx, args...); err != nil {
			return err
		}
	}
	if derive {
		// OR IGNORE: a member listed twice in one ICP is one row. In rowid
		// order, not key order: sorting cost more than the b-tree saved.
		_, err := conn.ExecContext(ctx, `INSERT OR IGNORE INTO icp_members`+rebuildSuffix+` (tenant, user_id, position, id)
			SELECT i.tenant, j.value, i.position, i.id FROM icps`+rebuildSuffix+` AS i, json_each(i.user_ids) AS j
			WHERE i.rowid > ? AND i.deleted = 0`, last)
		return err
	}
	return s.insertMembers(ctx, conn, ms)
}

// validMembers reports whether every member id of views is valid UTF-8.
func validMembers(views []projections.View) bool {
	for _, v := range views {
		for _, u := range v.UserIDs {
			if !utf8.ValidString(u) {
				return false
			}
		}
	}
	return true
}

// member is one row of the membership table.
type member struct {
	tenant, user string
	position     int64
	id           string
}

// sortMembers puts ms in the membership table's key order, so that each
// member's run of the b-tree is appended to rather than split.
func sortMembers(ms []member) {
	slices.SortFunc(ms, func(a, b member) int {
		if c := strings.Compare(a.tenant, b.tenant); c != 0 {
			return c
		}
		if c := strings.Compare(a.user, b.user); c != 0 {
			return c
		}
		if c := cmp.Compare(a.position, b.position); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
}

func memberArgs(ms []member) []any {
	args := make([]any, 0, 4*len(ms))
	for _, m := range ms {
		args = append(args, m.tenant, m.user, m.position, m.id)
	}
	return args
}

// insertMembers inserts membership rows with multi-row inserts.
func (s *builderStmts) insertMembers(ctx context.Context, conn *sql.Conn, ms []member) error {
	sortMembers(ms)
	for len(ms) > 0 {
		n := min(len(ms), memberRows)
		st, err := s.multi(ctx, conn, &s.members, n, func(n int) string {
			// OR IGNORE: a member listed twice in one ICP is one row.
			return `INSERT OR IGNORE INTO icp_members` + rebuildSuffix + ` (tenant, user_id, position, id) VALUES ` + placeholders(n, 4)
		})
		if err != nil {
			return err
		}
		if _, err := st.ExecContext(ctx, memberArgs(ms[:n])...); err != nil {
			return err
		}
		ms = ms[n:]
	}
	return nil
}

// replaceAll overwrites the stored views of views' ids in place, with
// multi-row statements: the rows are updated, and their membership rows
// change as the live writer changes them (it drops the members listed in
// the old user_ids that the new view lacks and adds the new ones). Every id
// must be stored.
//
// When the new member ids are valid UTF-8, SQLite does it from the rows
// themselves: the rows of the members the old user_ids list go, the rows of
// the new ones come, with the ids bound once per view rather than four
// values per member. The result is the live writer's: a member kept is
// deleted and inserted again, and a row the old user_ids cannot name (an
// id that was not valid UTF-8) stays, as it does there.
func (s *builderStmts) replaceAll(ctx context.Context, conn *sql.Conn, views []projections.View, users [][]byte) error {
	if !validMembers(views) {
		return s.replaceByDifference(ctx, conn, views, users)
	}
	for start := 0; start < len(views); start += loadRows {
		part := views[start:min(len(views), start+loadRows)]
		ids := make([]any, len(part))
		for i, v := range part {
			ids[i] = v.ID
		}
		del, err := s.multi(ctx, conn, &s.delDerived, len(part), func(n int) string {
			return `DELETE FROM icp_members` + rebuildSuffix + ` WHERE (tenant, user_id, position, id) IN (
				SELECT i.tenant, j.value, i.position, i.id FROM icps` + rebuildSuffix + ` AS i, json_each(i.user_ids) AS j
				WHERE i.id IN (` + placeholders(n, 1) + `) AND i.deleted = 0)`
		})
		if err != nil {
			return err
		}
		if _, err := del.ExecContext(ctx, ids...); err != nil {
			return err
		}
		if err := s.updateViews(ctx, conn, part, users[start:]); err != nil {
			return err
		}
		ins, err := s.multi(ctx, conn, &s.insDerived, len(part), func(n int) string {
			return `INSERT OR IGNORE INTO icp_members` + rebuildSuffix + ` (tenant, user_id, position, id)
				SELECT i.tenant, j.value, i.position, i.id FROM icps` + rebuildSuffix + ` AS i, json_each(i.user_ids) AS j
				WHERE i.id IN (` + placeholders(n, 1) + `) AND i.deleted = 0
				ORDER BY 1, 2, 3, 4`
		})
		if err != nil {
			return err
		}
		if _, err := ins.ExecContext(ctx, ids...); err != nil {
			return err
		}
	}
	return nil
}

// replaceByDifference is replaceAll with the membership rows changed by
// difference from Go, the live writer's way, member by member.
func (s *builderStmts) replaceByDifference(ctx context.Context, conn *sql.Conn, views []projections.View, users [][]byte) error {
	var gone, added []member
	for start := 0; start < len(views); start += loadRows {
		part := views[start:min(len(views), start+loadRows)]
		olds, err := s.readShadow(ctx, conn, part)
		if err != nil {
			return err
		}
		for _, v := range part {
			var keep []string
			if !v.Deleted {
				keep = v.UserIDs
			}
			o := olds[v.ID]
			g, a := o.users, keep
			if o.tenant == v.Tenant && uint64(o.position) == v.Position {
				g, a = difference(o.users, keep), difference(keep, o.users)
			}
			for _, u := range g {
				gone = append(gone, member{o.tenant, u, o.position, v.ID})
			}
			for _, u := range a {
				added = append(added, member{v.Tenant, u, int64(v.Position), v.ID})
			}
		}
		if err := s.updateViews(ctx, conn, part, users[start:]); err != nil {
			return err
		}
	}
	if err := s.deleteMembers(ctx, conn, gone); err != nil {
		return err
	}
	return s.insertMembers(ctx, conn, added)
}

// shadowView is what replaceByDifference needs of a stored shadow view.
type shadowView struct {
	tenant   string
	position int64
	users    []string
}

// readShadow reads the stored shadow views of part (at most loadRows),
// every one of which must be there.
func (s *builderStmts) readShadow(ctx context.Context, conn *sql.Conn, part []projections.View) (map[string]shadowView, error) {
	ids := make([]any, len(part))
	for i, v := range part {
		ids[i] = v.ID
	}
	sel, err := s.multi(ctx, conn, &s.old, len(part), func(n int) string {
		return `SELECT id, tenant, position, user_ids FROM icps` + rebuildSuffix + ` WHERE id IN (` + placeholders(n, 1) + `)`
	})
	if err != nil {
		return nil, err
	}
	rows, err := sel.QueryContext(ctx, ids...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	olds := make(map[string]shadowView, len(part))
	for rows.Next() {
		var (
			id, usersJSON string
			o             shadowView
		)
		if err := rows.Scan(&id, &o.tenant, &o.position, &usersJSON); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(usersJSON), &o.users); err != nil {
			return nil, fmt.Errorf("user_ids of %s: %w", id, err)
		}
		olds[id] = o
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(olds) != len(part) {
		return nil, fmt.Errorf("%d of %d views to replace are not stored", len(part)-len(olds), len(part))
	}
	return olds, nil
}

// deleteMembers deletes the shadow membership rows gone, in key order.
func (s *builderStmts) deleteMembers(ctx context.Context, conn *sql.Conn, gone []member) error {
	sortMembers(gone)
	for len(gone) > 0 {
		n := min(len(gone), memberRows)
		st, err := s.multi(ctx, conn, &s.delMembers, n, func(n int) string {
			return `DELETE FROM icp_members` + rebuildSuffix + ` WHERE (tenant, user_id, position, id) IN (VALUES ` + placeholders(n, 4) + `)`
		})
		if err != nil {
			return err
		}
		if _, err := st.ExecContext(ctx, memberArgs(gone[:n])...); err != nil {
			return err
		}
		gone = gone[n:]
	}
	return nil
}

// updateViews overwrites the stored rows of views (users[i] is the user_ids
// column of views[i]) with one statement; every id must be stored.
func (s *builderStmts) updateViews(ctx context.Context, conn *sql.Conn, views []projections.View, users [][]byte) error {
	upd, err := s.multi(ctx, conn, &s.update, len(views), func(n int) string {
		return `UPDATE icps` + rebuildSuffix + ` AS i SET tenant = v.column2, version = v.column3, position = v.column4,
			deleted = v.column5, created_by = v.column6, user_ids = v.column7, doc = v.column8
			FROM (VALUES ` + placeholders(n, 8) + `) AS v WHERE i.id = v.column1`
	})
	if err != nil {
		return err
	}
	args := make([]any, 0, 8*len(views))
	for i, v := range views {
		deleted, doc := storedForm(v)
		args = append(args, v.ID, v.Tenant, int64(v.Version), int64(v.Position), deleted, v.CreatedBy, users[i], doc)
	}
	res, err := upd.ExecContext(ctx, args...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != int64(len(views)) {
		return fmt.Errorf("%d of %d views replaced (%v)", n, len(views), err)
	}
	return nil
}
