package relay

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/icpservice/icp/bus"
	"github.com/icpservice/icp/events"
)

// Defaults of Config.
const (
	DefaultBatchSize      = 256
	DefaultLeaseTTL       = 10 * time.Second
	DefaultLeaseBucket    = "ICP_RELAY"
	DefaultPublishTimeout = 5 * time.Second
	DefaultRetryMax       = 5 * time.Second

	// MaxBatchSize bounds BatchSize: a batch is published one message at a
	// time while the lease is only checked between batches.
	MaxBatchSize = 10_000
	// MinLeaseTTL is the shortest lease: JetStream expires KV entries with a
	// granularity of about 100 ms, and the holder renews every TTL/3.
	MinLeaseTTL = 500 * time.Millisecond
)

// LeaseKey is the key of the relay lease in the lease bucket.
const LeaseKey = "leader"

// Config configures a Relay. Zero values of the optional fields select their
// defaults; Validate reports every invalid field at once.
type Config struct {
	// Store is the event store whose global log is published. Required.
	Store events.Store
	// Conn is the NATS connection to publish on. Required. The relay does not
	// close it and does not replace its handlers; configure reconnection on
	// it (nats.MaxReconnects(-1) for a relay that must outlive NATS restarts).
	Conn *nats.Conn
	// Logger receives the relay's logs (default slog.Default()).
	Logger *slog.Logger
	// BatchSize is the most events read from the store and published between
	// two lease checks (default DefaultBatchSize, at most MaxBatchSize).
	BatchSize int
	// LeaseTTL is how long the lease outlives its holder's last renewal: the
	// longest a spare waits after the active relay died (default
	// DefaultLeaseTTL, at least MinLeaseTTL). It is the lease bucket's MaxAge,
	// so every relay sharing a bucket should use the same value.
	LeaseTTL time.Duration
	// LeaseBucket is the NATS KV bucket that holds the lease (default
	// DefaultLeaseBucket). It has Streams.Replicas replicas.
	LeaseBucket string
	// InstanceID names this relay in the lease; it must be unique among the
	// relays running at the same time. A relay that finds the lease held
	// under its own InstanceID (its previous process died) takes it over at
	// once. Default: hostname, process id and a random suffix, unique per
	// process even where containers share a hostname and pid.
	InstanceID string
	// PublishTimeout bounds one publish and one JetStream API call (default
	// DefaultPublishTimeout).
	PublishTimeout time.Duration
	// Streams configures the bus streams the relay recreates if it finds
	// ICP_EVENTS missing (call bus.EnsureStreams with the same value at
	// start), and the replicas of the lease bucket.
	Streams bus.StreamConfig
	// RetryMax caps the exponential backoff between attempts after a failure
	// (default DefaultRetryMax).
	RetryMax time.Duration
}

// Validate reports every problem of the configuration at once. It does not
// apply defaults.
func (c Config) Validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("Store is required"))
	}
	if c.Conn == nil {
		errs = append(errs, errors.New("Conn is required"))
	}
	if c.BatchSize < 0 || c.BatchSize > MaxBatchSize {
		errs = append(errs, fmt.Errorf("BatchSize must be between 1 and %d (0: default %d), got %d", MaxBatchSize, DefaultBatchSize, c.BatchSize))
	}
	if c.LeaseTTL != 0 && c.LeaseTTL < MinLeaseTTL {
		errs = append(errs, fmt.Errorf("LeaseTTL must be at least %s (0: default %s), got %s", MinLeaseTTL, DefaultLeaseTTL, c.LeaseTTL))
	}
	if c.LeaseBucket != "" && !validBucket(c.LeaseBucket) {
		errs = append(errs, fmt.Errorf("LeaseBucket %q: only letters, digits, '-' and '_' are allowed", c.LeaseBucket))
	}
	if c.PublishTimeout < 0 {
		errs = append(errs, fmt.Errorf("PublishTimeout must be > 0 (0: default %s), got %s", DefaultPublishTimeout, c.PublishTimeout))
	}
	if c.RetryMax < 0 {
		errs = append(errs, fmt.Errorf("RetryMax must be > 0 (0: default %s), got %s", DefaultRetryMax, c.RetryMax))
	}
	if err := c.Streams.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("relay: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.LeaseBucket == "" {
		c.LeaseBucket = DefaultLeaseBucket
	}
	if c.InstanceID == "" {
		host, _ := os.Hostname()
		c.InstanceID = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), uuid.NewString()[:8])
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.RetryMax == 0 {
		c.RetryMax = DefaultRetryMax
	}
	return c
}

// validBucket applies JetStream's rule for KV bucket names.
func validBucket(b string) bool {
	for _, r := range b {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
		default:
			return false
		}
	}
	return b != ""
}
