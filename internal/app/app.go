// Package app wires the parts of the service into one process: the event
// store, the bus, the relay, the projector, the read model and the HTTP API,
// each only when this process runs its role. It owns start-up order,
// readiness and graceful shutdown; each part's logic lives in its own package.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/icpservice/icp/api"
	"github.com/icpservice/icp/api/auth"
	"github.com/icpservice/icp/bus"
	"github.com/icpservice/icp/commands"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/esdbstore"
	"github.com/icpservice/icp/events/relay"
	"github.com/icpservice/icp/events/sqlitestore"
	"github.com/icpservice/icp/internal/config"
	"github.com/icpservice/icp/internal/metrics"
	"github.com/icpservice/icp/internal/natsauth"
	"github.com/icpservice/icp/internal/natsserver"
	"github.com/icpservice/icp/platform/datadir"
	"github.com/icpservice/icp/platform/redact"
	"github.com/icpservice/icp/projections"
	"github.com/icpservice/icp/projections/mongomodel"
	"github.com/icpservice/icp/projections/projector"
	"github.com/icpservice/icp/projections/sqlitemodel"
)

// App is a running service. New starts every part of its roles; Run serves
// until its context ends and then shuts down gracefully.
type App struct {
	cfg     config.Config
	log     *slog.Logger
	metrics *metrics.Metrics

	store     events.Store
	model     projections.ReadModel
	bus       *natsserver.Server // nil with --nats
	busID     *natsauth.Identity // the embedded server's users; nil with --nats
	conns     []*nats.Conn
	projConn  *nats.Conn
	projStall stallWatch // a projector that handles nothing while messages wait
	apiConn   *nats.Conn // tells the API the bus's largest message; not part of readiness once it did
	relay     *relay.Relay
	projector *projector.Projector

	server, admin     *http.Server
	listener, adminLn net.Listener

	// partsCtx runs the relay and projector; cancelled on shutdown after the
	// HTTP server stopped accepting and drained.
	partsCtx    context.Context
	stopParts   context.CancelFunc
	parts       sync.WaitGroup
	partsErr    chan error
	closeOnce   sync.Once
	closeResult error
}

// New opens the stores, connects to (or starts) NATS, and starts the relay,
// the projector and the listeners of this process's roles. On error
// everything already opened is closed again, and the error says, one line
// per problem (see config.Fault), what to change; problems found before
// anything is opened (the data directory, the listen addresses) are reported
// together. A NATS server given by --nats that is not reachable yet is no
// error: the relay and the projector start once it is. Its errors never
// carry the credentials of the configured URLs, whichever part or client
// library wrote them.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (_ *App, err error) {
	scrub := Scrubber(cfg)
	if err := cfg.Validate(); err != nil {
		return nil, scrub.Error(err)
	}
	a := &App{cfg: cfg, log: log, metrics: metrics.New(), partsErr: make(chan error, 2)}
	a.partsCtx, a.stopParts = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			a.closeListeners()
			_ = a.closeAll()
			err = scrubEach(scrub, err)
		}
	}()
	if err := errors.Join(prepareDataDir(cfg.DataDir, log), a.listen()); err != nil {
		return nil, err
	}
	if err := a.openStores(ctx); err != nil {
		return nil, err
	}
	if err := a.startRoles(ctx); err != nil {
		return nil, err
	}
	a.registerMetrics()
	return a, nil
}

// openStores opens the event store and, for the roles that read it, the
// read model, and watches that they stay reachable. Its errors are faults
// (see config.Fault); what it opened is left for closeAll.
func (a *App) openStores(ctx context.Context) error {
	// Every role needs the event store: the API appends, the relay tails,
	// the projector fills gaps from it.
	// Through locals: a failed open returns a nil pointer in a non-nil
	// interface, which closeAll must not see.
	store, err := openEventStore(ctx, a.cfg, a.log)
	if err != nil {
		return eventStoreFault(a.cfg, err)
	}
	a.store = store
	a.watchReachable(a.partsCtx, "event store", a.store.Ping)

	if a.cfg.Runs(config.RoleAPI) || a.cfg.Runs(config.RoleProjector) {
		model, err := openReadModel(ctx, a.cfg)
		if err != nil {
			return readModelFault(a.cfg, err)
		}
		a.model = model
		a.watchReachable(a.partsCtx, "read model", a.model.Ping)
	}
	return nil
}

