// Package projector keeps the read model up to date from the bus: it consumes
// ICP_EVENTS with a durable JetStream pull consumer, in batches, and applies
// each ICP's events in version order (see project for the rule), so that
// every event is applied exactly once whatever the bus redelivers, reorders
// or loses.
//
// Replicas with the same Durable share one consumer; the version guard of the
// read model keeps them from applying an event twice.
//
// Events the bus stream dropped (retention) before the durable applied them
// are read from the event store: the durable's progress is recorded as a
// watermark (events/watermark), and a stream that no longer holds the
// message after it is caught up from the store (see checkpoint and
// docs/operations.md, "Catching up after retention").
package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/icpservice/icp/bus"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/watermark"
	"github.com/icpservice/icp/projections"
)

// Projector projects bus events into the read model. Create it with New and
// start it with Run.
type Projector struct {
	cfg   Config
	rm    projections.ReadModel
	store events.Store
	log   *slog.Logger

	pubJS jetstream.JetStream
	// dlq writes the dead letters, through pubJS.
	dlq   *bus.DeadLetterer
	stats counters
	// verified is the largest position of an event a batch found in the
	// store: the next batch's check reads on from there. Only the batch
	// writer's goroutine uses it.
	verified uint64
	tracer   trace.Tracer
	backoff  bus.Backoff
	// marks records the durable's watermark (see checkpoint); opened by
	// the first checkpoint. Only the batch writer's goroutine uses it.
	marks *watermark.Tracker

	started  atomic.Bool
	ready    atomic.Bool
	stopping atomic.Bool
	subConn  atomic.Pointer[nats.Conn]
}

type counters struct {
	applied, alreadyApplied, gapFilled, deadLettered, retried atomic.Uint64
	caughtUp, caughtUpAlready, catchUpSkipped, catchUps       atomic.Uint64
}

// Stats counts what the projector did since New.
type Stats struct {
	// Applied counts bus events written to the read model.
	Applied uint64
	// AlreadyApplied counts bus events the read model already held
	// (redeliveries, duplicates, or events written by a gap fill).
	AlreadyApplied uint64
	// GapFilled counts events read from the event store and written to fill
	// a gap before a bus event.
	GapFilled uint64
	// DeadLettered counts messages copied to the dead-letter subject.
	DeadLettered uint64
	// Retried counts messages handed back for a later redelivery.
	Retried uint64
	// CaughtUpFromStore counts events read from the event store and
	// written to the read model because the bus stream dropped them before
	// this durable applied them (see checkpoint).
	CaughtUpFromStore uint64
	// CatchUpAlreadyApplied counts events a catch-up read that the read
	// model held already.
	CatchUpAlreadyApplied uint64
	// CatchUpSkipped counts stored events a catch-up found that can never
	// be applied (logged with their id).
	CatchUpSkipped uint64
	// CatchUps counts gaps closed by a catch-up.
	CatchUps uint64
}

// New checks cfg and returns a projector that is not yet running. Its spans
// go to the global tracer provider as it is when New runs.
func New(cfg Config) (*Projector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Projector{
		cfg:     cfg,
		rm:      cfg.ReadModel,
		store:   cfg.Store,
		log:     cfg.Logger.With("component", "projector", "durable", cfg.Durable),
		tracer:  otel.GetTracerProvider().Tracer("github.com/icpservice/icp/projections/projector"),
		backoff: bus.Backoff{First: cfg.RetryDelay, Max: cfg.MaxRetryDelay},
	}, nil
}

// Stats returns the counters.
func (p *Projector) Stats() Stats {
	return Stats{
		Applied:        p.stats.applied.Load(),
		AlreadyApplied: p.stats.alreadyApplied.Load(),
		GapFilled:      p.stats.gapFilled.Load(),
		DeadLettered:   p.stats.deadLettered.Load(),
		Retried:        p.stats.retried.Load(),

		CaughtUpFromStore:     p.stats.caughtUp.Load(),
		CatchUpAlreadyApplied: p.stats.caughtUpAlready.Load(),
		CatchUpSkipped:        p.stats.catchUpSkipped.Load(),
		CatchUps:              p.stats.catchUps.Load(),
	}
}

// Ready reports whether the projector is subscribed and connected: messages
// are being consumed.
func (p *Projector) Ready() bool {
	c := p.subConn.Load()
	return p.ready.Load() && c != nil && c.IsConnected()
}

// Run consumes until ctx ends, then stops gracefully: it stops pulling new
// messages, lets the batch in flight and the messages already pulled be
// handled and acked (within ShutdownTimeout), and returns nil. Messages the
// server had sent that reach no batch are delivered again after AckWait. It
// returns an error if the setup fails (the bus stream not appearing before
// ctx ends is not an error: Run keeps waiting for it) or if consuming stops
// for good (connection closed, consumer deleted). Run may be called once.
func (p *Projector) Run(ctx context.Context) (err error) {
	if !p.started.CompareAndSwap(false, true) {
		return errors.New("projector: Run called twice")
	}
	pubConn, ownPub, err := p.publishConn()
	if err != nil {
		return err
	}
	if ownPub {
		defer pubConn.Close()
	}
	cons, err := p.setUp(ctx, pubConn)
	if cons == nil {
		return err
	}
	closed := make(chan struct{})
	subConn, err := p.connect("icp-projector-"+p.cfg.Durable, func(*nats.Conn) { close(closed) })
	if err != nil {
		return err
	}
	p.subConn.Store(subConn)
	defer subConn.Close()
	f, err := p.subscribe(ctx, subConn, cons.CachedInfo().Name)
	if f == nil {
		return err
	}
	// Batches are handled on a context that outlives ctx: cancelling it
	// would abandon the batch in flight before its acks.
	go p.batchLoop(context.WithoutCancel(ctx), f.in, f.stop, f.done)
	p.ready.Store(true)
	p.log.Info("projector: consuming", "stream", events.BusStream, "max_batch", p.cfg.Concurrency)

	var runErr error
	select {
	case <-ctx.Done():
	case <-closed:
		runErr = errors.New("projector: NATS connection closed")
	case err := <-f.gone:
		runErr = fmt.Errorf("projector: consumer %s gone: %w", p.cfg.Durable, err)
	}
	p.drain(ctx, f, subConn)
	p.log.Info("projector: stopped", "stats", fmt.Sprintf("%+v", p.Stats()))
	return runErr
}

