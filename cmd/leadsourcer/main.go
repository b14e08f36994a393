// Command leadsourcer is an example downstream worker: it consumes the ICP
// service's events through events/consumer with a durable JetStream consumer
// and logs what it would source for each new ICP (name, lead providers,
// leads per list). Every flag has an environment twin; see --help.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kong"

	"github.com/icpservice/icp/events/consumer"
	"github.com/icpservice/icp/platform/redact"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// exitRequest carries kong's exit code (after --help or a parse error) out of
// the parser without ending the process, so run can be called from tests.
type exitRequest struct{ code int }

// run wires the worker and runs it until ctx ends. It returns 0 after a
// graceful stop, 1 when consuming failed, 2 for an invalid configuration.
// Logs go to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(exitRequest)
			if !ok {
				panic(r)
			}
			code = e.code
		}
	}()
	var cfg Config
	parser, err := kong.New(&cfg,
		kong.Name("leadsourcer"),
		kong.Description("Example worker: logs the leads it would source for each new ICP."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(exitRequest{code}) }),
	)
	if err != nil {
		panic(err) // the Config struct's tags are wrong: a programming error
	}
	if _, err := parser.Parse(args); err != nil {
		fmt.Fprintf(stderr, "leadsourcer: %v\n", err)
		return 2
	}
	log := cfg.Logger(stderr)
	scrub := redact.NewScrubber(cfg.NATSURL)
	ccfg, err := cfg.Consumer(log)
	if err != nil {
		fmt.Fprintf(stderr, "leadsourcer: invalid configuration:\n%v\n", scrub.Error(err))
		return 2
	}
	c, err := consumer.New(ccfg)
	if err != nil {
		fmt.Fprintf(stderr, "leadsourcer: %v\n", scrub.Error(err))
		return 2
	}
	c.OnCreated(sourcer{log: log}.created)
	if err := c.Run(ctx); err != nil {
		log.Error("leadsourcer stopped with an error", "err", err)
		return 1
	}
	return 0
}
