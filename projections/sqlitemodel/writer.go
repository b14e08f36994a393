package sqlitemodel

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	driver "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/icpservice/icp/platform/groupcommit"
	"github.com/icpservice/icp/projections"
)

// applyReq is one Apply call waiting for the writer.
type applyReq = groupcommit.Request[item, projections.Outcome]

// item is one view to write, with the JSON of its UserIDs, encoded by the
// caller's goroutine rather than the writer's.
type item struct {
	view  projections.View
	users []byte
}

// queue joins Apply to the writer goroutine.
func (m *Model) queue() groupcommit.Queue[item, projections.Outcome] {
	return groupcommit.Queue[item, projections.Outcome]{Requests: m.reqs, Closed: m.stop, Exited: m.writerDone}
}

// Apply writes each view only onto stored version view.Version-1 (nothing
// for version 1), in slice order, in one transaction that may be shared with
// other callers' views (group commit). When it returns nil every applied view
// is durable. On error nothing may be assumed applied. A view this read model
// can never hold (malformed, a document over Options.MaxDocBytes, or one
// SQLite refuses as too big) fails with a *projections.RefusedError naming
// it; engine failures that may pass wrap projections.ErrUnavailable.
func (m *Model) Apply(ctx context.Context, views []projections.View) ([]projections.Outcome, error) {
	if len(views) == 0 {
		return []projections.Outcome{}, nil
	}
	items := make([]item, len(views))
	for i, v := range views {
		if err := projections.ValidateView(v); err != nil {
			return nil, &projections.RefusedError{ID: v.ID, Version: v.Version, Reason: fmt.Sprintf("sqlitemodel: view %d: %v", i, err)}
		}
		if len(v.Doc) > m.opts.MaxDocBytes {
			return nil, &projections.RefusedError{ID: v.ID, Version: v.Version,
				Reason: fmt.Sprintf("sqlitemodel: document of %d bytes exceeds the limit of %d", len(v.Doc), m.opts.MaxDocBytes)}
		}
		users := v.UserIDs
		if v.Deleted || users == nil {
			users = []string{}
		}
		b, err := json.Marshal(users)
		if err != nil {
			return nil, err
		}
		items[i] = item{view: v, users: b}
	}
	out, err := m.queue().Call(ctx, items)
	if errors.Is(err, groupcommit.ErrClosed) {
		return nil, unavailable("apply", ErrClosed)
	}
	return out, err
}

// writer owns the single write connection and its prepared statements.
type writer struct {
	m                                             *Model
	conn                                          *sql.Conn
	insert, update, current, delMember, insMember *sql.Stmt
}

func newWriter(ctx context.Context, m *Model) (*writer, error) {
	conn, err := m.wdb.Conn(ctx)
	if err != nil {
		return nil, err
	}
	w := &writer{m: m, conn: conn}
	prep := func(dst **sql.Stmt, q string) {
		if err != nil {
			return
		}
		*dst, err = conn.PrepareContext(ctx, q)
	}
	prep(&w.insert, `INSERT INTO icps (id, tenant, version, position, deleted, created_by, user_ids, doc)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`)
	prep(&w.update, `UPDATE icps SET tenant = ?, version = ?, position = ?, deleted = ?, created_by = ?, user_ids = ?, doc = ?
		WHERE id = ? AND version = ?`)
	prep(&w.current, `SELECT version, tenant, position, user_ids FROM icps WHERE id = ?`)
	prep(&w.delMember, `DELETE FROM icp_members WHERE tenant = ? AND user_id = ? AND position = ? AND id = ?`)
	prep(&w.insMember, `INSERT OR IGNORE INTO icp_members (tenant, user_id, position, id) VALUES (?, ?, ?, ?)`)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return w, nil
}

// run is the group-commit loop: it takes every call queued while the
// previous transaction was committing (up to MaxBatch views) and writes them
// in one transaction, so one fsync serves them all. After Close it finishes
// what is queued, then exits.
func (w *writer) run() {
	defer close(w.m.writerDone)
	defer func() { _ = w.conn.Close() }()
	w.m.queue().Serve(groupcommit.Writer[item, projections.Outcome]{
		MaxBatch:  w.m.opts.MaxBatch,
		Write:     w.write,
		Committed: w.committed,
		Took:      func(calls int) { w.m.taken.Add(uint64(calls)) },
	})
}

// committed counts a commit and hands the versions it made durable to
// their waiters.
func (w *writer) committed(items []item, out []projections.Outcome) {
	var touched []committed
	for i, o := range out {
		if o.Applied {
			touched = append(touched, committed{items[i].view.ID, items[i].view.Version})
		}
	}
	w.m.commits.Add(1)
	w.m.written.Add(uint64(len(touched)))
	w.m.wake(touched)
}

