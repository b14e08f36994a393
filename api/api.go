// Package api is the HTTP interface of the service: the routes of the ICP
// contract (served as an OpenAPI document at /openapi.json), the mapping between
// requests, commands and read-model documents, and the error catalogue.
package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/semaphore"

	"github.com/icpservice/icp/api/auth"
	"github.com/icpservice/icp/commands"
	"github.com/icpservice/icp/projections"
)

// Defaults of Config.
const (
	DefaultConsistencyWait = 5 * time.Second
	DefaultMaxBodyBytes    = 1 << 20
	DefaultReadyTimeout    = 2 * time.Second
	DefaultRetryAfter      = time.Second
	// DefaultMaxInflightWrites stays well below the embedded event store's
	// queue (4096), so that an admitted append never waits for room there.
	DefaultMaxInflightWrites = 1024
	DefaultWriteQueueWait    = time.Second
	DefaultMaxWaitingWrites  = 1024
	// DefaultMaxInflightBodyBytes holds 32 request bodies of the default
	// largest size at once.
	DefaultMaxInflightBodyBytes = 32 << 20
	DefaultRateLimitUsers       = 100_000
)

// BasePath is where the ICP resource lives.
const BasePath = "/api/v1/entities/icps"

// Config tunes the API. Zero values take the defaults.
type Config struct {
	// ConsistencyWait bounds how long a create waits for the read model to
	// show the new ICP before answering 201 with ICP-Consistency: pending.
	ConsistencyWait time.Duration
	// MaxBodyBytes is the largest request body accepted (413 above).
	MaxBodyBytes int64
	// ReadyTimeout bounds one readiness check.
	ReadyTimeout time.Duration
	// RetryAfter is what 503 answers put in Retry-After (whole seconds, at
	// least 1).
	RetryAfter time.Duration

	// MaxInflightWrites bounds the creates, updates and deletes being
	// recorded at once (0: default 1024). Keep it at or below the event
	// store's queue (sqlitestore Options.QueueSize, 4096 by default) so
	// that the wait happens here, where nothing was recorded yet.
	MaxInflightWrites int
	// WriteQueueWait bounds how long a write waits for one of those slots;
	// past it the answer is 503 UNAVAILABLE with Retry-After and nothing
	// was recorded (0: default 1s).
	WriteQueueWait time.Duration
	// MaxWaitingWrites bounds the writes waiting for a slot at once; a
	// write that finds this many waiting is answered 503 UNAVAILABLE with
	// Retry-After at once, nothing recorded (0: default 1024).
	MaxWaitingWrites int

	// MaxInflightBodyBytes bounds the bytes of request bodies being read or
	// held at once, over all requests (0: default 32 MiB; at least
	// MaxBodyBytes). A body whose declared length does not fit, or one of
	// unknown length that outgrows the room while it is read, is answered
	// 503 UNAVAILABLE with Retry-After, nothing recorded.
	MaxInflightBodyBytes int64

	// RateLimit is each user's sustained rate, in requests per second over
	// every authenticated route (0: no per-user limit). Over it the answer
	// is 429 RATE_LIMITED with Retry-After.
	RateLimit float64
	// RateBurst is how many requests a user may send at once before
	// RateLimit applies (0: RateLimit rounded up, at least 1). Only with
	// RateLimit.
	RateBurst int
	// RateLimitUsers bounds how many users' buckets are kept (least
	// recently seen evicted first; 0: default 100000).
	RateLimitUsers int

	// CORSOrigins are the browser origins (https://app.example.com) allowed
	// to call the API from another origin. Empty: no CORS answers, and
	// browsers refuse cross-origin calls. Requests that carry another
	// origin are answered 403.
	CORSOrigins []string
	// CORSMaxAge is how long a browser may reuse a preflight answer (0:
	// default 10m).
	CORSMaxAge time.Duration
}

