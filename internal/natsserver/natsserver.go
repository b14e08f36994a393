// Package natsserver runs a NATS server with JetStream inside this process:
// the bus of the embedded default, and the real NATS that tests run against.
package natsserver

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/icpservice/icp/internal/natsauth"
)

// Config says where the embedded server keeps its JetStream files, where it
// listens and whom it admits. Port 0 picks a free port. Host must be a
// loopback address: the embedded server must not be reachable from other
// machines.
type Config struct {
	StoreDir string
	Host     string // default 127.0.0.1
	Port     int    // default 0 (any free port)
	// SyncAlways fsyncs every JetStream write. Off by default: the bus is a
	// derived transport; the event store is the truth and the relay re-drives
	// what the bus lost (see the relay's resume rule).
	SyncAlways bool
	// Name is the server name (default "icp-embedded").
	Name string
	// Identity, when set, runs the server in operator mode: it admits only
	// users of Identity's account (its .creds files), JetStream lives in
	// that account, and in-process connections must present credentials
	// too. Nil admits anyone who can reach the port: for tests only.
	Identity *natsauth.Identity
}

// Server is a running embedded NATS server.
type Server struct {
	ns *server.Server
}

// Start starts the server and waits until it accepts connections.
func Start(cfg Config) (*Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("natsserver: StoreDir is required")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if ip := net.ParseIP(cfg.Host); cfg.Host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("natsserver: host %q is not a loopback address", cfg.Host)
	}
	if cfg.Name == "" {
		cfg.Name = "icp-embedded"
	}
	opts, err := serverOptions(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Port != 0 {
		// nats-server reports a port it cannot bind only by never becoming
		// ready; trying it first gives the reason at once.
		addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("natsserver: cannot listen on %s: %w", addr, err)
		}
		l.Close()
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsserver: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("natsserver: not ready for connections after 30s")
	}
	return &Server{ns: ns}, nil
}

// serverOptions are the nats-server options of cfg, its defaults applied.
func serverOptions(cfg Config) (*server.Options, error) {
	dir, err := filepath.Abs(cfg.StoreDir)
	if err != nil {
		return nil, err
	}
	opts := &server.Options{
		ServerName: cfg.Name,
		Host:       cfg.Host,
		Port:       cfg.Port,
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
		NoLog:      true,
		SyncAlways: cfg.SyncAlways,
		// Room for large batches of 1 MiB bodies plus headers.
		MaxPayload: 8 << 20,
	}
	if cfg.Port == 0 {
		opts.Port = server.RANDOM_PORT
	}
	if id := cfg.Identity; id != nil {
		// A memory resolver preloaded with the two accounts: nothing is
		// pushed to the server at run time, so it needs no resolver
		// directory and no system account traffic.
		resolver := &server.MemAccResolver{}
		for pub, token := range id.AccountJWTs {
			if err := resolver.Store(pub, token); err != nil {
				return nil, fmt.Errorf("natsserver: account %s: %w", pub, err)
			}
		}
		opts.TrustedOperators = []*jwt.OperatorClaims{id.Operator}
		opts.SystemAccount = id.SystemAccount
		opts.AccountResolver = resolver
	}
	return opts, nil
}

// ClientURL is the nats:// URL clients connect to.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// Port returns the port the server listens on.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.ns.Addr().String())
	n, _ := strconv.Atoi(p)
	return n
}

// Inner exposes the server for in-process connections (nats.InProcessServer).
func (s *Server) Inner() *server.Server { return s.ns }

// Shutdown stops the server and waits until it is down. JetStream state is
// flushed to StoreDir.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}
