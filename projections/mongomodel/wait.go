package mongomodel

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// WaitFor returns nil once the stored version of id is >= version
// (tombstones count), or ctx.Err() when ctx ends first (wrapped with the
// last read error, if any; errors.Is still matches ctx.Err()).
//
// The answer always comes from the stored data, read from the primary with
// majority read concern, so it holds for a writer in another process. It
// polls with a backoff from PollMin to PollMax; an Apply by this Model wakes
// the waiters of the ids it wrote at once. A change stream would wake
// waiters of other processes' writes sooner, but costs a server cursor per
// waiter (or a shared stream with resume handling) and needs a replica set;
// polling works on every deployment. After Close it returns an error
// wrapping projections.ErrUnavailable.
func (m *Model) WaitFor(ctx context.Context, id string, version uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if m.closed() {
		return unavailable("wait", ErrClosed)
	}
	delay := m.opts.PollMin
	// Go >= 1.23 timers: Reset discards a pending tick, no draining needed.
	timer := time.NewTimer(delay)
	defer timer.Stop()
	var lastErr error
	for {
		// Register before reading, so an Apply between the read and the
		// wait cannot be missed.
		ch := m.addWaiter(id)
		stored, err := m.storedVersion(ctx, id)
		if err == nil && stored >= version {
			m.removeWaiter(id, ch)
			return nil
		}
		if err != nil {
			lastErr = err
		}
		if cerr := ctx.Err(); cerr != nil {
			m.removeWaiter(id, ch)
			return withLast(cerr, lastErr)
		}
		timer.Reset(delay)
		select {
		case <-ch:
			delay = m.opts.PollMin
		case <-timer.C:
			m.removeWaiter(id, ch)
			delay = min(2*delay, m.opts.PollMax)
		case <-ctx.Done():
			m.removeWaiter(id, ch)
			return withLast(ctx.Err(), lastErr)
		case <-m.stop:
			m.removeWaiter(id, ch)
			return unavailable("wait", ErrClosed)
		}
	}
}

func withLast(ctxErr, last error) error {
	if last == nil {
		return ctxErr
	}
	return fmt.Errorf("%w (last read: %v)", ctxErr, last)
}

// storedVersion is the version stored for id, 0 when none.
func (m *Model) storedVersion(ctx context.Context, id string) (uint64, error) {
	if err := m.ready(ctx); err != nil {
		return 0, err
	}
	ctx, cancel := m.opCtx(ctx)
	defer cancel()
	var got struct {
		Version int64 `bson:"version"`
	}
	err := m.coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}},
		options.FindOne().SetProjection(bson.D{{Key: "version", Value: 1}})).Decode(&got)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	if err != nil {
		return 0, unavailable("wait", err)
	}
	if got.Version < 0 {
		return 0, fmt.Errorf("mongomodel: stored ICP %s has version %d", id, got.Version)
	}
	return uint64(got.Version), nil
}

func (m *Model) addWaiter(id string) chan struct{} {
	ch := make(chan struct{})
	m.waitMu.Lock()
	m.waiters[id] = append(m.waiters[id], ch)
	m.waitMu.Unlock()
	return ch
}

func (m *Model) removeWaiter(id string, ch chan struct{}) {
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

// wake signals the waiters of ids after a batch that wrote them.
func (m *Model) wake(ids []string) {
	if len(ids) == 0 {
		return
	}
	m.waitMu.Lock()
	defer m.waitMu.Unlock()
	for _, id := range ids {
		for _, ch := range m.waiters[id] {
			close(ch)
		}
		delete(m.waiters, id)
	}
}