// write runs the batch in one transaction. Any engine error fails the whole
// batch: every caller gets it and retries (already-applied views then report
// Applied false), which keeps "nil means durable" simple to reason about.
func (w *writer) write(items []item) (out []projections.Outcome, err error) {
	ctx := context.Background() // a caller leaving must not abort others' writes
	// The transaction is opened with plain statements on the writer's own
	// connection rather than with database/sql's Tx: Tx.Stmt re-prepares
	// every statement that was prepared on a Conn, once per batch.
	if _, err := w.conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		return nil, unavailable("begin", err)
	}
	defer func() {
		if err != nil {
			_, _ = w.conn.ExecContext(ctx, `ROLLBACK`)
		}
	}()
	st := txStmts{insert: w.insert, update: w.update, current: w.current, delMember: w.delMember, insMember: w.insMember}
	out = make([]projections.Outcome, len(items))
	for i, it := range items {
		if out[i], err = st.apply(ctx, it.view, it.users); err != nil {
			if tooBig(err) {
				return nil, &projections.RefusedError{ID: it.view.ID, Version: it.view.Version, Reason: "sqlitemodel: " + err.Error()}
			}
			return nil, err
		}
	}
	if _, err := w.conn.ExecContext(ctx, `COMMIT`); err != nil {
		return nil, unavailable("commit", err)
	}
	return out, nil
}

type txStmts struct {
	insert, update, current, delMember, insMember *sql.Stmt
}

// apply is the conditional write of one view inside the batch's transaction.
//
// The membership rows (what List reads) are kept in step by difference: an
// update removes the members it dropped and adds the ones it gained, so the
// table needs no index by ICP id (one random-key b-tree less to write per
// create; the key order (tenant, user, position) stays append-mostly).
func (st txStmts) apply(ctx context.Context, v projections.View, users []byte) (projections.Outcome, error) {
	if v.Version == 1 {
		return st.create(ctx, v, users)
	}
	deleted, doc := storedForm(v)
	var (
		stored, position int64
		tenant, oldJSON  string
	)
	switch err := st.current.QueryRowContext(ctx, v.ID).Scan(&stored, &tenant, &position, &oldJSON); {
	case errors.Is(err, sql.ErrNoRows):
		return projections.Outcome{Stored: 0}, nil
	case err != nil:
		return projections.Outcome{}, unavailable("read version", err)
	}
	if uint64(stored) != v.Version-1 {
		return projections.Outcome{Stored: uint64(stored)}, nil
	}
	res, err := st.update.ExecContext(ctx, v.Tenant, int64(v.Version), int64(v.Position), deleted, v.CreatedBy, users, doc, v.ID, stored)
	if err != nil {
		return projections.Outcome{}, unavailable("update view", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return projections.Outcome{}, unavailable("update view", fmt.Errorf("%d rows updated, %v", n, err))
	}
	if err := st.replaceMembers(ctx, v, tenant, position, oldJSON); err != nil {
		return projections.Outcome{}, err
	}
	return projections.Outcome{Applied: true, Stored: uint64(stored)}, nil
}

// create is the write of an ICP's first view: an insert that does nothing
// when the ICP is already there (its stored version is then reported).
func (st txStmts) create(ctx context.Context, v projections.View, users []byte) (projections.Outcome, error) {
	deleted, doc := storedForm(v)
	res, err := st.insert.ExecContext(ctx, v.ID, v.Tenant, int64(v.Version), int64(v.Position), deleted, v.CreatedBy, users, doc)
	if err != nil {
		return projections.Outcome{}, unavailable("insert view", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return projections.Outcome{}, unavailable("insert view", err)
	} else if n == 0 {
		var stored int64
		if err := st.current.QueryRowContext(ctx, v.ID).Scan(&stored, new(string), new(int64), new(string)); err != nil {
			return projections.Outcome{}, unavailable("read version", err)
		}
		return projections.Outcome{Stored: uint64(stored)}, nil
	}
	if !v.Deleted {
		if err := st.addMembers(ctx, v.Tenant, v.Position, v.ID, v.UserIDs); err != nil {
			return projections.Outcome{}, err
		}
	}
	return projections.Outcome{Applied: true}, nil
}

// replaceMembers keeps the membership rows of a view just updated in step:
// those of the stored view (tenant, position, members oldJSON) that it
// dropped go, the ones it gained come.
func (st txStmts) replaceMembers(ctx context.Context, v projections.View, tenant string, position int64, oldJSON string) error {
	var old []string
	if err := json.Unmarshal([]byte(oldJSON), &old); err != nil {
		return unavailable("read members", err)
	}
	var keep []string
	if !v.Deleted {
		keep = v.UserIDs
	}
	moved := tenant != v.Tenant || uint64(position) != v.Position
	var gone, added []string
	if moved {
		gone, added = old, keep
	} else {
		gone, added = difference(old, keep), difference(keep, old)
	}
	for _, u := range gone {
		if _, err := st.delMember.ExecContext(ctx, tenant, u, position, v.ID); err != nil {
			return unavailable("write members", err)
		}
	}
	if err := st.addMembers(ctx, v.Tenant, v.Position, v.ID, added); err != nil {
		return err
	}
	return nil
}

func (st txStmts) addMembers(ctx context.Context, tenant string, position uint64, id string, users []string) error {
	for _, u := range users {
		if _, err := st.insMember.ExecContext(ctx, tenant, u, int64(position), id); err != nil {
			return unavailable("write members", err)
		}
	}
	return nil
}

// tooBig reports whether SQLite refused a value as larger than it can hold
// (SQLITE_TOOBIG): writing it again can never succeed.
func tooBig(err error) bool {
	var se *driver.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_TOOBIG
}

// difference returns the members of a that are not in b.
func difference(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}
