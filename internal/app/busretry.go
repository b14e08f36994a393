package app

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/icpservice/icp/platform/redact"
	"github.com/nats-io/nats.go"
)

// Reconnect backoff of the NATS connections: the first retry comes soon
// after a failure, later ones further apart, never more than busRetryMax.
const (
	busRetryFirst = 250 * time.Millisecond
	busRetryMax   = 5 * time.Second
)

// busRetry makes a NATS connection retry with backoff, from the first
// connect on, and log each retry with its delay and once on success. A NATS
// server that is not reachable at start is therefore waited for, like the
// stores: /readyz answers 503 until the connection is up.
type busRetry struct {
	a       *App
	name    string
	lastErr atomic.Value // error of the last failed attempt (errorBox)
	failed  atomic.Bool  // an attempt failed since the last success
}

type errorBox struct{ err error }

// busRetryOptions are the nats.go options that give the connection called
// name this behaviour. Connections derived from it with its Opts (the
// projector's own) keep them.
func (a *App) busRetryOptions(name string) []nats.Option {
	r := &busRetry{a: a, name: name}
	return []nats.Option{
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(r.delay),
		nats.ReconnectErrHandler(r.attemptFailed),
		nats.ConnectHandler(r.up),
		nats.ReconnectHandler(r.up),
	}
}

// delay is called by nats.go after every server of the list failed, with
// the number of such rounds in the current outage.
func (r *busRetry) delay(round int) time.Duration {
	d := busRetryMax
	if round < 6 {
		d = min(busRetryFirst<<(round-1), busRetryMax)
	}
	d += rand.N(d / 5) // jitter, so that replicas do not retry in step
	attrs := []any{"conn", r.name, "nats", redact.URLs(r.a.NATSURL()), "retry_in", d.Round(time.Millisecond)}
	if b, ok := r.lastErr.Load().(errorBox); ok && b.err != nil {
		attrs = append(attrs, "err", b.err)
	}
	r.a.log.Warn("NATS not reachable; retrying (readyz answers 503 until it is)", attrs...)
	return d
}

func (r *busRetry) attemptFailed(_ *nats.Conn, err error) {
	r.failed.Store(true)
	r.lastErr.Store(errorBox{err})
}

func (r *busRetry) up(nc *nats.Conn) {
	if r.failed.Swap(false) {
		r.a.log.Info("NATS reachable", "conn", nc.Opts.Name, "nats", nc.ConnectedUrlRedacted())
	}
}

// whenConnected runs start once nc is connected: at once, returning its
// error, when nc already is; otherwise in the background once nc connects,
// retrying start with backoff until it succeeds or the process stops
// (logging each failure with its retry delay). A connection nats.go closes
// for good ends Run with an error. /readyz answers 503 in the
// meantime, since nc is one of the connections it checks.
func (a *App) whenConnected(nc *nats.Conn, name string, start func(context.Context) error) error {
	if nc.IsConnected() {
		return start(a.partsCtx)
	}
	a.log.Warn("NATS not reachable yet; "+name+" starts once it is (readyz answers 503 until then)", "nats", redact.URLs(a.NATSURL()))
	a.parts.Add(1)
	go func() {
		defer a.parts.Done()
		ctx := a.partsCtx
		delay := busRetryFirst
		for ctx.Err() == nil {
			if nc.IsClosed() {
				// nats.go gave up (e.g. the server refused the
				// credentials twice): stop the process like a failed part.
				a.partsErr <- fmt.Errorf("%s: NATS connection closed before it could start: %v", name, nc.LastError())
				return
			}
			if !nc.IsConnected() {
				// The connection itself retries and logs; this only
				// notices it is up.
				sleepCtx(ctx, 100*time.Millisecond)
				continue
			}
			err := start(ctx)
			if err == nil || ctx.Err() != nil {
				return
			}
			a.log.Warn(name+" could not start; retrying", "err", err, "retry_in", delay)
			sleepCtx(ctx, delay)
			delay = min(delay*2, 30*time.Second)
		}
	}()
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
