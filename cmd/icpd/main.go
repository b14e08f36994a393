// Command icpd runs the ICP service: the HTTP API, the command handler, the
// relay and the projector, on the embedded default (SQLite files and an
// in-process NATS server under --data-dir).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kong"

	"github.com/icpservice/icp/internal/app"
	"github.com/icpservice/icp/internal/config"
)

func main() {
	var cfg config.Config
	kong.Parse(&cfg,
		kong.Name("icpd"),
		kong.Description("The ICP service: API, command handler, relay and projector in one process."),
	)
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "icpd: invalid configuration:\n%s\n", err)
		os.Exit(2)
	}
	log := app.NewLogger(cfg, os.Stderr)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	a, err := app.New(ctx, cfg, log)
	if err != nil {
		log.Error("start failed", "err", err)
		os.Exit(1)
	}
	if err := a.Run(ctx); err != nil {
		log.Error("stopped with an error", "err", err)
		os.Exit(1)
	}
}
