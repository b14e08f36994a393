// Package config is icpd's configuration: every flag with its environment
// twin and default, and a Validate that reports every problem at once.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/icpservice/icp/platform/redact"
)

// Config is icpd's whole configuration. The kong tags give each field its
// flag, environment variable and default; docs/configuration.md
// lists the same.
type Config struct {
	Addr       string `name:"addr" env:"ICP_ADDR" default:"127.0.0.1:8080" help:"HTTP listen address of the API."`
	DataDir    string `name:"data-dir" env:"ICP_DATA_DIR" default:"./data" help:"Directory of the embedded stores (events, read model, NATS, dev key)."`
	EventStore string `name:"event-store" env:"ICP_EVENT_STORE" help:"Event store: empty for the embedded SQLite file in --data-dir, or esdb://host:2113?tls=false for EventStoreDB."`
	ReadModel  string `name:"read-model" env:"ICP_READ_MODEL" help:"Read model: empty for the embedded SQLite file in --data-dir, or mongodb://host:27017/icp for MongoDB."`
	Dev        bool   `name:"dev" env:"ICP_DEV" help:"Development mode: accept tokens signed with the local key in the data directory (see icpctl token). Loopback addresses only."`

	AuthJWKSURL           string   `name:"auth-jwks-url" env:"ICP_AUTH_JWKS_URL" help:"Clerk instance JWKS URL (https://<frontend-api>/.well-known/jwks.json)."`
	AuthIssuer            string   `name:"auth-issuer" env:"ICP_AUTH_ISSUER" help:"Expected iss of Clerk session tokens (the instance's frontend API URL)."`
	AuthAuthorizedParties []string `name:"auth-authorized-parties" env:"ICP_AUTH_AUTHORIZED_PARTIES" help:"Allowed azp origins, comma separated (empty: azp not checked)."`
	AuthAdminRoles        []string `name:"auth-admin-roles" env:"ICP_AUTH_ADMIN_ROLES" default:"org:admin,admin" help:"Organisation roles that make the caller an admin."`
	AuthAdminUsers        []string `name:"auth-admin-users" env:"ICP_AUTH_ADMIN_USERS" help:"User ids that are admins of every organisation they act in."`

	ConsistencyWait time.Duration `name:"consistency-wait" env:"ICP_CONSISTENCY_WAIT" default:"5s" help:"How long a create waits for the read model before answering 201 with ICP-Consistency: pending."`
	MaxBodyBytes    int64         `name:"max-body-bytes" env:"ICP_MAX_BODY_BYTES" default:"1048576" help:"Largest accepted request body."`
	ShutdownTimeout time.Duration `name:"shutdown-timeout" env:"ICP_SHUTDOWN_TIMEOUT" default:"20s" help:"How long a graceful shutdown waits for in-flight work."`
	LogLevel        string        `name:"log-level" env:"ICP_LOG_LEVEL" default:"info" enum:"debug,info,warn,error" help:"Log level."`

	Roles     []string `name:"roles" env:"ICP_ROLES" default:"api,relay,projector" help:"Parts this process runs: any of api, relay, projector. A subset needs a shared NATS (--nats)."`
	NATSURL   string   `name:"nats" env:"ICP_NATS_URL" help:"NATS server URL(s), comma separated; empty runs an embedded NATS server under --data-dir."`
	AdminAddr string   `name:"admin-addr" env:"ICP_ADMIN_ADDR" default:"127.0.0.1:9090" help:"Listen address of the admin endpoints (/metrics, /healthz, /readyz, and /debug/pprof with --pprof); empty disables them."`
	Pprof     bool     `name:"pprof" env:"ICP_PPROF" help:"Serve Go's profiler at /debug/pprof on the admin listener (off by default: profiles expose the process's memory and code)."`

	EmbeddedNATSAddr string `name:"embedded-nats-addr" env:"ICP_EMBEDDED_NATS_ADDR" default:"127.0.0.1:4222" help:"Loopback address the embedded NATS server listens on (without --nats); it admits only the credentials in <data-dir>/nats-auth."`
	NATSCreds        string `name:"nats-creds" env:"ICP_NATS_CREDS" help:"With --nats: NATS credentials file (.creds: user JWT and nkey seed)."`
	NATSUser         string `name:"nats-user" env:"ICP_NATS_USER" help:"With --nats: NATS user name (password in ICP_NATS_PASSWORD)."`
	NATSPassword     string `name:"nats-password" env:"ICP_NATS_PASSWORD" help:"With --nats: password of --nats-user; prefer the environment variable to the flag."`

	StreamMaxAge     time.Duration `name:"stream-max-age" env:"ICP_STREAM_MAX_AGE" default:"0s" help:"How long JetStream keeps published events (0: forever). The event store keeps them regardless."`
	StreamMaxBytes   int64         `name:"stream-max-bytes" env:"ICP_STREAM_MAX_BYTES" default:"4294967296" help:"Largest size of ICP_EVENTS on disk, in bytes (at least 1048576; -1, written --stream-max-bytes=-1: no limit). The oldest events go first, the newest always stays; the event store keeps them all regardless."`
	StreamDuplicates time.Duration `name:"stream-duplicates" env:"ICP_STREAM_DUPLICATES" default:"10s" help:"JetStream's deduplication window for Nats-Msg-Id on ICP_EVENTS."`
	ProjectorAckWait time.Duration `name:"projector-ack-wait" env:"ICP_PROJECTOR_ACK_WAIT" default:"30s" help:"How long JetStream waits for the projector to acknowledge a message before delivering it again (after a projector crash, its in-flight messages return after this)."`
	RelayLeaseTTL    time.Duration `name:"relay-lease-ttl" env:"ICP_RELAY_LEASE_TTL" default:"10s" help:"How long a crashed active relay keeps the lease before a spare takes over."`

	MaxInflightWrites    int           `name:"max-inflight-writes" env:"ICP_MAX_INFLIGHT_WRITES" default:"1024" help:"Writes (create, update, delete) being recorded at once; more wait up to --write-queue-wait, then 503 before anything is recorded."`
	WriteQueueWait       time.Duration `name:"write-queue-wait" env:"ICP_WRITE_QUEUE_WAIT" default:"1s" help:"How long a write waits for a slot before 503 with Retry-After."`
	RateLimit            float64       `name:"rate-limit" env:"ICP_RATE_LIMIT" default:"0" help:"Requests per second per user (0: no limit); above it 429 RATE_LIMITED with Retry-After."`
	RateBurst            int           `name:"rate-burst" env:"ICP_RATE_BURST" default:"0" help:"Burst of the per-user rate limit (0: the limit rounded up)."`
	RateLimitUsers       int           `name:"rate-limit-users" env:"ICP_RATE_LIMIT_USERS" default:"100000" help:"Users whose rate-limit buckets are kept; the least recently seen is forgotten first (it starts again with a full bucket)."`
	MaxWaitingWrites     int           `name:"max-waiting-writes" env:"ICP_MAX_WAITING_WRITES" default:"1024" help:"Writes waiting for one of the --max-inflight-writes slots at once; one more is answered 503 with Retry-After at once."`
	MaxInflightBodyBytes int64         `name:"max-inflight-body-bytes" env:"ICP_MAX_INFLIGHT_BODY_BYTES" default:"33554432" help:"Bytes of request bodies being read or held at once, over all requests; a body that does not fit is answered 503 with Retry-After."`
	CORSOrigins          []string      `name:"cors-origins" env:"ICP_CORS_ORIGINS" help:"Browser origins allowed by CORS, comma separated (empty: the authorized parties)."`
	MemoryLimitMiB       int64         `name:"memory-limit-mib" env:"ICP_MEMORY_LIMIT_MIB" default:"135" help:"Soft limit of the Go runtime's memory, in MiB: the garbage collector works harder as the process nears it rather than letting garbage grow (0: none). GOMEMLIMIT in the environment takes precedence."`

	ReadHeaderTimeout time.Duration `name:"read-header-timeout" env:"ICP_READ_HEADER_TIMEOUT" default:"10s" help:"HTTP server: time to read a request's headers."`
	ReadTimeout       time.Duration `name:"read-timeout" env:"ICP_READ_TIMEOUT" default:"30s" help:"HTTP server: time to read a whole request."`
	WriteTimeout      time.Duration `name:"write-timeout" env:"ICP_WRITE_TIMEOUT" default:"60s" help:"HTTP server: time to write a response, from the end of the request headers (keep above --consistency-wait)."`
	IdleTimeout       time.Duration `name:"idle-timeout" env:"ICP_IDLE_TIMEOUT" default:"2m" help:"HTTP server: how long an idle keep-alive connection stays open."`

	OTLPEndpoint     string  `name:"otlp-endpoint" env:"ICP_OTLP_ENDPOINT" help:"OTLP/HTTP collector for traces, e.g. http://otel-collector:4318 (empty: no export; trace context is still propagated)."`
	TraceSampleRatio float64 `name:"trace-sample-ratio" env:"ICP_TRACE_SAMPLE_RATIO" default:"1" help:"Share of new traces sampled when exporting (0 to 1); a caller's decision is followed."`
}

