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
// version a commit of this process has made durable, which it hands to the
// waiters of the ids it touched and keeps for the waiters that come later
// (no broadcast to every waiter, and no read of the file on the hot path of
// read-your-writes). While this process's writer is committing, the first
// read of the file is skipped: the writer's answer comes sooner. A poll every
// PollInterval catches writes made by another process.
// Read errors are retried at the next poll; after Close it returns an error
// wrapping projections.ErrUnavailable.
func (m *Model) WaitFor(ctx context.Context, id string, version uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	timer := time.NewTimer(m.opts.PollInterval)
	defer timer.Stop()
	for first := true; ; first = false {
		// Register before reading, so a commit between the read and the
		// wait cannot be missed.
		ch, recent := m.addWaiter(id)
		if recent >= version {
			m.removeWaiter(id, ch)
			return nil
		}
		if !first || !m.writingNow() {
			stored, err := m.storedVersion(ctx, id)
			if err == nil && stored >= version {
				m.removeWaiter(id, ch)
				return nil
			}
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

// writingNow reports whether this process's writer committed within the
// last PollInterval.
func (m *Model) writingNow() bool {
	last := m.lastCommit.Load()
	return last != 0 && time.Since(time.Unix(0, last)) < m.opts.PollInterval
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

// recentCommits remembers the versions the last commits of this process
// made durable (at most recentSize of them), for the waiters that register
// after the commit.
type recentCommits struct {
	ring     []committed
	next     int
	versions map[string]uint64
}

const recentSize = 16384

func (r *recentCommits) add(c committed) {
	if r.versions == nil {
		r.versions = make(map[string]uint64, recentSize)
		r.ring = make([]committed, recentSize)
	}
	if old := r.ring[r.next]; old.id != "" && r.versions[old.id] == old.version {
		delete(r.versions, old.id)
	}
	r.ring[r.next] = c
	r.next = (r.next + 1) % recentSize
	if c.version > r.versions[c.id] {
		r.versions[c.id] = c.version
	}
}

// addWaiter registers a channel that receives the version of the next
// commit of id (buffered: the writer never blocks on a waiter), and returns
// the version a recent commit of this process made durable (0: none known).
func (m *Model) addWaiter(id string) (chan uint64, uint64) {
	ch := make(chan uint64, 1)
	m.waitMu.Lock()
	m.waiters[id] = append(m.waiters[id], ch)
	recent := m.recent.versions[id]
	m.waitMu.Unlock()
	return ch, recent
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

// wake hands the committed versions to the waiters of their ids and keeps
// them for later waiters, after the commit that wrote them.
func (m *Model) wake(done []committed) {
	if len(done) == 0 {
		return
	}
	m.lastCommit.Store(time.Now().UnixNano())
	m.waitMu.Lock()
	defer m.waitMu.Unlock()
	for _, c := range done {
		m.recent.add(c)
		for _, ch := range m.waiters[c.id] {
			ch <- c.version
		}
		delete(m.waiters, c.id)
	}
}
