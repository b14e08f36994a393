// Command icpctl operates an ICP service installation: each subcommand is one
// type in its own file, listed in CLI below.
package main

import (
	"io"
	"os"

	"github.com/alecthomas/kong"

	"github.com/icpservice/icp/platform/private"
)

// CLI lists the subcommands. A subcommand is a struct with kong tags and a
// Run(*Globals) error method.
type CLI struct {
	Token  TokenCmd  `cmd:"" help:"Print a development-mode bearer token signed with the key in the data directory."`
	Load   LoadCmd   `cmd:"" help:"Create ICPs against a running icpd and report creates/s and latency percentiles."`
	Health HealthCmd `cmd:"" help:"Exit 0 when a health URL answers 200 (container health checks)."`

	// Audit tools: they read the event store and the read model directly.
	Events    EventsCmd    `cmd:"" help:"Export the event history as JSON Lines, optionally filtered; --follow streams new events."`
	Rebuild   RebuildCmd   `cmd:"" help:"Rebuild the SQLite read model from the event history and swap it in atomically (icpd running or stopped)."`
	Verify    VerifyCmd    `cmd:"" help:"Replay the event history and compare it with the live read model; exit non-zero listing the ICPs that differ."`
	Republish RepublishCmd `cmd:"" help:"Publish a range of the history again to the ICP_REPLAY stream for a downstream that lost data."`
	Realign   RealignCmd   `cmd:"" help:"When the relay reports that the bus and the event store disagree (a restored store): rebuild the read model, give the store a new generation and purge ICP_EVENTS, so the relay publishes the store again."`
	Backup    BackupCmd    `cmd:"" help:"Copy what the embedded default cannot derive (event store, dev key, NATS identity) to a new backup directory, icpd running or stopped."`
	Restore   RestoreCmd   `cmd:"" help:"Put a backup back into the data directory (icpd stopped) and realign the bus and the read model with it under a new generation."`
	DLQ       DLQCmd       `cmd:"" name:"dlq" help:"List and re-drive a consumer's dead letters (ICP_DLQ)."`
}

// Globals are what every subcommand's Run receives.
type Globals struct {
	// Stdout receives the command's result; Stderr its notes and errors.
	Stdout, Stderr io.Writer
}

func main() {
	// Files icpctl creates in the data directory (the dev key, a rebuilt
	// read model and its -wal/-shm) are the owner's alone, as icpd's are.
	private.Umask()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// exitRequest carries kong's exit code (after --help or an error) out of
// the parser without ending the process, so run can be called from tests.
type exitRequest struct{ code int }

// run parses args, runs the chosen subcommand and returns the exit status:
// 0 on success, 1 when the command failed, 80 for invalid arguments.
func run(args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(exitRequest)
			if !ok {
				panic(r)
			}
			code = e.code
		}
	}()
	var cli CLI
	parser, err := kong.New(&cli,
		kong.Name("icpctl"),
		kong.Description("Operate the ICP service."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(exitRequest{code}) }),
	)
	if err != nil {
		panic(err) // the CLI struct's tags are wrong: a programming error
	}
	kctx, err := parser.Parse(args)
	parser.FatalIfErrorf(err)
	parser.FatalIfErrorf(kctx.Run(&Globals{Stdout: stdout, Stderr: stderr}))
	return 0
}
