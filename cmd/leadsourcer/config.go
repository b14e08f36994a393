package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/icpservice/icp/events/consumer"
	"github.com/icpservice/icp/internal/natsauth"
	"github.com/icpservice/icp/platform/redact"
)

// Config is the worker's whole configuration: every flag with its
// environment twin and default.
type Config struct {
	NATSURL     string        `name:"nats-url" env:"LEADSOURCER_NATS_URL" default:"nats://127.0.0.1:4222" help:"NATS server(s) carrying the ICP_EVENTS stream, comma separated (default: icpd's embedded server)."`
	NATSCreds   string        `name:"nats-creds" env:"LEADSOURCER_NATS_CREDS" help:"NATS credentials file (.creds: user JWT and nkey seed); default: <data-dir>/nats-auth/worker.creds when it exists."`
	NATSUser    string        `name:"nats-user" env:"LEADSOURCER_NATS_USER" help:"NATS user name, for a server with users and passwords (password in LEADSOURCER_NATS_PASSWORD)."`
	NATSPass    string        `name:"nats-password" env:"LEADSOURCER_NATS_PASSWORD" help:"Password of --nats-user; prefer the environment variable to the flag."`
	DataDir     string        `name:"data-dir" env:"LEADSOURCER_DATA_DIR" default:"./data" help:"icpd's data directory, where the workers' credentials of its embedded NATS server are."`
	Durable     string        `name:"durable" env:"LEADSOURCER_DURABLE" default:"leadsourcer" help:"Durable consumer name; processes with the same name share the work and the position. Dead letters go to icp.dlq.<durable>."`
	StartAt     string        `name:"start-at" env:"LEADSOURCER_START_AT" default:"first" enum:"first,new" help:"Where a new durable starts: every event the stream holds (first) or only new ones (new). An existing durable resumes where it stopped."`
	MaxAttempts int           `name:"max-attempts" env:"LEADSOURCER_MAX_ATTEMPTS" default:"5" help:"Deliveries of a failing event before it is dead-lettered."`
	AckWait     time.Duration `name:"ack-wait" env:"LEADSOURCER_ACK_WAIT" default:"30s" help:"How long one event may take before JetStream delivers it again."`
	LogLevel    string        `name:"log-level" env:"LEADSOURCER_LOG_LEVEL" default:"info" enum:"debug,info,warn,error" help:"Log level."`
	LogFormat   string        `name:"log-format" env:"LEADSOURCER_LOG_FORMAT" default:"json" enum:"json,text" help:"Log format."`
}

// Consumer returns the consumer configuration, reporting every invalid
// setting at once with the flag that sets it.
func (c Config) Consumer(log *slog.Logger) (consumer.Config, error) {
	var errs []error
	auth, err := c.natsAuth()
	if err != nil {
		errs = append(errs, err)
	}
	cc := consumer.Config{
		URL:         c.NATSURL,
		NatsOptions: auth,
		Durable:     c.Durable,
		StartAt:     consumer.StartAt(c.StartAt),
		MaxAttempts: c.MaxAttempts,
		AckWait:     c.AckWait,
		Logger:      log,
	}
	// The flags' own checks name the flag; the consumer checks the rest
	// (its zero values mean defaults, which a flag must not fall back to).
	check := cc
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("--max-attempts/LEADSOURCER_MAX_ATTEMPTS %d: want >= 1", c.MaxAttempts))
		check.MaxAttempts = 0
	}
	if c.AckWait < time.Second {
		errs = append(errs, fmt.Errorf("--ack-wait/LEADSOURCER_ACK_WAIT %s: want >= 1s", c.AckWait))
		check.AckWait = 0
	}
	if err := check.Validate(); err != nil {
		errs = append(errs, err)
	}
	return cc, errors.Join(errs...)
}

// natsAuth returns the options that present the worker's credentials:
// --nats-creds, --nats-user, or the workers' .creds of icpd's embedded
// server in --data-dir when there is one (none otherwise: a server without
// authentication).
func (c Config) natsAuth() ([]nats.Option, error) {
	switch {
	case c.NATSCreds != "" && c.NATSUser != "":
		return nil, errors.New("--nats-creds/LEADSOURCER_NATS_CREDS and --nats-user/LEADSOURCER_NATS_USER are exclusive")
	case c.NATSPass != "" && c.NATSUser == "":
		return nil, errors.New("--nats-password/LEADSOURCER_NATS_PASSWORD needs --nats-user/LEADSOURCER_NATS_USER")
	case c.NATSCreds != "":
		if _, err := os.Stat(c.NATSCreds); err != nil {
			return nil, fmt.Errorf("--nats-creds/LEADSOURCER_NATS_CREDS: %w", err)
		}
		return []nats.Option{nats.UserCredentials(c.NATSCreds)}, nil
	case c.NATSUser != "":
		return []nats.Option{nats.UserInfo(c.NATSUser, c.NATSPass)}, nil
	}
	path := natsauth.WorkerCredsPath(c.DataDir)
	if _, err := os.Stat(path); err == nil {
		return []nats.Option{nats.UserCredentials(path)}, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("--data-dir/LEADSOURCER_DATA_DIR: %w", err)
	}
	return nil, nil
}

// Logger returns the process logger; no line it writes carries the
// credentials of the NATS URLs.
func (c Config) Logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(strings.ToUpper(c.LogLevel)))
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if c.LogFormat == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(redact.NewScrubber(c.NATSURL).Handler(h))
}