// Role names.
const (
	RoleAPI       = "api"
	RoleRelay     = "relay"
	RoleProjector = "projector"
)

// Runs reports whether this process runs role.
func (c Config) Runs(role string) bool {
	for _, r := range c.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// Validate reports every invalid setting at once, one per line, in the
// order of the phases below.
func (c Config) Validate() error {
	var p problems
	host, addrOK := c.validateAddrAndStores(&p)
	c.validateAuth(&p, host, addrOK)
	c.validateRequests(&p)
	c.validateRoles(&p)
	c.validateNATS(&p)
	c.validateAdminAndStream(&p)
	c.validateWriteLimits(&p)
	c.validateHTTPAndTelemetry(&p)
	return errors.Join(p...)
}

// problems collects Validate's findings.
type problems []error

func (p *problems) add(format string, a ...any) { *p = append(*p, fmt.Errorf(format, a...)) }

// validateAddrAndStores checks the API's address, the stores and the data
// directory; it returns the address's host, and whether it parsed.
func (c Config) validateAddrAndStores(p *problems) (host string, ok bool) {
	add := p.add
	host, port, err := net.SplitHostPort(c.Addr)
	if err != nil {
		add("--addr/ICP_ADDR %q: want host:port", c.Addr)
	} else if n, perr := parsePort(port); perr != nil || n < 0 {
		add("--addr/ICP_ADDR %q: bad port", c.Addr)
	}
	if c.EventStore != "" {
		if u, perr := url.Parse(c.EventStore); perr != nil || (u.Scheme != "esdb" && u.Scheme != "esdb+discover" && u.Scheme != "kurrentdb" && u.Scheme != "kurrentdb+discover") || u.Host == "" {
			add("--event-store/ICP_EVENT_STORE %q: want esdb://host:2113?tls=false (or empty for the embedded store)", redact.URL(c.EventStore))
		}
	}
	if c.ReadModel != "" {
		if u, perr := url.Parse(c.ReadModel); perr != nil || (u.Scheme != "mongodb" && u.Scheme != "mongodb+srv") || u.Host == "" {
			add("--read-model/ICP_READ_MODEL %q: want mongodb://host:27017/icp (or empty for the embedded read model)", redact.URL(c.ReadModel))
		}
	}
	if c.DataDir == "" {
		add("--data-dir/ICP_DATA_DIR: must not be empty")
	}
	return host, err == nil
}

// validateAuth checks the choice between development tokens and Clerk, and
// the token rules.
func (c Config) validateAuth(p *problems, host string, addrOK bool) {
	add := p.add
	clerk := c.AuthJWKSURL != "" || c.AuthIssuer != ""
	switch {
	case c.Dev && clerk:
		add("--dev and --auth-jwks-url/--auth-issuer are exclusive: choose development tokens or Clerk")
	case c.Dev:
		if addrOK && !IsLoopback(host) {
			add("--dev refuses the non-loopback address %q: development tokens must not be reachable from other machines", c.Addr)
		}
	case clerk:
		if c.AuthJWKSURL == "" {
			add("--auth-jwks-url/ICP_AUTH_JWKS_URL is required with --auth-issuer")
		} else if u, perr := url.Parse(c.AuthJWKSURL); perr != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			add("--auth-jwks-url/ICP_AUTH_JWKS_URL %q: want an http(s) URL", redact.URL(c.AuthJWKSURL))
		}
		if c.AuthIssuer == "" {
			add("--auth-issuer/ICP_AUTH_ISSUER is required with --auth-jwks-url")
		}
	default:
		add("no authentication configured: run with --dev (ICP_DEV=true) for local development tokens, or set ICP_AUTH_JWKS_URL and ICP_AUTH_ISSUER to verify Clerk session tokens")
	}
	for _, p := range c.AuthAuthorizedParties {
		if u, perr := url.Parse(p); perr != nil || u.Scheme == "" || u.Host == "" {
			add("--auth-authorized-parties/ICP_AUTH_AUTHORIZED_PARTIES: %q is not an origin like https://app.example.com", p)
		}
	}
	for _, r := range c.AuthAdminRoles {
		if strings.TrimSpace(r) == "" {
			add("--auth-admin-roles/ICP_AUTH_ADMIN_ROLES: empty role")
		}
	}
}

