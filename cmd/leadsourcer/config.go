package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/icpservice/icp/events/consumer"
	"github.com/icpservice/icp/internal/redact"
)

// Config is the worker's whole configuration: every flag with its
// environment twin and default.
type Config struct {
	NATSURL     string        `name:"nats-url" env:"LEADSOURCER_NATS_URL" default:"nats://127.0.0.1:4222" help:"NATS server(s) carrying the ICP_EVENTS stream, comma separated."`
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
	cc := consumer.Config{
		URL:         c.NATSURL,
		Durable:     c.Durable,
		StartAt:     consumer.StartAt(c.StartAt),
		MaxAttempts: c.MaxAttempts,
		AckWait:     c.AckWait,
		Logger:      log,
	}
	// The flags' own checks name the flag; the consumer checks the rest
	// (its zero values mean defaults, which a flag must not fall back to).
	var errs []error
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
