package sqlitestore

// Group commit. With synchronous=FULL every commit costs an fsync, so one
// transaction per append would cap the store near the fsync rate however
// many callers wait. Instead Append queues its request on a
// platform/groupcommit queue and one writer goroutine commits whatever has
// queued up meanwhile (up to BatchMax appends) in a single transaction: one
// fsync per batch. BenchmarkAppendConcurrent measures the effect (with
// BatchMax=1 it commits one transaction per append; docs/performance.md).
//
// Each append in a batch is decided against the stream's version as it stands
// inside the transaction, so it sees the earlier appends of the same batch: two
// NoStream appends to one stream in one batch are refused the second time
// exactly as if they had been committed apart. Each append runs inside its own
// savepoint, so a statement that fails for one append undoes only that append.
// Callers are answered only after the transaction committed.
//
// Under concurrent load the writer lingers (groupcommit's Writer.Linger):
// when the previous batch held more than one append, it waits up to
// Options.Linger for more appends to join before it commits. A commit's
// cost in CPU is mostly per transaction, and on two cores shared with the
// rest of the pipeline that CPU, not the disk, bounds the create rate
// (docs/performance.md, the load runs with and without the linger). A lone
// caller (previous batch of one) never waits.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	driver "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/platform/groupcommit"
)

// appendReq is one append waiting for the writer: one item of the
// group-commit queue.
type appendReq struct {
	// ctx is its caller's: an append whose caller gave up before its
	// transaction began (it may have waited for the file's write lock) is
	// not written.
	ctx      context.Context
	stream   string
	expected uint64
	evs      []events.Proposed
	snap     *snapshotReq // AppendWithSnapshot; nil: none
}

// appendAns is the writer's answer to one append of a committed batch.
type appendAns struct {
	res events.AppendResult
	err error
}

// queue joins Append to the writer goroutine.
func (s *Store) queue() groupcommit.Queue[*appendReq, appendAns] {
	return groupcommit.Queue[*appendReq, appendAns]{Requests: s.reqs, Closed: s.closing, Exited: s.written}
}

// Append appends evs to stream if the stream is at version expected (see
// events.Store). It returns once the batch holding the append is durable.
//
// Backpressure: when QueueSize appends are already waiting, Append blocks
// until there is room, ctx ends or the store closes. When ctx ends after the
// request was queued, the append may still be committed: the error wraps both
// ctx.Err() and events.ErrUnavailable, and a retry with the same events at the
// same expected version is answered from what was committed. Malformed
// arguments return an error wrapping events.ErrInvalidAppend; a closed store
// ErrClosed.
func (s *Store) Append(ctx context.Context, stream string, expected uint64, evs []events.Proposed) (events.AppendResult, error) {
	return s.append(ctx, stream, expected, evs, nil)
}

func (s *Store) append(ctx context.Context, stream string, expected uint64, evs []events.Proposed, snap *snapshotReq) (events.AppendResult, error) {
	if err := validateAppend(stream, evs); err != nil {
		return events.AppendResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return events.AppendResult{}, appendCtxErr(stream, err)
	}
	if s.isClosing() {
		return events.AppendResult{}, ErrClosed
	}
	// The slice is copied, as the caller owns it again when Append returns
	// (the writer may still read an append whose caller returned on ctx);
	// the events' bytes are not: by the events.Store contract the caller
	// leaves them alone from the call on.
	req := &appendReq{ctx: ctx, stream: stream, expected: expected, evs: slices.Clone(evs), snap: snap}
	out, err := s.queue().Call(ctx, []*appendReq{req})
	return answer(ctx, stream, out, err)
}

// answer turns the queue's answer to one append into Append's.
func answer(ctx context.Context, stream string, out []appendAns, err error) (events.AppendResult, error) {
	switch {
	case err == nil:
		return out[0].res, out[0].err
	case errors.Is(err, groupcommit.ErrClosed):
		return events.AppendResult{}, ErrClosed
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		// Either not written (its caller had gone when the batch was
		// taken) or written without its caller: the outcome is unknown.
		return events.AppendResult{}, appendCtxErr(stream, err)
	default:
		return events.AppendResult{}, fmt.Errorf("sqlitestore: append to %q: batch not committed: %w: %w", stream, events.ErrUnavailable, err)
	}
}