// validateRequests checks the limits of one request.
func (c Config) validateRequests(p *problems) {
	add := p.add
	if c.ConsistencyWait < 0 || c.ConsistencyWait > time.Minute {
		add("--consistency-wait/ICP_CONSISTENCY_WAIT %s: want 0 to 1m", c.ConsistencyWait)
	}
	if c.MaxBodyBytes < 1024 || c.MaxBodyBytes > 64<<20 {
		add("--max-body-bytes/ICP_MAX_BODY_BYTES %d: want 1024 to 67108864", c.MaxBodyBytes)
	}
}

// validateRoles checks the roles and that a process running only some of
// them has a NATS server to share.
func (c Config) validateRoles(p *problems) {
	add := p.add
	if len(c.Roles) == 0 {
		add("--roles/ICP_ROLES: name at least one of api, relay, projector")
	}
	for _, r := range c.Roles {
		if r != RoleAPI && r != RoleRelay && r != RoleProjector {
			add("--roles/ICP_ROLES: unknown role %q (want api, relay, projector)", r)
		}
	}
	if c.NATSURL == "" && !(c.Runs(RoleAPI) && c.Runs(RoleRelay) && c.Runs(RoleProjector)) {
		add("--roles/ICP_ROLES %s: a process running only some roles needs a NATS server shared with the others (--nats/ICP_NATS_URL)", strings.Join(c.Roles, ","))
	}
	if c.NATSURL != "" {
		for _, u := range strings.Split(c.NATSURL, ",") {
			if pu, perr := url.Parse(strings.TrimSpace(u)); perr != nil || (pu.Scheme != "nats" && pu.Scheme != "tls") || pu.Host == "" {
				add("--nats/ICP_NATS_URL: %q is not a nats:// URL", redact.URL(u))
			}
		}
	}
}

