package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/icpservice/icp/api/auth"
	"github.com/icpservice/icp/internal/loadgen"
)

// LoadCmd drives creates against a running icpd and reports throughput and
// latency as a client sees them.
type LoadCmd struct {
	URL         string        `name:"url" default:"http://127.0.0.1:8080" help:"Base URL of the icpd API."`
	DataDir     string        `name:"data-dir" env:"ICP_DATA_DIR" default:"./data" help:"Data directory of icpd --dev, to mint a token (ignored with --token)."`
	Token       string        `name:"token" env:"ICP_TOKEN" help:"Bearer token to use instead of minting a development token."`
	User        string        `name:"user" default:"user_load" help:"User id of the minted token."`
	Concurrency int           `name:"concurrency" short:"c" default:"64" help:"Concurrent clients."`
	Duration    time.Duration `name:"duration" short:"d" default:"20s" help:"How long to run."`
	Requests    int           `name:"requests" short:"n" help:"Stop after this many creates (0: no bound)."`
	VerifyEvery int           `name:"verify-every" default:"10" help:"Read every Nth created ICP back as its creator (0: never)."`
	Interval    time.Duration `name:"interval" default:"10s" help:"Report creates/s and latency of each interval of this length while running (0: only the final summary)."`
	PID         int           `name:"icpd-pid" help:"Process id of icpd, to report its resident memory (from /proc/<pid>/status) with each interval."`
}

// Run performs the load and prints the report.
func (c *LoadCmd) Run(g *Globals) error {
	if c.Concurrency < 1 || c.Concurrency > 10000 {
		return errors.New("--concurrency: want 1 to 10000")
	}
	if c.Duration <= 0 && c.Requests <= 0 {
		return errors.New("give --duration or --requests")
	}
	if c.Interval < 0 || (c.Interval > 0 && c.Interval < 100*time.Millisecond) {
		return errors.New("--interval: want 0 (off) or at least 100ms")
	}
	if c.PID < 0 {
		return errors.New("--icpd-pid: want a process id")
	}
	token := c.Token
	if token == "" {
		key, err := auth.LoadOrCreateDevKey(c.DataDir)
		if err != nil {
			return fmt.Errorf("dev key: %w", err)
		}
		if token, err = key.Mint(auth.DevClaims{UserID: c.User, TTL: c.Duration + time.Hour}); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	fmt.Fprintf(g.Stderr, "load: %d clients against %s for %s\n", c.Concurrency, c.URL, c.Duration)
	cfg := loadgen.Config{
		BaseURL: c.URL, Token: token, Concurrency: c.Concurrency,
		Duration: c.Duration, Requests: c.Requests, VerifyEvery: c.VerifyEvery,
		Interval:   c.Interval,
		OnInterval: func(iv loadgen.Interval) { fmt.Fprintln(g.Stdout, iv) },
	}
	if c.PID > 0 {
		cfg.Memory = loadgen.ProcRSS(c.PID)
	}
	res, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprint(g.Stdout, res.String())
	if res.Errors > 0 || res.ReadFailures > 0 {
		return fmt.Errorf("%d errors, %d read-after-create failures", res.Errors, res.ReadFailures)
	}
	return nil
}
