package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/MicahParks/jwkset"
	"golang.org/x/time/rate"
)

// Defaults of ClerkConfig.
const (
	DefaultJWKSRefreshInterval    = time.Hour
	DefaultJWKSUnknownKIDInterval = 10 * time.Second
	DefaultJWKSFetchTimeout       = 5 * time.Second
	DefaultCacheSize              = 10_000
	DefaultCacheTTL               = 30 * time.Second
)

// ClerkConfig configures a ClerkVerifier. Zero values take the defaults
// named on each field.
type ClerkConfig struct {
	// JWKSURL is the instance's JWKS (https://<frontend-api>/.well-known/jwks.json).
	// It must be https, except on a loopback host.
	JWKSURL string
	// Issuer is the exact iss of the instance's session tokens (its frontend
	// API URL). Required.
	Issuer string
	// AuthorizedParties, when not empty, are the origins a token's azp must be
	// one of (a trailing slash on either side is ignored); a token without
	// azp is then refused too.
	AuthorizedParties []string
	// AdminRoles are the organisation roles that make the caller an admin
	// (default DefaultAdminRoles: "org:admin" for v1 tokens, "admin" for v2).
	AdminRoles []string
	// AdminUsers are user ids that are admins wherever they act.
	AdminUsers []string
	// Leeway is the clock skew allowed on exp, nbf and iat (default
	// DefaultLeeway, at most MaxLeeway).
	Leeway time.Duration

	// HTTPClient fetches the JWKS (default: a client with JWKSFetchTimeout).
	// Response bodies are cut at 1 MiB whichever client is used.
	HTTPClient *http.Client
	// JWKSRefreshInterval is how often the JWKS is fetched in the background
	// (default DefaultJWKSRefreshInterval).
	JWKSRefreshInterval time.Duration
	// JWKSUnknownKIDInterval is the least time between two fetches caused by
	// tokens whose kid is not cached (default DefaultJWKSUnknownKIDInterval).
	// A key rotated into the JWKS is picked up on its first use, unless
	// another unknown kid caused a fetch less than this long before: then
	// tokens with the new key are refused until the interval has passed.
	JWKSUnknownKIDInterval time.Duration
	// JWKSFetchTimeout bounds one fetch, including the wait for the rate
	// limit (default DefaultJWKSFetchTimeout).
	JWKSFetchTimeout time.Duration

	// CacheSize is how many verified tokens are remembered (default
	// DefaultCacheSize; negative disables the cache).
	CacheSize int
	// CacheTTL is how long a verified token is remembered at most (default
	// DefaultCacheTTL; never past the token's exp).
	CacheTTL time.Duration

	// Logger receives JWKS fetch failures (default slog.Default()).
	Logger *slog.Logger

	// now replaces the clock in tests.
	now func() time.Time
}

// ClerkVerifier verifies Clerk session tokens against the instance's JWKS.
// It is safe for concurrent use.
type ClerkVerifier struct {
	*verifier
}

var _ Verifier = (*ClerkVerifier)(nil)

// NewClerkVerifier checks cfg and fetches the JWKS once, waiting at most
// JWKSFetchTimeout. A failed first fetch
// is logged, not returned: the service starts, and Verify answers
// ErrKeysUnavailable until a fetch succeeds (on the next token, at most once
// per JWKSUnknownKIDInterval). ctx bounds the verifier's life: cancelling it
// stops the background refresh.
func NewClerkVerifier(ctx context.Context, cfg ClerkConfig) (*ClerkVerifier, error) {
	if err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	client := *cfg.HTTPClient
	base := client.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	client.Transport = limitedBodyTransport{base: base}

	cache := &recordingStorage{Storage: jwkset.NewMemoryStorage()}
	onFetchError := func(ctx context.Context, err error) {
		cache.fetchFailed(err)
		cfg.Logger.WarnContext(ctx, "auth: JWKS fetch failed", "url", cfg.JWKSURL, "err", err)
	}
	remote, err := jwkset.NewStorageFromHTTP(cfg.JWKSURL, jwkset.HTTPClientStorageOptions{
		Client:                    &client,
		Ctx:                       ctx,
		HTTPTimeout:               cfg.JWKSFetchTimeout,
		NoErrorReturnFirstHTTPReq: true,
		RefreshErrorHandler:       onFetchError,
		RefreshInterval:           cfg.JWKSRefreshInterval,
		Storage:                   cache,
	})
	if err != nil {
		return nil, fmt.Errorf("auth: JWKS client: %w", err)
	}
	httpClient, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs: map[string]jwkset.Storage{cfg.JWKSURL: remote},
		// A burst of one: a flood of forged kids costs at most one fetch per
		// interval. A caller that cannot have the next fetch within
		// RateLimitWaitMax fails at once rather than queueing, and the same
		// deadline bounds the fetch itself.
		RefreshUnknownKID: rate.NewLimiter(rate.Every(cfg.JWKSUnknownKIDInterval), 1),
		RateLimitWaitMax:  cfg.JWKSFetchTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("auth: JWKS client: %w", err)
	}
	v, err := newVerifier(verifierConfig{
		issuer:    cfg.Issuer,
		storage:   &jwksStore{Storage: httpClient, cache: cache},
		policy:    newPolicy(cfg.AuthorizedParties, cfg.AdminRoles, cfg.AdminUsers),
		leeway:    cfg.Leeway,
		cacheSize: cfg.CacheSize,
		cacheTTL:  cfg.CacheTTL,
		now:       cfg.now,
	})
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return &ClerkVerifier{verifier: v}, nil
}

// withDefaults fills the zero values and reports every invalid setting.
func (c *ClerkConfig) withDefaults() error {
	var errs []error
	if u, err := url.Parse(c.JWKSURL); err != nil || u.Host == "" ||
		!(u.Scheme == "https" || u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
		errs = append(errs, fmt.Errorf("JWKS URL %q: want an https URL (http only on a loopback host)", c.JWKSURL))
	}
	if c.Issuer == "" {
		errs = append(errs, errors.New("issuer is required"))
	}
	for _, r := range c.AdminRoles {
		if r == "" {
			errs = append(errs, errors.New("admin roles: empty role"))
		}
	}
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	if c.Leeway < 0 || c.Leeway > MaxLeeway {
		errs = append(errs, fmt.Errorf("leeway %s: want 0 to %s", c.Leeway, MaxLeeway))
	}
	defaultDuration(&c.JWKSRefreshInterval, DefaultJWKSRefreshInterval)
	defaultDuration(&c.JWKSUnknownKIDInterval, DefaultJWKSUnknownKIDInterval)
	defaultDuration(&c.JWKSFetchTimeout, DefaultJWKSFetchTimeout)
	defaultDuration(&c.CacheTTL, DefaultCacheTTL)
	for _, d := range []struct {
		name  string
		value time.Duration
	}{
		{"JWKS refresh interval", c.JWKSRefreshInterval},
		{"JWKS unknown-kid interval", c.JWKSUnknownKIDInterval},
		{"JWKS fetch timeout", c.JWKSFetchTimeout},
		{"cache TTL", c.CacheTTL},
	} {
		if d.value < 0 {
			errs = append(errs, fmt.Errorf("%s %s: must be positive", d.name, d.value))
		}
	}
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: c.JWKSFetchTimeout}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("auth: invalid Clerk configuration: %w", err)
	}
	return nil
}

func defaultDuration(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