// validateNATS checks the embedded server's address and the credentials of
// an outside one.
func (c Config) validateNATS(p *problems) {
	add := p.add
	if h, p, nerr := net.SplitHostPort(c.EmbeddedNATSAddr); nerr != nil {
		add("--embedded-nats-addr/ICP_EMBEDDED_NATS_ADDR %q: want host:port", c.EmbeddedNATSAddr)
	} else if n, perr := parsePort(p); perr != nil || n < 0 {
		add("--embedded-nats-addr/ICP_EMBEDDED_NATS_ADDR %q: bad port", c.EmbeddedNATSAddr)
	} else if !IsLoopback(h) {
		add("--embedded-nats-addr/ICP_EMBEDDED_NATS_ADDR refuses the non-loopback address %q: the embedded NATS server must not be reachable from other machines (run a NATS server of your own and pass --nats)", c.EmbeddedNATSAddr)
	}
	if c.NATSURL == "" && (c.NATSCreds != "" || c.NATSUser != "" || c.NATSPassword != "") {
		add("--nats-creds, --nats-user and --nats-password apply to --nats/ICP_NATS_URL only: the embedded server's clients use the credentials in the data directory")
	}
	if c.NATSCreds != "" {
		if info, serr := os.Stat(c.NATSCreds); serr != nil {
			add("--nats-creds/ICP_NATS_CREDS: %v", serr)
		} else if !info.Mode().IsRegular() {
			add("--nats-creds/ICP_NATS_CREDS %q is not a regular file", c.NATSCreds)
		}
	}
	if c.NATSCreds != "" && c.NATSUser != "" {
		add("--nats-creds/ICP_NATS_CREDS and --nats-user/ICP_NATS_USER are exclusive: choose a credentials file or a user and password")
	}
	if c.NATSPassword != "" && c.NATSUser == "" {
		add("--nats-password/ICP_NATS_PASSWORD needs --nats-user/ICP_NATS_USER")
	}
}

