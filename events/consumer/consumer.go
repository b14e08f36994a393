// Package consumer is how a worker, in this repository or another, consumes
// the ICP events the service publishes on NATS JetStream (stream ICP_EVENTS,
// subjects icp.events.<Type>; see events/CONSUMERS.md for the contract), or
// the events `icpctl republish` published again on ICP_REPLAY
// (Config.Replay).
//
// A Consumer subscribes with a durable JetStream consumer through a watermill
// router, decodes each message into a typed event (upcasting older schema
// versions in one place, so handlers only see the current shape) and calls
// the handler registered for its type:
//
//   - Handler returns nil: the message is acknowledged, and the consumer
//     waits for JetStream to confirm the acknowledgement before taking the
//     next one.
//   - Handler returns an error or panics: the message is delivered again
//     after a backoff; after Config.MaxAttempts deliveries it is copied to
//     icp.dlq.<Durable> with the reason and acknowledged.
//   - Headers or payload that no release can read, or a ce-source other
//     than the service's: dead-lettered at once, the handler is not called.
//   - A schema version newer than this code knows (a newer release of the
//     service is rolling out): delivered again later, without limit, never
//     dead-lettered; upgrade the worker.
//   - An event type with no registered handler: acknowledged and skipped.
//
// Guarantees. Delivery is at least once: an event whose handler returned nil
// is delivered again only if its acknowledgement did not reach JetStream
// (the process died or lost its connection in between), and the relay may
// publish an event a second time after a long outage (beyond the stream's
// duplicate window), and an operator's `icpctl republish` puts events on
// ICP_REPLAY again for replay durables (Config.Replay), beyond that window
// too when repeated. Handlers must therefore be idempotent, with a durable
// record: skip an event whose ID, or whose (ICPID, Version), was already
// handled, whichever stream brought it. With the
// default Concurrency of 1, handlers are called one at a time in bus order,
// the event store's global order, across all processes sharing the durable
// and across restarts: each ICP's events arrive in version order, and an
// event that was in flight when a process died comes again before any later
// one. With Concurrency above 1 there is no order.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/icpservice/icp/bus"
	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
)

// Consumer consumes ICP events for one durable. Create it with New, register
// handlers with OnCreated, OnUpdated and OnDeleted, then call Run.
type Consumer struct {
	cfg Config
	src source
	log *slog.Logger
	dec decoder

	mu       sync.Mutex
	handlers map[string]dispatch

	// created: Run created the durable, which starts after startSeq
	// (recorded as its first watermark by the first missed-events check).
	created  bool
	startSeq uint64

	dlq    *bus.DeadLetterer
	stats  counters
	tracer trace.Tracer

	started  atomic.Bool
	ready    atomic.Bool
	stopping atomic.Bool
	conn     atomic.Pointer[nats.Conn]
}

// dispatch calls a typed handler with a decoded payload.
type dispatch func(ctx context.Context, env Envelope, payload any) error

type counters struct {
	handled, skipped, retried, deferred, deadLettered, missed atomic.Uint64
}

// Stats counts what a consumer did since New.
type Stats struct {
	// Handled counts handler calls that returned nil.
	Handled uint64
	// Skipped counts events of a type with no registered handler.
	Skipped uint64
	// Retried counts handler failures handed back for a later delivery.
	Retried uint64
	// Deferred counts deliveries of a schema version this code does not know
	// yet, handed back for a later delivery.
	Deferred uint64
	// DeadLettered counts messages copied to icp.dlq.<Durable>.
	DeadLettered uint64
	// Missed counts reports of events ICP_EVENTS dropped before this
	// durable acknowledged them (see Config.OnMissed).
	Missed uint64
}

// New checks cfg and returns a consumer that is not running yet. Each message
// is one consumer span from the global tracer provider as it is when New runs
// (see platform/telemetry.Setup), a child of the request that recorded the
// event; the handler's ctx carries that span.
func New(cfg Config) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	src := sourceOf(cfg)
	return &Consumer{
		cfg:      cfg,
		src:      src,
		log:      cfg.Logger.With("component", "consumer", "durable", cfg.Durable, "stream", src.stream),
		dec:      newDecoder(),
		handlers: map[string]dispatch{},
		tracer:   otel.GetTracerProvider().Tracer("github.com/icpservice/icp/events/consumer"),
	}, nil
}

// OnCreated registers the handler of ICPCreated events. Register handlers
// before Run; registering one twice replaces it.
func (c *Consumer) OnCreated(h Handler[domain.ICPCreatedV1]) {
	register(c, events.TypeICPCreated, h)
}