// startRoles starts the bus, the relay, the projector, the API and the
// admin endpoint, each when configured, in that order; what it started is
// left for closeAll.
func (a *App) startRoles(ctx context.Context) error {
	cfg := a.cfg
	if cfg.Runs(config.RoleRelay) || cfg.Runs(config.RoleProjector) {
		if err := a.startBus(ctx); err != nil {
			return err
		}
	}
	if cfg.Runs(config.RoleRelay) {
		if err := a.startRelay(ctx); err != nil {
			return err
		}
	}
	if cfg.Runs(config.RoleProjector) {
		if err := a.startProjector(); err != nil {
			return err
		}
	}
	if cfg.Runs(config.RoleAPI) {
		if err := a.startAPI(ctx); err != nil {
			return err
		}
	}
	if cfg.AdminAddr != "" {
		return a.startAdmin()
	}
	return nil
}

// listen opens the API's and the admin listener, so that a taken port is
// found before anything else is opened; both problems are reported at once.
func (a *App) listen() error {
	var errs []error
	if a.cfg.Runs(config.RoleAPI) {
		ln, err := listen("addr", a.cfg.Addr, "")
		a.listener = ln
		errs = append(errs, err)
	}
	if a.cfg.AdminAddr != "" {
		ln, err := listen("admin-addr", a.cfg.AdminAddr, ", or empty to disable")
		a.adminLn = ln
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// scrubEach scrubs the credentials out of err, one problem of an
// errors.Join at a time, so that WriteFaults still prints one line per
// problem.
func scrubEach(scrub *redact.Scrubber, err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs := j.Unwrap()
		out := make([]error, len(errs))
		for i, e := range errs {
			out[i] = scrubEach(scrub, e)
		}
		return errors.Join(out...)
	}
	return scrub.Error(err)
}

// closeListeners closes the listeners New opened when New fails (once the
// servers run, their Shutdown closes them).
func (a *App) closeListeners() {
	for _, ln := range []net.Listener{a.listener, a.adminLn} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}

// openEventStore opens EventStoreDB when --event-store is set, else the
// embedded SQLite file. EventStoreDB is opened without contacting the server,
// so one that is not reachable yet does not stop the process: /readyz stays
// 503 until it answers.
func openEventStore(ctx context.Context, cfg config.Config, log *slog.Logger) (events.Store, error) {
	if cfg.EventStore != "" {
		return esdbstore.Open(ctx, cfg.EventStore, esdbstore.Options{Logger: log.With("part", "esdb")})
	}
	return sqlitestore.Open(ctx, datadir.Events(cfg.DataDir), sqlitestore.Options{})
}

// openReadModel opens MongoDB when --read-model is set, else the embedded
// SQLite file. MongoDB is opened lazily for the same reason as the store.
func openReadModel(ctx context.Context, cfg config.Config) (projections.ReadModel, error) {
	if cfg.ReadModel != "" {
		return mongomodel.Open(ctx, cfg.ReadModel, mongomodel.Options{Lazy: true})
	}
	return sqlitemodel.Open(ctx, datadir.ReadModel(cfg.DataDir), sqlitemodel.Options{})
}

// watchReachable logs, with backoff, while a backing store does not answer
// its ping, and once when it does; readiness itself asks the store each time.
func (a *App) watchReachable(ctx context.Context, name string, ping func(context.Context) error) {
	go func() {
		delay := 500 * time.Millisecond
		for attempt := 1; ; attempt++ {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := ping(pctx)
			cancel()
			if err == nil {
				if attempt > 1 {
					a.log.Info(name+" reachable", "attempts", attempt)
				}
				return
			}
			if ctx.Err() != nil {
				return
			}
			a.log.Warn(name+" not reachable; retrying (readyz answers 503 until it is)", "err", err, "retry_in", delay)
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			delay = min(delay*2, 30*time.Second)
		}
	}()
}

// startBus starts the embedded NATS server unless --nats names one. The
// embedded server listens on --embedded-nats-addr (loopback only) and admits
// only the users whose credentials it keeps under <data-dir>/nats-auth
// (natsauth): icpd's own and the workers'.
func (a *App) startBus(ctx context.Context) error {
	if a.cfg.NATSURL != "" {
		return nil
	}
	dir := datadir.NATS(a.cfg.DataDir)
	// Made here so that a file in its place is reported at once (the
	// server would only fail to become ready).
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return embeddedBusFault(a.cfg.DataDir, err)
	}
	id, err := natsauth.LoadOrCreate(a.cfg.DataDir)
	if err != nil {
		return embeddedBusFault(a.cfg.DataDir, fmt.Errorf("credentials: %w", err))
	}
	host, port, err := net.SplitHostPort(a.cfg.EmbeddedNATSAddr)
	if err != nil {
		return fmt.Errorf("--embedded-nats-addr %q: %w", a.cfg.EmbeddedNATSAddr, err)
	}
	portNum, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("--embedded-nats-addr %q: port: %w", a.cfg.EmbeddedNATSAddr, err)
	}
	// A taken address is told in the setting's terms; the server itself
	// would only say that it could not listen.
	if portNum != 0 {
		ln, err := listen("embedded-nats-addr", a.cfg.EmbeddedNATSAddr, "")
		if err != nil {
			return err
		}
		_ = ln.Close()
	}
	a.busID = id
	a.bus, err = natsserver.Start(natsserver.Config{StoreDir: dir, Host: host, Port: portNum, Identity: id})
	if err != nil {
		return embeddedBusFault(a.cfg.DataDir, err)
	}
	a.log.Info("embedded NATS listening", "url", a.bus.ClientURL(),
		"service_creds", id.Service.Path, "worker_creds", id.Worker.Path)
	return nil
}