// validateAdminAndStream checks the admin address and the bus stream's
// limits.
func (c Config) validateAdminAndStream(p *problems) {
	add := p.add
	if c.AdminAddr != "" {
		if _, _, aerr := net.SplitHostPort(c.AdminAddr); aerr != nil {
			add("--admin-addr/ICP_ADMIN_ADDR %q: want host:port", c.AdminAddr)
		} else if c.AdminAddr == c.Addr && c.Runs(RoleAPI) && !strings.HasSuffix(c.Addr, ":0") {
			add("--admin-addr/ICP_ADMIN_ADDR must differ from --addr")
		}
	}
	if c.StreamMaxAge < 0 {
		add("--stream-max-age/ICP_STREAM_MAX_AGE %s: must not be negative", c.StreamMaxAge)
	}
	if c.StreamMaxBytes != -1 && c.StreamMaxBytes < 1<<20 {
		add("--stream-max-bytes/ICP_STREAM_MAX_BYTES %d: want at least 1048576, or -1 for no limit", c.StreamMaxBytes)
	}
	if c.StreamDuplicates < time.Second || (c.StreamMaxAge > 0 && c.StreamDuplicates > c.StreamMaxAge) {
		add("--stream-duplicates/ICP_STREAM_DUPLICATES %s: want at least 1s and at most --stream-max-age", c.StreamDuplicates)
	}
	if c.ProjectorAckWait < time.Second || c.ProjectorAckWait > 10*time.Minute {
		add("--projector-ack-wait/ICP_PROJECTOR_ACK_WAIT %s: want 1s to 10m", c.ProjectorAckWait)
	}
	if c.RelayLeaseTTL < time.Second || c.RelayLeaseTTL > 10*time.Minute {
		add("--relay-lease-ttl/ICP_RELAY_LEASE_TTL %s: want 1s to 10m", c.RelayLeaseTTL)
	}
}

