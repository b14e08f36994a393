package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
)

// A Reader pool keeps its statements. A query run on one of its connections,
// through DB.QueryContext or through Conn.Raw and the driver connection's
// QueryContext, reuses the statement that connection prepared for the same
// text, instead of parsing and planning it again: preparing a statement cost
// as much as running the event store's short reads (BenchmarkStoreCheck in
// projections/projector, BenchmarkReadAll in events/sqlitestore).
//
// The driver has no statement cache of its own, and database/sql keeps a
// prepared statement per connection only behind *sql.Stmt, whose rows go
// through Scan; the event store reads driver rows directly (see
// sqlitestore's queryRecorded), so the cache sits at the driver connection.
//
// Contract: the results are those of an uncached query. A statement is
// reset when its rows are closed, so it holds no read transaction, and no
// WAL snapshot, between queries. A statement whose rows are still open is
// not reused: a second query of the same text on the same connection gets
// its own statement. A query that fails drops its statement. At most
// maxCachedStmts texts are kept per connection; others are prepared per
// query. Closing the connection finalizes its statements.
const maxCachedStmts = 32

// cachingConnector opens driver connections for a Reader pool, each with
// its statement cache.
type cachingConnector struct {
	dsn string
	drv driver.Driver
}

func (c *cachingConnector) Connect(context.Context) (driver.Conn, error) {
	dc, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	cc, ok := dc.(ctxConn)
	if !ok {
		dc.Close()
		return nil, errors.New("sqlite: driver connection lacks the context interfaces the statement cache forwards")
	}
	return &cachingConn{ctxConn: cc, stmts: make(map[string]*cachedStmt)}, nil
}

func (c *cachingConnector) Driver() driver.Driver { return c.drv }

// ctxConn is what the cache needs of the driver's connection.
type ctxConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.QueryerContext
	driver.ExecerContext
}

// cachingConn is a driver connection with its statement cache. database/sql
// uses a connection from one goroutine at a time, so it needs no lock.
type cachingConn struct {
	ctxConn
	stmts map[string]*cachedStmt
}

type cachedStmt struct {
	stmt driver.StmtQueryContext
	busy bool // its rows are open
}

// QueryContext runs query on the statement cached for its text.
func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	cs, ok := c.stmts[query]
	if !ok && len(c.stmts) < maxCachedStmts {
		st, err := c.ctxConn.PrepareContext(ctx, query)
		if err != nil {
			return nil, err
		}
		sq, canQuery := st.(driver.StmtQueryContext)
		if !canQuery {
			st.Close()
			return c.ctxConn.QueryContext(ctx, query, args)
		}
		cs = &cachedStmt{stmt: sq}
		c.stmts[query] = cs
	}
	if cs == nil || cs.busy {
		return c.ctxConn.QueryContext(ctx, query, args)
	}
	rows, err := cs.stmt.QueryContext(ctx, args)
	if err != nil {
		delete(c.stmts, query)
		cs.stmt.(driver.Stmt).Close()
		return nil, err
	}
	cs.busy = true
	return &cachedRows{Rows: rows, stmt: cs}, nil
}

// cachedRows frees its statement for the next query when closed.
type cachedRows struct {
	driver.Rows
	stmt *cachedStmt
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	r.stmt.busy = false
	return err
}

func (c *cachingConn) Close() error {
	var errs []error
	for q, cs := range c.stmts {
		errs = append(errs, cs.stmt.(driver.Stmt).Close())
		delete(c.stmts, q)
	}
	return errors.Join(append(errs, c.ctxConn.Close())...)
}

func (c *cachingConn) Ping(ctx context.Context) error {
	if p, ok := c.ctxConn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *cachingConn) ResetSession(ctx context.Context) error {
	if r, ok := c.ctxConn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *cachingConn) IsValid() bool {
	if v, ok := c.ctxConn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}
