package esdbstore

import (
	"context"
	"fmt"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/icpservice/icp/events"
)

// Why the store manages clients itself rather than keeping one esdb.Client:
//
//   - a client whose connection discovery fails closes itself for good;
//   - after a call fails with Unavailable the client rediscovers on its next
//     call, inside its connection goroutine; if that discovery fails, the
//     goroutine exits and any call already waiting to talk to it (the
//     client's channel is unbuffered, and getting a connection ignores the
//     call's context) blocks forever;
//   - closing a client while another goroutine is still inside one of its
//     calls can panic (a send on its closed channel).
//
// So: one connection attempt at a time, made by the store before a client is
// handed out (every caller waits for it with its own context); a client that
// saw the server unreachable is retired at once and a fresh one built for the
// next call; a retired client is closed only when no call is inside it; and
// each call runs on its own goroutine, so that the caller returns when its
// context ends even if the client does not.

// generation is one client and the calls inside it. Its fields are guarded
// by Store.mu.
type generation struct {
	client  *esdb.Client
	refs    int
	retired bool
	closed  bool
}

// retire marks g retired and reports whether the caller must close its
// client now (no call inside it). Call with Store.mu held.
func (g *generation) retire() (closeNow bool) {
	g.retired = true
	if g.refs == 0 && !g.closed {
		g.closed = true
		return true
	}
	return false
}

// dialAttempt is one attempt to build a connected client.
type dialAttempt struct {
	done chan struct{}
	err  error // set before done is closed
}

// acquire returns the current client, building one if needed, with a
// reference the caller must release.
func (s *Store) acquire(ctx context.Context) (*generation, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		if g := s.cur; g != nil {
			g.refs++
			s.mu.Unlock()
			return g, nil
		}
		a := s.dialing
		if a == nil {
			a = &dialAttempt{done: make(chan struct{})}
			s.dialing = a
			go s.dial(a)
		}
		s.mu.Unlock()
		select {
		case <-a.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("esdbstore: connecting to %s: %w: %w", s.addr, events.ErrUnavailable, ctx.Err())
		}
		if a.err != nil {
			return nil, fmt.Errorf("esdbstore: connecting to %s: %w: %w", s.addr, events.ErrUnavailable, a.err)
		}
	}
}

// dial builds a client and makes it connect: the client discovers the node
// on its first call, and asking for the server version is a call that needs
// nothing but that.
func (s *Store) dial(a *dialAttempt) {
	cfg := s.cfg
	c, err := esdb.NewClient(&cfg)
	if err == nil {
		if _, err = c.GetServerVersion(); err != nil {
			_ = c.Close() // dead already; this only frees it
		}
	}
	s.mu.Lock()
	s.dialing = nil
	a.err = err
	closeNow := false
	if err == nil {
		if s.closed {
			closeNow = true
		} else {
			s.cur = &generation{client: c}
		}
	}
	close(a.done)
	s.mu.Unlock()
	if closeNow {
		_ = c.Close()
	}
}

// release returns a reference taken by acquire. err is the call's outcome:
// an error that shows the server unreachable retires the client.
func (s *Store) release(g *generation, err error) {
	s.mu.Lock()
	g.refs--
	if err != nil && breaksClient(err) && s.cur == g {
		s.cur = nil
		g.retired = true
	}
	closeNow := false
	if g.retired && g.refs == 0 && !g.closed {
		g.closed = true
		closeNow = true
	}
	s.mu.Unlock()
	if closeNow {
		_ = g.client.Close()
	}
}

// do runs fn with a connected client on its own goroutine and returns its
// error, or an error wrapping events.ErrUnavailable and ctx.Err() as soon
// as ctx ends. fn must honour ctx in the client calls it makes. When do
// returns an error, fn may still be running: read what fn writes only after
// do returned nil.
func (s *Store) do(ctx context.Context, fn func(c *esdb.Client) error) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.inflight.Add(1)
	s.mu.Unlock()
	defer s.inflight.Done()

	g, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() {
		err := fn(g.client)
		s.release(g, err)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("esdbstore: %w: %w", events.ErrUnavailable, ctx.Err())
	}
}