// validateWriteLimits checks the write admission and the process's limits.
func (c Config) validateWriteLimits(p *problems) {
	add := p.add
	if c.MaxInflightWrites < 1 || (c.EventStore == "" && c.MaxInflightWrites > 4096) {
		add("--max-inflight-writes/ICP_MAX_INFLIGHT_WRITES %d: want 1 to 4096 (the embedded store's queue)", c.MaxInflightWrites)
	}
	if c.WriteQueueWait < 0 {
		add("--write-queue-wait/ICP_WRITE_QUEUE_WAIT %s: must not be negative", c.WriteQueueWait)
	}
	if c.MaxWaitingWrites < 1 {
		add("--max-waiting-writes/ICP_MAX_WAITING_WRITES %d: want at least 1", c.MaxWaitingWrites)
	}
	if c.MaxInflightBodyBytes < c.MaxBodyBytes {
		add("--max-inflight-body-bytes/ICP_MAX_INFLIGHT_BODY_BYTES %d: want at least --max-body-bytes %d, or no body of the largest size could ever be read", c.MaxInflightBodyBytes, c.MaxBodyBytes)
	}
	if c.RateLimitUsers < 1 {
		add("--rate-limit-users/ICP_RATE_LIMIT_USERS %d: want at least 1", c.RateLimitUsers)
	}
	if c.MemoryLimitMiB < 0 || c.MemoryLimitMiB > 1<<30 {
		add("--memory-limit-mib/ICP_MEMORY_LIMIT_MIB %d: want 0 (none) to 1073741824", c.MemoryLimitMiB)
	}
	if c.RateLimit < 0 || c.RateBurst < 0 || (c.RateBurst > 0 && c.RateLimit == 0) {
		add("--rate-limit/--rate-burst: want a non-negative limit, and a burst only with a limit")
	}
}

// validateHTTPAndTelemetry checks CORS, the HTTP server's timeouts, tracing
// and shutdown.
func (c Config) validateHTTPAndTelemetry(p *problems) {
	add := p.add
	for _, o := range c.CORSOrigins {
		if u, perr := url.Parse(o); perr != nil || u.Scheme == "" || u.Host == "" {
			add("--cors-origins/ICP_CORS_ORIGINS: %q is not an origin like https://app.example.com", o)
		}
	}
	for name, d := range map[string]time.Duration{"--read-header-timeout": c.ReadHeaderTimeout, "--read-timeout": c.ReadTimeout, "--idle-timeout": c.IdleTimeout} {
		if d <= 0 {
			add("%s: must be positive", name)
		}
	}
	if c.WriteTimeout <= c.ConsistencyWait {
		add("--write-timeout/ICP_WRITE_TIMEOUT %s: must exceed --consistency-wait %s, or a create could be cut off after it was recorded", c.WriteTimeout, c.ConsistencyWait)
	}
	if c.OTLPEndpoint != "" {
		if u, perr := url.Parse(c.OTLPEndpoint); perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("--otlp-endpoint/ICP_OTLP_ENDPOINT %q: want http(s)://host:port", redact.URL(c.OTLPEndpoint))
		}
	}
	if c.TraceSampleRatio < 0 || c.TraceSampleRatio > 1 {
		add("--trace-sample-ratio/ICP_TRACE_SAMPLE_RATIO %v: want 0 to 1", c.TraceSampleRatio)
	}
	if c.ShutdownTimeout <= 0 {
		add("--shutdown-timeout/ICP_SHUTDOWN_TIMEOUT %s: must be positive", c.ShutdownTimeout)
	}
}

func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func parsePort(s string) (int, error) {
	var p int
	if _, err := fmt.Sscanf(s, "%d", &p); err != nil || p > 65535 {
		return -1, errors.New("bad port")
	}
	return p, nil
}

// Load parses args and the environment the way icpd does, defaults included,
// and validates the result.
func Load(args []string) (Config, error) {
	var c Config
	p, err := kong.New(&c, kong.Name("icpd"))
	if err != nil {
		return Config{}, err
	}
	if _, err := p.Parse(args); err != nil {
		return Config{}, err
	}
	return c, c.Validate()
}