func appendCtxErr(stream string, err error) error {
	return fmt.Errorf("sqlitestore: append to %q: %w: %w", stream, events.ErrUnavailable, err)
}

// stmts are the writer's statements, prepared once on the write connection
// and bound to each batch's transaction.
type stmts struct {
	maxVersion, readIDs, insert    *sql.Stmt
	savepoint, release, rollbackTo *sql.Stmt
	snapshot                       *sql.Stmt
}

func (st *stmts) all() []**sql.Stmt {
	return []**sql.Stmt{&st.maxVersion, &st.readIDs, &st.insert, &st.savepoint, &st.release, &st.rollbackTo, &st.snapshot}
}

func prepareStmts(db *sql.DB) (*stmts, error) {
	text := []string{
		"SELECT COALESCE(MAX(version), 0) FROM events WHERE stream = ?",
		"SELECT event_id, position FROM events WHERE stream = ? AND version > ? AND version <= ? ORDER BY version",
		`INSERT INTO events (stream, version, event_id, type, schema_version, data, metadata, recorded_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		"SAVEPOINT append",
		"RELEASE append",
		"ROLLBACK TO append",
		upsertSnapshot,
	}
	st := &stmts{}
	for i, dst := range st.all() {
		p, err := db.Prepare(text[i])
		if err != nil {
			st.close()
			return nil, fmt.Errorf("prepare %q: %w", text[i], err)
		}
		*dst = p
	}
	return st, nil
}

// in returns the statements bound to tx.
func (st *stmts) in(ctx context.Context, tx *sql.Tx) *stmts {
	b := &stmts{}
	dst := b.all()
	for i, p := range st.all() {
		*dst[i] = tx.StmtContext(ctx, *p)
	}
	return b
}

func (st *stmts) close() {
	for _, p := range st.all() {
		if *p != nil {
			(*p).Close() //nolint:errcheck // closing a statement of a connection about to close
		}
	}
}

// writer owns the write connection once Open has returned.
type writer struct {
	s     *Store
	stmts *stmts

	answers  []appendAns
	versions map[string]uint64 // stream versions inside the open transaction
	// fresh are the events the open transaction inserted, in position order.
	fresh []events.Recorded
	// broken is set when the open transaction can no longer be trusted
	// (a savepoint could not be undone or released): the batch fails.
	broken error
}

func newWriter(s *Store) (*writer, error) {
	st, err := prepareStmts(s.wdb)
	if err != nil {
		return nil, err
	}
	return &writer{s: s, stmts: st, versions: make(map[string]uint64)}, nil
}

func (w *writer) closeStmts() { w.stmts.close() }

// run commits batches until the store closes and what was queued is
// committed.
func (w *writer) run() {
	defer close(w.s.written)
	defer w.closeStmts()
	w.s.queue().Serve(w.groupWriter())
}

// groupWriter is what the writer does with each batch of the queue.
func (w *writer) groupWriter() groupcommit.Writer[*appendReq, appendAns] {
	linger := w.s.opts.Linger
	if linger == NoLinger {
		linger = 0
	}
	return groupcommit.Writer[*appendReq, appendAns]{
		MaxBatch:  w.s.opts.BatchMax,
		Linger:    linger,
		Write:     w.write,
		Committed: w.committed,
	}
}

// write decides and writes a batch in one transaction. An error means the
// transaction did not commit: nothing of the batch was written. Otherwise
// each append has its own answer: its result, or why it was refused.
func (w *writer) write(batch []*appendReq) ([]appendAns, error) {
	// A new slice per batch: its callers read their answers after the
	// writer has moved on.
	w.answers = make([]appendAns, 0, len(batch))
	w.broken = nil
	clear(w.versions)
	w.fresh = w.fresh[:0]
	if err := w.commitTx(batch); err != nil {
		return nil, err
	}
	return w.answers, nil
}

// committed makes a committed batch's events visible to this process's
// followers, before its callers are answered.
func (w *writer) committed([]*appendReq, []appendAns) {
	if len(w.fresh) > 0 {
		w.s.tail.add(w.fresh)
		if last := w.fresh[len(w.fresh)-1].Position; last > w.s.head.Load() {
			w.s.head.Store(last)
		}
	}
	w.s.note.broadcast()
}

func (w *writer) commitTx(batch []*appendReq) error {
	// The transaction does not take any caller's ctx: one caller giving up
	// must not abort the others' appends.
	ctx := context.Background()
	tx, err := w.s.wdb.BeginTx(ctx, nil) // BEGIN IMMEDIATE (see the DSN)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	st := w.stmts.in(ctx, tx)
	now := time.Now().UTC()
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			// Its caller was already told the outcome is unknown; not
			// writing it is one of the outcomes it was told to expect.
			w.answers = append(w.answers, appendAns{err: appendCtxErr(r.stream, err)})
			continue
		}
		res, err := w.appendOne(ctx, st, r, now)
		if w.broken != nil {
			return w.broken
		}
		w.answers = append(w.answers, appendAns{res: res, err: err})
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// appendOne decides one append inside the batch's transaction: write it, or
// recognise it as a retry of events already stored, or refuse it.
func (w *writer) appendOne(ctx context.Context, st *stmts, r *appendReq, now time.Time) (events.AppendResult, error) {
	cur, ok := w.versions[r.stream]
	if !ok && r.expected == events.NoStream && len(r.evs) == 1 {
		// A create: the UNIQUE (stream, version) index refuses it if the
		// stream exists, so the stream's version is read only then.
		res, err := w.insertOne(ctx, st, r, 0, now)
		if err == nil || !isUniqueViolation(err) {
			return res, err
		}
	}
	if !ok {
		var v int64
		if err := st.maxVersion.QueryRowContext(ctx, r.stream).Scan(&v); err != nil {
			return events.AppendResult{}, w.stmtErr(r, "read stream version", err)
		}
		cur = uint64(v)
		w.versions[r.stream] = cur
	}
	if cur != r.expected {
		if cur > r.expected {
			res, retry, err := w.retryOf(ctx, st, r)
			if err != nil || retry {
				return res, err
			}
		}
		return events.AppendResult{}, &events.ConflictError{Stream: r.stream, Expected: r.expected, Actual: cur}
	}
	if len(r.evs) == 1 {
		res, err := w.insertOne(ctx, st, r, cur, now)
		if err != nil && w.broken == nil {
			// The version was checked above in this transaction, and
			// this writer is the only one: the index cannot refuse it.
			w.broken = err
		}
		return res, err
	}
	return w.appendMany(ctx, st, r, cur, now)
}

// appendMany appends the request's events at versions cur+1.. inside a
// savepoint, so that a failing statement undoes this append only; a
// savepoint that cannot be undone or released breaks the batch.
func (w *writer) appendMany(ctx context.Context, st *stmts, r *appendReq, cur uint64, now time.Time) (events.AppendResult, error) {
	if _, err := st.savepoint.ExecContext(ctx); err != nil {
		return events.AppendResult{}, w.stmtErr(r, "savepoint", err)
	}
	res := events.AppendResult{Positions: make([]uint64, len(r.evs))}
	for i, e := range r.evs {
		pos, err := w.insert(ctx, st, r.stream, cur+uint64(i)+1, e, now)
		if err != nil {
			return events.AppendResult{}, w.undo(ctx, st, w.stmtErr(r, fmt.Sprintf("insert event %d", i), err))
		}
		res.Positions[i] = pos
	}
	if err := w.keepSnapshot(ctx, st, r, cur+uint64(len(r.evs))); err != nil {
		return events.AppendResult{}, w.undo(ctx, st, err)
	}
	if _, err := st.release.ExecContext(ctx); err != nil {
		w.broken = w.stmtErr(r, "release savepoint", err)
		return events.AppendResult{}, w.broken
	}
	res.Version = cur + uint64(len(r.evs))
	w.versions[r.stream] = res.Version
	for i, e := range r.evs {
		w.fresh = append(w.fresh, recorded(r.stream, cur+uint64(i)+1, res.Positions[i], e, now))
	}
	return res, nil
}

// undo rolls the open savepoint back after err and returns err; when the
// savepoint cannot be undone or released, the batch is broken.
func (w *writer) undo(ctx context.Context, st *stmts, err error) error {
	if _, rbErr := st.rollbackTo.ExecContext(ctx); rbErr != nil {
		w.broken = errors.Join(err, rbErr)
	} else if _, relErr := st.release.ExecContext(ctx); relErr != nil {
		w.broken = errors.Join(err, relErr)
	}
	return err
}

// insertOne appends the request's only event at version cur+1 without a
// savepoint: one statement is atomic on its own. A unique violation (the
// version is taken) leaves the transaction as it was and is returned as is;
// any other failure may have undone the transaction and breaks the batch.
func (w *writer) insertOne(ctx context.Context, st *stmts, r *appendReq, cur uint64, now time.Time) (events.AppendResult, error) {
	pos, err := w.insert(ctx, st, r.stream, cur+1, r.evs[0], now)
	if err != nil {
		if isUniqueViolation(err) {
			return events.AppendResult{}, err
		}
		w.broken = w.stmtErr(r, "insert event 0", err)
		return events.AppendResult{}, w.broken
	}
	if err := w.keepSnapshot(ctx, st, r, cur+1); err != nil {
		// The event is in the transaction, the snapshot is not: the
		// batch fails as a whole rather than commit one without the other.
		w.broken = err
		return events.AppendResult{}, err
	}
	w.versions[r.stream] = cur + 1
	w.fresh = append(w.fresh, recorded(r.stream, cur+1, pos, r.evs[0], now))
	return events.AppendResult{Version: cur + 1, Positions: []uint64{pos}}, nil
}

// recorded is the event as a read of the file would return it.
func recorded(stream string, v, pos uint64, e events.Proposed, now time.Time) events.Recorded {
	data, meta := e.Data, e.Metadata
	if data == nil {
		data = []byte{}
	}
	if meta == nil {
		meta = []byte{}
	}
	return events.Recorded{ID: e.ID, Type: e.Type, SchemaVersion: e.SchemaVersion, Data: data, Metadata: meta,
		StreamID: stream, Version: v, Position: pos, Time: time.Unix(0, now.UnixNano()).UTC()}
}

// insert writes one event at version v and returns its position.
func (w *writer) insert(ctx context.Context, st *stmts, stream string, v uint64, e events.Proposed, now time.Time) (uint64, error) {
	data, meta := e.Data, e.Metadata
	if data == nil { // NOT NULL columns: keep "no bytes" as an empty blob
		data = []byte{}
	}
	if meta == nil {
		meta = []byte{}
	}
	out, err := st.insert.ExecContext(ctx, stream, int64(v), e.ID, e.Type, e.SchemaVersion, data, meta, now.UnixNano())
	if err != nil {
		return 0, err
	}
	pos, err := out.LastInsertId()
	return uint64(pos), err
}

// isUniqueViolation reports whether err is SQLite refusing a row that would
// break a UNIQUE constraint: here, a stream version already taken.
func isUniqueViolation(err error) bool {
	var se *driver.Error
	return errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

func (w *writer) retryOf(ctx context.Context, st *stmts, r *appendReq) (events.AppendResult, bool, error) {
	last := r.expected + uint64(len(r.evs))
	rows, err := st.readIDs.QueryContext(ctx, r.stream, int64(r.expected), int64(last))
	if err != nil {
		return events.AppendResult{}, false, w.stmtErr(r, "read stored ids", err)
	}
	defer rows.Close()
	res := events.AppendResult{Version: last, Positions: make([]uint64, 0, len(r.evs))}
	match := true
	for rows.Next() {
		var (
			id  string
			pos int64
		)
		if err := rows.Scan(&id, &pos); err != nil {
			return events.AppendResult{}, false, w.stmtErr(r, "read stored ids", err)
		}
		if i := len(res.Positions); i >= len(r.evs) || r.evs[i].ID != id {
			match = false
		}
		res.Positions = append(res.Positions, uint64(pos))
	}
	if err := rows.Err(); err != nil {
		return events.AppendResult{}, false, w.stmtErr(r, "read stored ids", err)
	}
	if !match || len(res.Positions) != len(r.evs) {
		return events.AppendResult{}, false, nil
	}
	return res, true, nil
}

// stmtErr wraps a statement that failed for one append. Such a failure is the
// file's (I/O, full disk, corruption), not the caller's: nothing of this
// append was written, and a retry is safe.
func (w *writer) stmtErr(r *appendReq, op string, err error) error {
	return fmt.Errorf("sqlitestore: append to %q: %s: %w: %w", r.stream, op, events.ErrUnavailable, err)
}