// OnUpdated registers the handler of ICPUpdated events (see OnCreated).
func (c *Consumer) OnUpdated(h Handler[domain.ICPUpdatedV1]) {
	register(c, events.TypeICPUpdated, h)
}

// OnDeleted registers the handler of ICPDeleted events (see OnCreated).
func (c *Consumer) OnDeleted(h Handler[domain.ICPDeletedV1]) {
	register(c, events.TypeICPDeleted, h)
}

// register panics on a nil handler or once Run has started: both are
// programming errors that no retry can fix.
func register[P any](c *Consumer, typ string, h Handler[P]) {
	if h == nil {
		panic("consumer: nil handler for " + typ)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started.Load() {
		panic("consumer: handler for " + typ + " registered after Run")
	}
	c.handlers[typ] = func(ctx context.Context, env Envelope, payload any) error {
		p, ok := payload.(P)
		if !ok { // the decoder and the On* methods disagree: a bug here
			return fmt.Errorf("%w: %s decoded as %T", events.ErrCorrupt, typ, payload)
		}
		return h(ctx, Event[P]{Envelope: env, Payload: p})
	}
}

// Stats returns the counters.
func (c *Consumer) Stats() Stats {
	return Stats{
		Handled:      c.stats.handled.Load(),
		Skipped:      c.stats.skipped.Load(),
		Retried:      c.stats.retried.Load(),
		Deferred:     c.stats.deferred.Load(),
		DeadLettered: c.stats.deadLettered.Load(),
		Missed:       c.stats.missed.Load(),
	}
}

// Ready reports whether the consumer is subscribed and connected.
func (c *Consumer) Ready() bool {
	nc := c.conn.Load()
	return c.ready.Load() && nc != nil && nc.IsConnected()
}

// Run consumes until ctx ends, then stops gracefully: no new message is
// taken, the handlers in flight finish and their messages are acknowledged
// (within ShutdownTimeout), and Run returns nil. While the stream (ICP_EVENTS,
// or ICP_REPLAY with Config.Replay) does not exist yet Run waits for it. Run
// returns an error when no handler is registered, when the setup fails, or
// when the connection is closed for good. Run may be called once.
func (c *Consumer) Run(ctx context.Context) error {
	if err := c.start(); err != nil {
		return err
	}
	closed := make(chan struct{})
	nc, err := c.connect(func(*nats.Conn) { close(closed) })
	if err != nil {
		return err
	}
	c.conn.Store(nc)
	defer nc.Close()
	if ok, err := c.setUp(ctx, nc); !ok {
		return err
	}
	router, err := c.newRouter(nc)
	if err != nil {
		return err
	}

	// The router runs on its own context: cancelling it would abandon the
	// messages in flight before their acks. Shutdown drains the connection
	// instead (see drain).
	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()
	routerDone := make(chan error, 1)
	go func() { routerDone <- router.Run(runCtx) }()
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	var watching sync.WaitGroup
	runErr := c.consume(ctx, router, routerDone, closed, func() {
		if !c.cfg.Replay {
			watching.Go(func() { c.watchMissed(watchCtx, nc) })
		}
	})

	c.ready.Store(false)
	c.stopping.Store(true)
	stopWatch()
	watching.Wait()
	c.drain(nc, closed)
	if err := router.Close(); err != nil {
		c.log.Debug("consumer: router close", "err", err)
	}
	cancelRun()
	<-routerDone
	if !c.cfg.Replay {
		c.recordProgress(ctx)
	}
	c.log.Info("consumer: stopped", "stats", fmt.Sprintf("%+v", c.Stats()))
	return runErr
}

// start refuses a second Run, and a Run with no handler registered.
func (c *Consumer) start() error {
	c.mu.Lock()
	n := len(c.handlers)
	again := c.started.Swap(true)
	c.mu.Unlock()
	if again {
		return errors.New("consumer: Run called twice")
	}
	if n == 0 {
		return errors.New("consumer: no handler registered (OnCreated, OnUpdated, OnDeleted)")
	}
	return nil
}

// newRouter builds the watermill router that feeds handle from the durable
// setUp made, bound to it on the consuming connection.
func (c *Consumer) newRouter(nc *nats.Conn) (*message.Router, error) {
	wlog := &quietLogger{
		LoggerAdapter: watermill.NewSlogLoggerWithLevelMapping(c.log, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug}),
		quiet:         &c.stopping,
	}
	nak := bus.Backoff{First: c.cfg.RetryDelay, Max: c.cfg.MaxRetryDelay}
	sub, err := wmnats.NewSubscriberWithNatsConn(nc, wmnats.SubscriberSubscriptionConfig{
		Unmarshaler:      unmarshaler{},
		SubscribersCount: c.cfg.Concurrency,
		AckWaitTimeout:   c.cfg.AckWait,
		CloseTimeout:     c.cfg.ShutdownTimeout,
		NakDelay:         wmnats.Delay(nak),
		QueueGroupPrefix: c.cfg.Durable,
		JetStream: wmnats.JetStreamConfig{
			DurablePrefix: c.cfg.Durable,
			// Acknowledge synchronously: a handler's event counts as done
			// only once JetStream confirmed it, so a restart never calls a
			// handler again for an event whose ack was confirmed.
			AckAsync: false,
			SubscribeOptions: []nats.SubOpt{
				// Bind to the durable setUp made: a consumer the client
				// creates itself is deleted when the subscription is
				// drained, which would restart it from the first message.
				nats.Bind(c.src.stream, c.cfg.Durable),
				nats.ManualAck(),
			},
		},
	}, wlog)
	if err != nil {
		return nil, fmt.Errorf("consumer: subscriber: %w", err)
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: c.cfg.ShutdownTimeout}, wlog)
	if err != nil {
		return nil, fmt.Errorf("consumer: router: %w", err)
	}
	router.AddConsumerHandler("icp-"+c.cfg.Durable, c.src.subjects, sub, c.handle)
	return router, nil
}

