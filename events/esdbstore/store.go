// Package esdbstore is the production event store: the events.Store port on
// EventStoreDB (or KurrentDB, same protocol) through its gRPC client,
// github.com/EventStore/EventStore-Client-Go/v4.
//
// Mapping:
//   - the events of an ICP are the stream "icp-<id>"; our 1-based version N
//     is EventStoreDB's 0-based revision N-1, and events.NoStream is the
//     client's NoStream;
//   - Position is the event's commit position in $all;
//   - each event keeps its id (so the server deduplicates a retried append),
//     its type as the event type, its data as JSON data, and its schema
//     version and metadata in the event's custom metadata, as the envelope
//     described in envelope.go;
//   - ReadAll, Head and Follow see only streams whose name starts with
//     Options.StreamPrefix ("icp-"): $all also holds the server's own events
//     and those of other services.
//
// Connection: the client connects lazily, and a client whose connection
// discovery failed is dead for good. The Store therefore owns a succession
// of clients: it builds one on demand, and replaces it after the server was
// found unreachable. Open does not contact the server and does not fail when
// it is down; Ping answers an error wrapping events.ErrUnavailable until the
// server answers, and can be called again (with backoff) to wait for it.
package esdbstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/icpservice/icp/events"
)

// Defaults of Options.
const (
	DefaultResubscribeMin = 100 * time.Millisecond
	DefaultResubscribeMax = 5 * time.Second
)

// Options tune the store. The zero value of each field selects its default.
type Options struct {
	// StreamPrefix selects this service's streams in $all: ReadAll, Head
	// and Follow see only events of streams whose name starts with it.
	// Default events.StreamPrefix ("icp-"). It may not start with "$" (the
	// server's streams), nor be such that a snapshot stream's name
	// (SnapshotStreamPrefix + a stream's name) could start with it.
	StreamPrefix string
	// Logger receives the client library's log lines (its errors and
	// warnings at Warn, the rest at Debug) and, at Warn, the snapshots
	// AppendWithSnapshot could not write; nil discards them.
	Logger *slog.Logger
	// ResubscribeMin and ResubscribeMax bound the exponential backoff
	// between Follow's attempts to resubscribe after its subscription
	// dropped. Defaults 100 ms and 5 s.
	ResubscribeMin time.Duration
	ResubscribeMax time.Duration
}

// Validate reports every invalid field at once.
func (o Options) Validate() error {
	var errs []error
	if strings.HasPrefix(o.StreamPrefix, "$") {
		errs = append(errs, fmt.Errorf("StreamPrefix %q names system streams", o.StreamPrefix))
	}
	if p := o.StreamPrefix; p != "" && (strings.HasPrefix(SnapshotStreamPrefix, p) || strings.HasPrefix(p, SnapshotStreamPrefix)) {
		errs = append(errs, fmt.Errorf("StreamPrefix %q would select the snapshot streams (%q...)", p, SnapshotStreamPrefix))
	}
	if o.ResubscribeMin < 0 || o.ResubscribeMax < 0 {
		errs = append(errs, errors.New("ResubscribeMin and ResubscribeMax must be >= 0 (0: default)"))
	}
	o = o.withDefaults()
	if o.ResubscribeMin > o.ResubscribeMax {
		errs = append(errs, fmt.Errorf("ResubscribeMin %s is above ResubscribeMax %s", o.ResubscribeMin, o.ResubscribeMax))
	}
	if len(errs) > 0 {
		return fmt.Errorf("esdbstore: invalid options: %w", errors.Join(errs...))
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.StreamPrefix == "" {
		o.StreamPrefix = events.StreamPrefix
	}
	if o.ResubscribeMin == 0 {
		o.ResubscribeMin = DefaultResubscribeMin
	}
	if o.ResubscribeMax == 0 {
		o.ResubscribeMax = DefaultResubscribeMax
	}
	return o
}

// Store is the events.Store port on EventStoreDB. Its methods are safe for
// concurrent use.
type Store struct {
	cfg  esdb.Configuration // template of every client the store builds
	opts Options
	addr string // for error messages, without credentials

	closing chan struct{} // closed by Close: ends every Follow

	mu       sync.Mutex
	cur      *generation  // the client in use; nil: none yet or retired
	dialing  *dialAttempt // the connection attempt in progress, if any
	closed   bool
	inflight sync.WaitGroup // callers inside an operation
}

var _ events.Store = (*Store)(nil)

// Open returns a store for the server the connection string names, e.g.
// "esdb://localhost:2113?tls=false" or
// "esdb+discover://user:pass@cluster.example:2113" (see the client's
// connection string settings).
//
// Open checks the connection string and options but does not contact the
// server, and does not fail when it is down: the first operation connects.
// Use Ping to find out whether the server is reachable. ctx is only checked
// for being done already.
//
// Credentials in a connection string with tls=false are refused: the client
// would silently not send them.
func Open(ctx context.Context, connString string, opts Options) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	cfg, err := esdb.ParseConnectionString(connString)
	if err != nil {
		red := redact(connString)
		return nil, fmt.Errorf("esdbstore: invalid connection string %s: %s", red, strings.ReplaceAll(err.Error(), connString, red))
	}
	if cfg.DisableTLS && (cfg.Username != "" || cfg.Password != "") {
		return nil, fmt.Errorf("esdbstore: connection string %s has credentials and tls=false: the client sends credentials only over TLS", redact(connString))
	}
	cfg.Logger = clientLogger(opts.Logger)
	return &Store{
		cfg:     *cfg,
		opts:    opts.withDefaults(),
		addr:    redact(connString),
		closing: make(chan struct{}),
	}, nil
}

// redact returns the connection string without its password.
func redact(connString string) string {
	u, err := url.Parse(connString)
	if err != nil {
		return "(unparsable connection string)"
	}
	return u.Redacted()
}

// clientLogger routes the client's log lines to l.
func clientLogger(l *slog.Logger) esdb.LoggingFunc {
	if l == nil {
		return esdb.NoopLogging()
	}
	return func(level esdb.LogLevel, format string, args ...any) {
		lv := slog.LevelDebug
		if level == esdb.LogWarn || level == esdb.LogError {
			lv = slog.LevelWarn
		}
		if l.Enabled(context.Background(), lv) {
			l.Log(context.Background(), lv, "eventstoredb client: "+fmt.Sprintf(format, args...))
		}
	}
}

// Ping reports whether the server answers a read of $all now (the store
// reads $all for ReadAll, Head and Follow). Unreachable, it returns an error
// wrapping events.ErrUnavailable; each call tries again, with a new client
// when the previous one gave up.
func (s *Store) Ping(ctx context.Context) error {
	err := s.do(ctx, func(c *esdb.Client) error {
		rs, err := c.ReadAll(ctx, esdb.ReadAllOptions{Direction: esdb.Backwards, From: esdb.End{}}, 1)
		if err != nil {
			return err
		}
		defer rs.Close()
		_, err = rs.Recv()
		if isEOF(err) {
			return nil
		}
		return err
	})
	return s.failed(ctx, "ping "+s.addr, err)
}

// Close ends every Follow, waits for operations in progress to finish, and
// releases the client. Every later call answers ErrClosed. Close may be called
// more than once.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	g := s.cur
	s.cur = nil
	var closeNow bool
	if g != nil {
		closeNow = g.retire()
	}
	s.mu.Unlock()
	if closeNow {
		_ = g.client.Close()
	}
	s.inflight.Wait()
	return nil
}