// Validate reports every invalid setting at once.
func (c Config) Validate() error {
	var errs []error
	if c.ConsistencyWait < 0 {
		errs = append(errs, fmt.Errorf("ConsistencyWait must be >= 0 (0: default %s), got %s", DefaultConsistencyWait, c.ConsistencyWait))
	}
	if c.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("MaxBodyBytes must be >= 0 (0: default %d), got %d", DefaultMaxBodyBytes, c.MaxBodyBytes))
	}
	if c.ReadyTimeout < 0 {
		errs = append(errs, fmt.Errorf("ReadyTimeout must be >= 0 (0: default %s), got %s", DefaultReadyTimeout, c.ReadyTimeout))
	}
	if c.RetryAfter < 0 {
		errs = append(errs, fmt.Errorf("RetryAfter must be >= 0 (0: default %s), got %s", DefaultRetryAfter, c.RetryAfter))
	}
	if c.MaxInflightWrites < 0 {
		errs = append(errs, fmt.Errorf("MaxInflightWrites must be >= 0 (0: default %d), got %d", DefaultMaxInflightWrites, c.MaxInflightWrites))
	}
	if c.WriteQueueWait < 0 {
		errs = append(errs, fmt.Errorf("WriteQueueWait must be >= 0 (0: default %s), got %s", DefaultWriteQueueWait, c.WriteQueueWait))
	}
	if c.MaxWaitingWrites < 0 {
		errs = append(errs, fmt.Errorf("MaxWaitingWrites must be >= 0 (0: default %d), got %d", DefaultMaxWaitingWrites, c.MaxWaitingWrites))
	}
	if c.MaxInflightBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("MaxInflightBodyBytes must be >= 0 (0: default %d), got %d", DefaultMaxInflightBodyBytes, c.MaxInflightBodyBytes))
	} else if largest := cmp.Or(c.MaxBodyBytes, DefaultMaxBodyBytes); c.MaxInflightBodyBytes > 0 && c.MaxInflightBodyBytes < largest {
		errs = append(errs, fmt.Errorf("MaxInflightBodyBytes %d is below MaxBodyBytes %d: a body of the largest size could never be read", c.MaxInflightBodyBytes, largest))
	}
	if c.RateLimit < 0 || math.IsNaN(c.RateLimit) || math.IsInf(c.RateLimit, 0) {
		errs = append(errs, fmt.Errorf("RateLimit must be a finite number of requests per second >= 0 (0: off), got %v", c.RateLimit))
	}
	if c.RateBurst < 0 {
		errs = append(errs, fmt.Errorf("RateBurst must be >= 0 (0: RateLimit rounded up), got %d", c.RateBurst))
	} else if c.RateBurst > 0 && c.RateLimit == 0 {
		errs = append(errs, fmt.Errorf("RateBurst %d is set without RateLimit: set RateLimit too, or leave RateBurst 0", c.RateBurst))
	}
	if c.RateLimitUsers < 0 {
		errs = append(errs, fmt.Errorf("RateLimitUsers must be >= 0 (0: default %d), got %d", DefaultRateLimitUsers, c.RateLimitUsers))
	}
	for _, o := range c.CORSOrigins {
		if _, err := normaliseOrigin(o); err != nil {
			errs = append(errs, fmt.Errorf("CORSOrigins: %w", err))
		}
	}
	if c.CORSMaxAge < 0 {
		errs = append(errs, fmt.Errorf("CORSMaxAge must be >= 0 (0: default %s), got %s", DefaultCORSMaxAge, c.CORSMaxAge))
	}
	if len(errs) > 0 {
		return fmt.Errorf("api: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.ConsistencyWait == 0 {
		c.ConsistencyWait = DefaultConsistencyWait
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = DefaultReadyTimeout
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	if c.MaxInflightWrites == 0 {
		c.MaxInflightWrites = DefaultMaxInflightWrites
	}
	if c.WriteQueueWait == 0 {
		c.WriteQueueWait = DefaultWriteQueueWait
	}
	if c.MaxWaitingWrites == 0 {
		c.MaxWaitingWrites = DefaultMaxWaitingWrites
	}
	if c.MaxInflightBodyBytes == 0 {
		c.MaxInflightBodyBytes = max(DefaultMaxInflightBodyBytes, c.MaxBodyBytes)
	}
	if c.RateLimit > 0 && c.RateBurst == 0 {
		c.RateBurst = max(1, int(math.Ceil(c.RateLimit)))
	}
	if c.RateLimitUsers == 0 {
		c.RateLimitUsers = DefaultRateLimitUsers
	}
	if c.CORSMaxAge == 0 {
		c.CORSMaxAge = DefaultCORSMaxAge
	}
	return c
}

// Deps are the parts the API drives.
type Deps struct {
	// Commands records changes (required).
	Commands *commands.Handler
	// ReadModel serves reads and the create's read-your-writes wait
	// (required).
	ReadModel projections.ReadModel
	// Verifier authenticates bearer tokens (required).
	Verifier auth.Verifier
	// Ready reports whether the service can serve (GET /readyz); nil:
	// always ready.
	Ready func(ctx context.Context) error
	// Logger receives one access-log line per request at Info, and
	// unexpected errors and panics, each line with the request's
	// request_id, correlation_id and trace_id (never tokens or bodies);
	// nil: discard.
	Logger *slog.Logger
}

type api struct {
	cfg        Config
	cmds       *commands.Handler
	rm         projections.ReadModel
	verifier   auth.Verifier
	ready      func(ctx context.Context) error
	log        *slog.Logger
	retryAfter int
	tracer     trace.Tracer
	writes     *writeSlots
	bodies     *semaphore.Weighted // bytes of request bodies read or held
	users      *userLimits         // nil: no per-user limit
	corsPolicy *corsPolicy         // nil: no CORS
}

// New returns the HTTP handler of the service:
//
//	GET    /healthz                   200 while the process serves
//	GET    /readyz                    200 when Deps.Ready is nil or returns nil, else 503
//	GET    /openapi.json              the OpenAPI 3.1 document of these routes (no auth)
//	POST   /api/v1/entities/icps      create (201)
//	GET    /api/v1/entities/icps      list the caller's ICPs
//	GET    /api/v1/entities/icps/:id  get one ICP
//	PATCH  /api/v1/entities/icps/:id  partial update (200), If-Match optional
//	DELETE /api/v1/entities/icps/:id  delete (204), If-Match optional
//
// Every other path or method, and every error, answers
// {"error":{"code","message"[,"details"]}}. Every answer carries
// X-Request-Id and X-Correlation-Id; every request is one server span that
// continues the caller's W3C trace context, taken from the global tracer
// provider as it is when New runs (see platform/telemetry.Setup). New sets
// Gin's global mode to release.
func New(cfg Config, deps Deps) (http.Handler, error) {
	if err := checkNew(cfg, deps); err != nil {
		return nil, err
	}
	return newAPI(cfg.withDefaults(), deps).router(), nil
}

// checkNew reports every problem of New's arguments at once.
func checkNew(cfg Config, deps Deps) error {
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if deps.Commands == nil {
		errs = append(errs, errors.New("api: Deps.Commands is required"))
	}
	if deps.ReadModel == nil {
		errs = append(errs, errors.New("api: Deps.ReadModel is required"))
	}
	if deps.Verifier == nil {
		errs = append(errs, errors.New("api: Deps.Verifier is required"))
	}
	return errors.Join(errs...)
}

// newAPI builds the handlers' shared state from a checked cfg, its defaults
// applied.
func newAPI(cfg Config, deps Deps) *api {
	a := &api{
		cfg:        cfg,
		cmds:       deps.Commands,
		rm:         deps.ReadModel,
		verifier:   deps.Verifier,
		ready:      deps.Ready,
		log:        deps.Logger,
		retryAfter: max(1, int((cfg.RetryAfter+time.Second-1)/time.Second)),
		tracer:     otel.GetTracerProvider().Tracer(tracerName),
		writes:     newWriteSlots(cfg.MaxInflightWrites, cfg.MaxWaitingWrites, cfg.WriteQueueWait),
		bodies:     semaphore.NewWeighted(cfg.MaxInflightBodyBytes),
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if cfg.RateLimit > 0 {
		a.users = newUserLimits(cfg.RateLimit, cfg.RateBurst, cfg.RateLimitUsers)
	}
	if len(cfg.CORSOrigins) > 0 {
		a.corsPolicy = newCORSPolicy(cfg.CORSOrigins, cfg)
	}
	return a
}

// router routes New's paths to a's handlers, behind its middleware.
func (a *api) router() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.Use(a.observe, a.recoverPanics)
	if a.corsPolicy != nil {
		r.Use(a.cors)
	}
	r.NoRoute(func(c *gin.Context) {
		a.abort(c, &Error{Status: http.StatusNotFound, Code: CodeNotFound,
			Message: "no such route: " + commands.Excerpt(c.Request.Method, maxEchoed) + " " + commands.Excerpt(c.Request.URL.Path, maxEchoed)}, "")
	})
	r.NoMethod(func(c *gin.Context) {
		a.abort(c, &Error{Status: http.StatusMethodNotAllowed, Code: CodeMethodNotAllowed,
			Message: "method " + commands.Excerpt(c.Request.Method, maxEchoed) + " is not allowed here"}, "")
	})

	r.GET("/healthz", a.healthz)
	r.GET("/readyz", a.readyz)
	r.GET("/openapi.json", a.openAPI)
	r.POST(BasePath, a.authenticated(a.create))
	r.GET(BasePath, a.authenticated(a.list))
	r.GET(BasePath+"/:id", a.authenticated(a.get))
	r.PATCH(BasePath+"/:id", a.authenticated(a.update))
	r.DELETE(BasePath+"/:id", a.authenticated(a.remove))
	return r
}
