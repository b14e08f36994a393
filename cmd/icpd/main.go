// Command icpd runs the ICP service: the HTTP API, the command handler, the
// relay and the projector (all of them, or the roles given), on the embedded
// default (SQLite files and an in-process NATS server under --data-dir) or on
// EventStoreDB, NATS and MongoDB.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/icpservice/icp/internal/app"
	"github.com/icpservice/icp/internal/config"
	"github.com/icpservice/icp/platform/private"
	"github.com/icpservice/icp/platform/telemetry"
)

func main() {
	// Before anything is created: every file of the data directory is
	// the owner's alone.
	private.Umask()
	var cfg config.Config
	// kong runs cfg.Validate and exits listing every invalid setting.
	kong.Parse(&cfg,
		kong.Name("icpd"),
		kong.Description("The ICP service: API, command handler, relay and projector."),
	)
	os.Exit(run(cfg))
}

func run(cfg config.Config) int {
	log := app.NewLogger(cfg, os.Stderr)
	app.ApplyMemoryLimit(cfg.MemoryLimitMiB, os.Getenv, log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Tracing first: the API, relay and projector take their tracer from the
	// global provider when they are built.
	shutdownTracing, err := telemetry.Setup(ctx, telemetry.Config{
		OTLPEndpoint: cfg.OTLPEndpoint,
		ServiceName:  "icpd",
		SampleRatio:  cfg.TraceSampleRatio,
		Logger:       log,
	})
	if err != nil {
		app.WriteFaults(os.Stderr, "icpd", &config.Fault{
			Flag: "otlp-endpoint",
			Msg:  "tracing cannot be set up",
			Err:  err,
			Fix:  "correct " + config.Setting("otlp-endpoint") + ", or empty to export no spans",
		})
		return 1
	}
	defer func() {
		tctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = shutdownTracing(tctx)
	}()

	a, err := app.New(ctx, cfg, log)
	if err != nil {
		// One plain line per problem, naming the setting to change.
		app.WriteFaults(os.Stderr, "icpd: cannot start", err)
		return 1
	}
	if err := a.Run(ctx); err != nil {
		log.Error("stopped with an error", "err", err)
		return 1
	}
	return 0
}