// drain is the graceful stop: no more pulls, the messages already pulled
// and the batch in flight are handled and acked within ShutdownTimeout, the
// acks are flushed, and, when the batch loop finished, the durable's
// watermark is recorded so that a stream that drops messages while the
// projector is down is caught up from there.
func (p *Projector) drain(ctx context.Context, f *feed, subConn *nats.Conn) {
	p.ready.Store(false)
	p.stopping.Store(true)
	f.cc.Drain()
	deadline := time.After(p.cfg.ShutdownTimeout)
	select {
	case <-f.cc.Closed():
	case <-deadline:
	}
	close(f.stop)
	select {
	case <-f.done:
	case <-deadline:
		p.log.Warn("projector: the batch in flight did not finish in time; it is delivered again after AckWait")
	}
	// Acks are published without waiting for the server's answer: flush
	// them before the connection closes.
	if err := subConn.FlushTimeout(time.Second); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		p.log.Warn("projector: flush acks", "err", err)
	}
	select {
	case <-f.done:
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.ShutdownTimeout)
		p.checkpoint(cctx)
		cancel()
	default:
	}
}

// batchLoop handles what the subscription delivers until stop is closed and
// everything delivered before it is handled. It reads and decodes messages
// while the previous batch is being written, and the next batch is all that
// was decoded meanwhile (at most Concurrency messages): batches grow with the
// load, and are written strictly one after another, in delivery order. Under
// load (the previous batch held more than one message) a batch is handed
// over no sooner than Config.Linger after its first message arrived, unless
// it is full.
func (p *Projector) batchLoop(ctx context.Context, in <-chan jetstream.Msg, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	decoded := make(chan []*item)
	written := make(chan struct{})
	go p.writeBatches(ctx, decoded, written)
	defer func() {
		close(decoded)
		<-written
	}()
	max := cap(in)
	var ready []*item
	b := newBatcher(p.cfg.Linger)
	defer b.timer.Stop()
	for {
		recv, send := in, decoded
		if len(ready) >= max {
			recv = nil
		}
		if !b.ready(len(ready), max) {
			send = nil
		}
		select {
		case m := <-recv:
			ready = append(ready, p.inspect(ctx, m))
			b.arrived(len(ready))
		case <-b.timer.C:
			b.expired()
		case send <- ready:
			b.sent(len(ready))
			ready = nil
		case <-stop:
			if ready = p.inspectQueued(ctx, in, ready); len(ready) > 0 {
				decoded <- ready
			}
			return
		}
	}
}

// inspectQueued adds the messages queued in in to ready, without waiting.
func (p *Projector) inspectQueued(ctx context.Context, in <-chan jetstream.Msg, ready []*item) []*item {
	for {
		select {
		case m := <-in:
			ready = append(ready, p.inspect(ctx, m))
		default:
			return ready
		}
	}
}

// writeBatches writes the batches batchLoop hands over, one after another,
// and records the durable's watermark when it starts and every
// CheckpointInterval, on this one goroutine; it closes written when decoded
// is closed.
func (p *Projector) writeBatches(ctx context.Context, decoded <-chan []*item, written chan<- struct{}) {
	defer close(written)
	p.checkpoint(ctx)
	tick := time.NewTicker(p.cfg.CheckpointInterval)
	defer tick.Stop()
	for {
		select {
		case items, ok := <-decoded:
			if !ok {
				return
			}
			p.handleBatch(ctx, items)
		case <-tick.C:
			p.checkpoint(ctx)
		}
	}
}

// publishConn returns the connection for dead letters and stream setup:
// Config.Conn when given (not owned), else a new owned connection.
func (p *Projector) publishConn() (*nats.Conn, bool, error) {
	if p.cfg.Conn != nil {
		return p.cfg.Conn, false, nil
	}
	c, err := p.connect("icp-projector-"+p.cfg.Durable+"-pub", nil)
	return c, true, err
}

// connect opens a connection the projector owns: with Config.Conn's options
// when given (so an in-process connection stays in-process), else to URL.
func (p *Projector) connect(name string, onClosed nats.ConnHandler) (*nats.Conn, error) {
	var (
		c   *nats.Conn
		err error
	)
	if p.cfg.Conn != nil {
		o := p.cfg.Conn.Opts
		o.Name = name
		o.ClosedCB = onClosed
		o.DrainTimeout = p.cfg.ShutdownTimeout
		if u := p.cfg.Conn.ConnectedUrl(); u != "" && o.Url == "" && len(o.Servers) == 0 {
			o.Url = u
		}
		c, err = o.Connect()
	} else {
		opts := append([]nats.Option{}, p.cfg.NatsOptions...)
		opts = append(opts, nats.Name(name), nats.DrainTimeout(p.cfg.ShutdownTimeout))
		if onClosed != nil {
			opts = append(opts, nats.ClosedHandler(onClosed))
		}
		c, err = nats.Connect(p.cfg.URL, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("projector: connect to NATS: %w", err)
	}
	return c, nil
}
