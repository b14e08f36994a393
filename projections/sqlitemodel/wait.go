package sqlitemodel

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// WaitFor returns nil once the stored version of id is >= version
// (tombstones count), or ctx.Err() when ctx ends first.
//
// The answer always comes from the stored data: a read of the file, or the
// version a commit of this process has just made durable, which it hands to
// the waiters of the ids it touched (no broadcast to every waiter, and no
// second read on the hot path of read-your-writes). A poll every
// PollInterval catches writes made by another process.
// Read errors are retried at the next poll; after Close it returns an error
// wrapping projections.ErrUnavailable.
func (m *Model) WaitFor(ctx context.Context, id string, version uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	timer := time.NewTimer(m.opts.PollInterval)
	defer timer.Stop()
	for {
		// Register before reading, so a commit between the read and the
		// wait cannot be missed.
		ch := m.addWaiter(id)
		stored, err := m.storedVersion(ctx, id)
		if err == nil && stored >= version {
			m.removeWaiter(id, ch)
			return nil
		}
		if cerr := ctx.Err(); cerr != nil {
			m.removeWaiter(id, ch)
			return cerr
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(m.opts.PollInterval)
		select {
		case v := <-ch:
			if v >= version {
				return nil
			}
		case <-timer.C:
			m.removeWaiter(id, ch)
		case <-ctx.Done():
			m.removeWaiter(id, ch)
			return ctx.Err()
		case <-m.stop:
			m.removeWaiter(id, ch)
			return unavailable("wait", ErrClosed)
		}
	}
}

func (m *Model) storedVersion(ctx context.Context, id string) (uint64, error) {
	var v int64
	err := m.rdb.QueryRowContext(ctx, `SELECT version FROM icps WHERE id = ?`, id).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return uint64(v), err
}

// committed is an id and the version a commit made durable.
type committed struct {
	id      string
	version uint64
}

// addWaiter registers a channel that receives the version of the next
// commit of id (buffered: the writer never blocks on a waiter).
func (m *Model) addWaiter(id string) chan uint64 {
	ch := make(chan uint64, 1)
	m.waitMu.Lock()
	m.waiters[id] = append(m.waiters[id], ch)
	m.waitMu.Unlock()
	return ch
}

func (m *Model) removeWaiter(id string, ch chan uint64) {
	m.waitMu.Lock()
	defer m.waitMu.Unlock()
	ws := m.waiters[id]
	for i, w := range ws {
		if w == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(m.waiters, id)
	} else {
		m.waiters[id] = ws
	}
}

// wake hands the committed versions to the waiters of their ids, after the
// commit that wrote them.
func (m *Model) wake(done []committed) {
	if len(done) == 0 {
		return
	}
	m.waitMu.Lock()
	defer m.waitMu.Unlock()
	if len(m.waiters) == 0 {
		return
	}
	for _, c := range done {
		for _, ch := range m.waiters[c.id] {
			ch <- c.version
		}
		delete(m.waiters, c.id)
	}
}