// consume waits for the router to run, calls started, and then waits until
// ctx ends (nil), the connection is closed, or the router stops (an error).
func (c *Consumer) consume(ctx context.Context, router *message.Router, routerDone chan error, closed <-chan struct{}, started func()) error {
	select {
	case <-router.Running():
	case <-ctx.Done():
		return nil
	case err := <-routerDone:
		routerDone <- err
		return fmt.Errorf("consumer: router did not start: %v", err)
	}
	c.ready.Store(true)
	c.log.Info("consumer: consuming", "concurrency", c.cfg.Concurrency)
	started()
	select {
	case <-ctx.Done():
		return nil
	case <-closed:
		return errors.New("consumer: NATS connection closed")
	case err := <-routerDone:
		routerDone <- err
		return fmt.Errorf("consumer: router stopped: %v", err)
	}
}

// drain is the graceful stop: draining the connection stops deliveries, runs
// every message already delivered through its handler and acknowledges it
// (dead letters included), then closes the connection. Messages still
// unacknowledged after ShutdownTimeout are delivered again later.
func (c *Consumer) drain(nc *nats.Conn, closed <-chan struct{}) {
	if err := nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		c.log.Warn("consumer: drain", "err", err)
	}
	t := time.NewTimer(c.cfg.ShutdownTimeout + time.Second)
	defer t.Stop()
	select {
	case <-closed:
	case <-t.C:
		c.log.Warn("consumer: drain did not finish in time; unacknowledged messages will be delivered again")
	}
}

// connect opens the consumer's own connection.
func (c *Consumer) connect(onClosed nats.ConnHandler) (*nats.Conn, error) {
	// Keep reconnecting unless the caller says otherwise: a worker should
	// outlive a NATS restart.
	opts := append([]nats.Option{nats.MaxReconnects(-1)}, c.cfg.NatsOptions...)
	opts = append(opts,
		nats.Name("icp-consumer-"+c.cfg.Durable),
		nats.DrainTimeout(c.cfg.ShutdownTimeout),
		nats.ClosedHandler(onClosed),
	)
	nc, err := nats.Connect(c.cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("consumer: connect to NATS at %s: %w", c.cfg.URL, err)
	}
	return nc, nil
}

// quietLogger logs watermill's errors at debug level once shutdown started
// (the drain closes the connection before the router stops, so watermill
// reports unsubscribes it can no longer send), and the router's report of a
// handler error, which the handler already logged with more context.
type quietLogger struct {
	watermill.LoggerAdapter
	quiet *atomic.Bool
}

func (l *quietLogger) Error(msg string, err error, fields watermill.LogFields) {
	if l.quiet.Load() || msg == "Handler returned error" || strings.HasPrefix(msg, "Handler returned error") {
		l.LoggerAdapter.Debug(msg+": "+err.Error(), fields)
		return
	}
	l.LoggerAdapter.Error(msg, err, fields)
}

func (l *quietLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return &quietLogger{LoggerAdapter: l.LoggerAdapter.With(fields), quiet: l.quiet}
}