// connect opens a NATS connection that reconnects for ever, with backoff,
// also when the server is not reachable at first (see busRetryOptions), with
// icpd's credentials: the embedded server's service user, or --nats-creds /
// --nats-user for a server of one's own.
func (a *App) connect(name string) (*nats.Conn, error) {
	opts := append([]nats.Option{nats.Name(name)}, a.busRetryOptions(name)...)
	url := a.cfg.NATSURL
	switch {
	case a.bus != nil:
		opts = append(opts, nats.InProcessServer(a.bus.Inner()),
			nats.UserJWTAndSeed(a.busID.Service.JWT, a.busID.Service.Seed))
		url = ""
	case a.cfg.NATSCreds != "":
		opts = append(opts, nats.UserCredentials(a.cfg.NATSCreds))
	case a.cfg.NATSUser != "":
		opts = append(opts, nats.UserInfo(a.cfg.NATSUser, a.cfg.NATSPassword))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	a.conns = append(a.conns, nc)
	return nc, nil
}

// startRelay builds the relay and runs it once the bus is connected: at
// once when it is (a refused stream is then a start-up fault), else in the
// background when it comes up.
func (a *App) startRelay(ctx context.Context) error {
	nc, err := a.connect("icpd-relay")
	if err != nil {
		return err
	}
	streams := bus.StreamConfig{MaxAge: a.cfg.StreamMaxAge, MaxBytes: a.cfg.StreamMaxBytes, Duplicates: a.cfg.StreamDuplicates}
	// InstanceID is left to the relay's default (hostname, pid and a
	// random suffix): containers with host networking share a hostname and
	// may share a pid.
	a.relay, err = relay.New(relay.Config{
		Store:    a.store,
		Conn:     nc,
		Logger:   a.log.With("part", "relay"),
		LeaseTTL: a.cfg.RelayLeaseTTL,
		Streams:  streams,
	})
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	return a.whenConnected(nc, "relay", func(pctx context.Context) error {
		sctx, cancel := context.WithTimeout(pctx, 30*time.Second)
		defer cancel()
		if err := bus.EnsureStreams(sctx, nc, streams); err != nil {
			return busStreamsFault(a.cfg, err)
		}
		a.startPart("relay", a.relay.Run)
		return nil
	})
}

// startProjector builds the projector and runs it once the bus is
// connected (at once when it is).
func (a *App) startProjector() error {
	nc, err := a.connect("icpd-projector")
	if err != nil {
		return err
	}
	a.projConn = nc
	a.projector, err = projector.New(projector.Config{
		Conn:      nc,
		ReadModel: a.model,
		Store:     a.store,
		AckWait:   a.cfg.ProjectorAckWait,
		Logger:    a.log.With("part", "projector"),
	})
	if err != nil {
		return fmt.Errorf("projector: %w", err)
	}
	return a.whenConnected(nc, "projector", func(context.Context) error {
		a.startPart("projector", a.projector.Run)
		// Stalled: messages waiting and none handled for two ack waits,
		// longer than any batch retry or redelivery takes.
		go a.projStall.run(a.partsCtx, 10*time.Second, 2*a.cfg.ProjectorAckWait, func() stallSample {
			return stallSample{at: time.Now(), pending: a.projectorLag(), handled: handledTotal(a.projector.Stats())}
		})
		return nil
	})
}

func (a *App) startAPI(ctx context.Context) error {
	verifier, err := newVerifier(a.partsCtx, a.cfg, a.log)
	if err != nil {
		return err
	}
	cors := a.cfg.CORSOrigins
	if len(cors) == 0 {
		cors = a.cfg.AuthAuthorizedParties
	}
	// The bus's largest message (NATS max_payload) bounds what the API
	// records: an event the bus cannot carry would never be published.
	if a.apiConn, err = a.connect("icpd-api"); err != nil {
		return err
	}
	handler, err := api.New(api.Config{
		ConsistencyWait:   a.cfg.ConsistencyWait,
		MaxBodyBytes:      a.cfg.MaxBodyBytes,
		MaxInflightWrites: a.cfg.MaxInflightWrites,
		WriteQueueWait:    a.cfg.WriteQueueWait,
		MaxWaitingWrites:  a.cfg.MaxWaitingWrites,
		RateLimit:         a.cfg.RateLimit,
		RateBurst:         a.cfg.RateBurst,
		RateLimitUsers:    a.cfg.RateLimitUsers,
		CORSOrigins:       cors,

		MaxInflightBodyBytes: a.cfg.MaxInflightBodyBytes,
	}, api.Deps{
		Commands: commands.NewHandler(a.store, commands.WithBusLimit(a.apiConn.MaxPayload),
			commands.WithMaxDocBytes(a.model.MaxDocBytes()), commands.WithAppendObserver(a.metrics.ObserveAppend)),
		ReadModel: a.model,
		Verifier:  verifier,
		Ready:     a.Ready,
		Logger:    a.log.With("part", "api"),
	})
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	a.server = &http.Server{
		Handler:           a.metrics.HTTP(handler),
		ReadHeaderTimeout: a.cfg.ReadHeaderTimeout,
		ReadTimeout:       a.cfg.ReadTimeout,
		WriteTimeout:      a.cfg.WriteTimeout,
		IdleTimeout:       a.cfg.IdleTimeout,
	}
	return nil
}

func newVerifier(ctx context.Context, cfg config.Config, log *slog.Logger) (auth.Verifier, error) {
	if cfg.Dev {
		key, err := auth.LoadOrCreateDevKey(cfg.DataDir)
		if err != nil {
			return nil, devKeyFault(cfg.DataDir, err)
		}
		log.Warn("DEVELOPMENT MODE: accepting tokens signed with the local key in " + cfg.DataDir + " (mint one with: icpctl token --data-dir " + cfg.DataDir + " --user USER); never use this in production")
		return auth.NewDevVerifier(key, auth.DevConfig{AdminRoles: cfg.AuthAdminRoles, AdminUsers: cfg.AuthAdminUsers}), nil
	}
	v, err := auth.NewClerkVerifier(ctx, auth.ClerkConfig{
		JWKSURL:           cfg.AuthJWKSURL,
		Issuer:            cfg.AuthIssuer,
		AuthorizedParties: cfg.AuthAuthorizedParties,
		AdminRoles:        cfg.AuthAdminRoles,
		AdminUsers:        cfg.AuthAdminUsers,
		Logger:            log.With("part", "auth"),
	})
	if err != nil {
		return nil, authFault(cfg, err)
	}
	return v, nil
}

func (a *App) startPart(name string, run func(context.Context) error) {
	a.parts.Add(1)
	go func() {
		defer a.parts.Done()
		err := run(a.partsCtx)
		if err != nil && !errors.Is(err, context.Canceled) {
			a.log.Error(name+" stopped", "err", err)
			a.partsErr <- fmt.Errorf("%s: %w", name, err)
		}
	}()
}

// Addr is the address the API listens on (useful with port 0); "" when this
// process does not run the API.
func (a *App) Addr() string {
	if a.listener == nil {
		return ""
	}
	return a.listener.Addr().String()
}

// AdminAddr is the address of the admin listener ("" when disabled).
func (a *App) AdminAddr() string {
	if a.adminLn == nil {
		return ""
	}
	return a.adminLn.Addr().String()
}

// NATSURL is the client URL of the bus: the embedded server's (loopback
// only) or the configured one, credentials included (print it through
// redact.URLs).
func (a *App) NATSURL() string {
	if a.bus != nil {
		return a.bus.ClientURL()
	}
	return a.cfg.NATSURL
}

// Ready reports nil once every part this process runs is up: event store,
// read model, bus connections, relay (active or a healthy spare), projector.
// Otherwise it names the first part that is not.
func (a *App) Ready(ctx context.Context) error {
	if err := a.store.Ping(ctx); err != nil {
		return fmt.Errorf("event store: %w", err)
	}
	if a.model != nil {
		if err := a.model.Ping(ctx); err != nil {
			return fmt.Errorf("read model: %w", err)
		}
	}
	for _, c := range a.conns {
		if c != a.apiConn && !c.IsConnected() {
			return errors.New("bus: not connected")
		}
	}
	if a.apiConn != nil && a.apiConn.MaxPayload() <= 0 {
		return errors.New("bus: not reached yet; writes wait for its largest message size")
	}
	if a.relay != nil {
		if err := a.relay.Health(); err != nil {
			return fmt.Errorf("relay: %w", err)
		}
	}
	if a.projector != nil && !a.projector.Ready() {
		return errors.New("projector: not ready")
	}
	if err := a.projStall.err(); err != nil {
		return fmt.Errorf("projector: %w", err)
	}
	return nil
}

// Run serves until ctx ends or a part fails, then shuts down: stop accepting
// and finish in-flight requests, let the relay and the projector finish their
// current batch, then close the bus and the stores.
func (a *App) Run(ctx context.Context) error {
	serveErr := make(chan error, 2)
	if a.server != nil {
		go func() { serveErr <- a.server.Serve(a.listener) }()
	}
	if a.admin != nil {
		go func() { serveErr <- a.admin.Serve(a.adminLn) }()
	}
	a.log.Info("icpd running", "roles", a.cfg.Roles, "addr", a.Addr(), "admin_addr", a.AdminAddr(), "nats", redact.URLs(a.NATSURL()), "data_dir", a.cfg.DataDir)

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			runErr = fmt.Errorf("http: %w", err)
		}
	case runErr = <-a.partsErr:
	}
	if err := a.Shutdown(); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// Shutdown stops the service gracefully within the configured timeout. It is
// safe to call more than once.
func (a *App) Shutdown() error {
	a.closeOnce.Do(func() {
		a.log.Info("shutting down")
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
		defer cancel()
		var errs []error
		if a.server != nil {
			if err := a.server.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("http drain: %w", err))
			}
		}
		errs = append(errs, a.closeAll())
		if a.admin != nil {
			_ = a.admin.Shutdown(ctx)
		}
		a.closeResult = errors.Join(errs...)
		a.log.Info("stopped")
	})
	return a.closeResult
}

// closeAll stops the relay and projector (they finish their batch), then
// closes connections, the bus and the stores, in that order.
func (a *App) closeAll() error {
	if a.stopParts != nil {
		a.stopParts()
		a.parts.Wait()
	}
	for _, c := range a.conns {
		c.Close()
	}
	if a.bus != nil {
		a.bus.Shutdown()
	}
	var errs []error
	if a.model != nil {
		errs = append(errs, a.model.Close())
	}
	if a.store != nil {
		errs = append(errs, a.store.Close())
	}
	return errors.Join(errs...)
}
