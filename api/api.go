// Package api is the HTTP interface of the service: the routes of the ICP
// contract (docs in /work/shared/spec/icp-api.md), the mapping between
// requests, commands and read-model documents, and the error catalogue.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

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
	// Logger receives unexpected errors and panics (never tokens or
	// bodies); nil: discard.
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
// {"error":{"code","message"[,"details"]}}. New sets Gin's global mode to
// release.
func New(cfg Config, deps Deps) (http.Handler, error) {
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
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cfg = cfg.withDefaults()
	a := &api{
		cfg:        cfg,
		cmds:       deps.Commands,
		rm:         deps.ReadModel,
		verifier:   deps.Verifier,
		ready:      deps.Ready,
		log:        deps.Logger,
		retryAfter: max(1, int((cfg.RetryAfter+time.Second-1)/time.Second)),
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.Use(a.recoverPanics)
	r.NoRoute(func(c *gin.Context) {
		a.abort(c, &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "no such route: " + c.Request.Method + " " + c.Request.URL.Path}, "")
	})
	r.NoMethod(func(c *gin.Context) {
		a.abort(c, &Error{Status: http.StatusMethodNotAllowed, Code: CodeMethodNotAllowed, Message: "method " + c.Request.Method + " is not allowed here"}, "")
	})

	r.GET("/healthz", a.healthz)
	r.GET("/readyz", a.readyz)
	r.GET("/openapi.json", a.openAPI)
	r.POST(BasePath, a.authenticated(a.create))
	r.GET(BasePath, a.authenticated(a.list))
	r.GET(BasePath+"/:id", a.authenticated(a.get))
	r.PATCH(BasePath+"/:id", a.authenticated(a.update))
	r.DELETE(BasePath+"/:id", a.authenticated(a.remove))
	return r, nil
}
