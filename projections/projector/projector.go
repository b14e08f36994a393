// Package projector keeps the read model up to date from the bus: it consumes
// ICP_EVENTS with a durable JetStream consumer through a watermill router and
// applies each ICP's events in version order (see project for the rule), so
// that every event is applied exactly once whatever the bus redelivers,
// reorders or loses.
//
// Replicas with the same Durable share one consumer (a queue group); the
// version guard of the read model keeps them from applying an event twice.
package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/projections"
)

// Projector projects bus events into the read model. Create it with New and
// start it with Run.
type Projector struct {
	cfg        Config
	rm         projections.ReadModel
	store      events.Store
	log        *slog.Logger
	dlqSubject string

	dlq    message.Publisher
	stats  counters
	tracer trace.Tracer

	started  atomic.Bool
	ready    atomic.Bool
	stopping atomic.Bool
	subConn  atomic.Pointer[nats.Conn]
}

type counters struct {
	applied, alreadyApplied, gapFilled, deadLettered, retried atomic.Uint64
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
}

// New checks cfg and returns a projector that is not yet running. Its spans
// go to the global tracer provider as it is when New runs.
func New(cfg Config) (*Projector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Projector{
		cfg:        cfg,
		rm:         cfg.ReadModel,
		store:      cfg.Store,
		log:        cfg.Logger.With("component", "projector", "durable", cfg.Durable),
		dlqSubject: events.DLQSubject(cfg.Durable),
		tracer:     otel.GetTracerProvider().Tracer("github.com/icpservice/icp/projections/projector"),
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
	}
}

// Ready reports whether the projector is subscribed and connected: messages
// are being consumed.
func (p *Projector) Ready() bool {
	c := p.subConn.Load()
	return p.ready.Load() && c != nil && c.IsConnected()
}

// Run consumes until ctx ends, then stops gracefully: it stops taking new
// messages, lets the messages in flight finish and be acked (within
// ShutdownTimeout), and returns nil. It returns an error if the setup fails
// (the bus stream does not appear before ctx ends is not an error: Run keeps
// waiting for it) or if the consuming connection is closed for good. Run may
// be called once.
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
	js, err := pubConn.JetStream()
	if err != nil {
		return fmt.Errorf("projector: %w", err)
	}
	if err := ensureDLQStream(js); err != nil {
		return err
	}
	if err := p.waitForBusStream(ctx, js); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if err := p.ensureConsumer(js); err != nil {
		return err
	}

	wlog := &quietLogger{
		LoggerAdapter: watermill.NewSlogLoggerWithLevelMapping(p.log, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug}),
		quiet:         &p.stopping,
	}
	p.dlq, err = wmnats.NewPublisherWithNatsConn(pubConn, wmnats.PublisherPublishConfig{
		Marshaler:         &wmnats.NATSMarshaler{},
		SubjectCalculator: wmnats.DefaultSubjectCalculator,
		// The copy's message id comes from the original's stream sequence:
		// a redelivered message that is dead-lettered again is deduplicated.
		JetStream: wmnats.JetStreamConfig{TrackMsgId: true},
	}, wlog)
	if err != nil {
		return fmt.Errorf("projector: dead-letter publisher: %w", err)
	}

	closed := make(chan struct{})
	subConn, err := p.connect("icp-projector-"+p.cfg.Durable, func(*nats.Conn) { close(closed) })
	if err != nil {
		return err
	}
	p.subConn.Store(subConn)
	defer subConn.Close()

	sub, err := wmnats.NewSubscriberWithNatsConn(subConn, wmnats.SubscriberSubscriptionConfig{
		Unmarshaler:      unmarshaler{},
		SubscribersCount: p.cfg.Concurrency,
		AckWaitTimeout:   p.cfg.AckWait,
		CloseTimeout:     closeAfterDrain,
		NakDelay:         backoff{first: p.cfg.RetryDelay, max: p.cfg.MaxRetryDelay},
		QueueGroupPrefix: p.cfg.Durable,
		JetStream: wmnats.JetStreamConfig{
			DurablePrefix: p.cfg.Durable,
			AckAsync:      true,
			SubscribeOptions: []nats.SubOpt{
				// Bind to the consumer ensureConsumer made: a consumer the
				// client library creates itself is deleted when the
				// subscription is drained, which would restart the
				// durable from the first message.
				nats.Bind(events.BusStream, p.cfg.Durable),
				nats.ManualAck(),
			},
		},
	}, wlog)
	if err != nil {
		return fmt.Errorf("projector: subscriber: %w", err)
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: closeAfterDrain}, wlog)
	if err != nil {
		return fmt.Errorf("projector: router: %w", err)
	}
	router.AddConsumerHandler("projector", events.BusSubjects, sub, p.handle)

	// The router runs on its own context: cancelling it would abandon the
	// messages in flight before their acks. Shutdown goes through a drain
	// of the consuming connection instead (below).
	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()
	routerDone := make(chan error, 1)
	go func() { routerDone <- router.Run(runCtx) }()

	var runErr error
	select {
	case <-router.Running():
		p.ready.Store(true)
		p.log.Info("projector: consuming", "stream", events.BusStream, "concurrency", p.cfg.Concurrency)
		select {
		case <-ctx.Done():
		case <-closed:
			runErr = errors.New("projector: NATS connection closed")
		case err := <-routerDone:
			routerDone <- err
			runErr = fmt.Errorf("projector: router stopped: %v", err)
		}
	case <-ctx.Done():
	case err := <-routerDone:
		routerDone <- err
		runErr = fmt.Errorf("projector: router did not start: %v", err)
	}

	// Graceful stop: draining the consuming connection stops deliveries,
	// lets every message already delivered run through its handler and be
	// acked, then closes the connection.
	p.ready.Store(false)
	p.stopping.Store(true)
	if err := subConn.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		p.log.Warn("projector: drain", "err", err)
	}
	select {
	case <-closed:
	case <-time.After(p.cfg.ShutdownTimeout + time.Second):
		p.log.Warn("projector: drain did not finish in time")
	}
	cancelRun()
	if err := router.Close(); err != nil {
		p.log.Warn("projector: router close", "err", err)
	}
	<-routerDone
	p.log.Info("projector: stopped", "stats", fmt.Sprintf("%+v", p.Stats()))
	return runErr
}

// closeAfterDrain bounds the router's and the subscriber's Close. They run
// after the drain above, which already waited (up to ShutdownTimeout) for
// every delivered message to be handled and acked; what is left is stopping
// idle goroutines, and their longer timeouts only delayed the exit.
const closeAfterDrain = 2 * time.Second

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

// quietLogger logs watermill's errors at debug level once shutdown started
// (the drain closes the connection before the router stops, so watermill
// reports the unsubscribes it can no longer send), and the router's report of
// a handler error, which the handler has already logged with more context.
type quietLogger struct {
	watermill.LoggerAdapter
	quiet *atomic.Bool
}

func (l *quietLogger) Error(msg string, err error, fields watermill.LogFields) {
	// The handler logs every error it returns, with the event's details.
	if l.quiet.Load() || msg == "Handler returned error" {
		l.LoggerAdapter.Debug(msg+": "+err.Error(), fields)
		return
	}
	l.LoggerAdapter.Error(msg, err, fields)
}

func (l *quietLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return &quietLogger{LoggerAdapter: l.LoggerAdapter.With(fields), quiet: l.quiet}
}
