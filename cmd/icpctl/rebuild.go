package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/icpservice/icp/projections/rebuild"
	"github.com/icpservice/icp/projections/sqlitemodel"
)

// RebuildCmd builds the SQLite read model afresh from the whole event history
// and swaps it in atomically, with icpd running or stopped.
//
// While icpd runs, it keeps serving from the old read model until the swap;
// the swap takes the read model's write lock, applies the events recorded
// since the rebuild began and renames the new tables into place in one
// transaction, and icpd's projector carries on with the new tables (its
// version rule acknowledges what the rebuild already applied). See
// projections/rebuild for why no event is lost or applied twice.
type RebuildCmd struct {
	StoreFlags    `embed:""`
	ReadModelFlag `embed:""`
	MaxStates     int    `name:"max-states" default:"20000" help:"ICP states held in memory while folding (a few KB each); more means fewer ICPs written twice and read back."`
	Progress      string `name:"progress" default:"auto" enum:"auto,bar,lines,none" help:"Progress on stderr: a bar on a terminal (auto), a bar, plain lines, or none."`
}

// Validate is called by kong after parsing.
func (c *RebuildCmd) Validate() error {
	var errs []error
	if err := c.StoreFlags.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.ReadModelFlag.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxStates < 1000 || c.MaxStates > 100_000_000 {
		errs = append(errs, fmt.Errorf("--max-states %d: want 1000 to 100000000", c.MaxStates))
	}
	return errors.Join(errs...)
}

// Run rebuilds and prints a summary on stdout. Events the projector would
// dead-letter are skipped here too (listed on stderr); they do not fail the
// rebuild. On any error nothing is swapped in.
func (c *RebuildCmd) Run(g *Globals) error {
	ctx, stop := interruptible()
	defer stop()
	defer tuneReplayMemory()()

	if _, err := os.Stat(c.DataDir); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	st, err := c.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	path := c.readModelPath()
	b, err := sqlitemodel.OpenBuilder(ctx, path)
	if err != nil {
		return err
	}
	defer b.Close()

	p := newProgress(g.Stderr, c.Progress, "rebuild", "events")
	res, err := rebuild.Rebuild(ctx, st, b, rebuild.Options{
		MaxStates: c.MaxStates,
		Progress: func(pr rebuild.Progress) {
			p.update(string(pr.Phase), pr.Position, pr.Head, pr.Events, pr.Elapsed)
		},
	})
	p.done()
	reportProblems(g, "rebuild", res.Skipped, res.Problems)
	if err != nil {
		return fmt.Errorf("rebuild failed, the read model is unchanged: %w", err)
	}
	if err := b.Close(); err != nil {
		return err
	}
	rate := 0.0
	if s := res.Elapsed.Seconds(); s > 0 {
		rate = float64(res.Events) / s
	}
	fmt.Fprintf(g.Stdout, "rebuilt %s from %d events up to position %d: %d views written in %s (%.0f events/s), %d events skipped\n",
		path, res.Events, res.Last, res.Views, res.Elapsed.Round(1e6), rate, res.Skipped)
	return nil
}

// reportProblems lists on stderr the events a replay could not apply.
func reportProblems(g *Globals, what string, n uint64, problems []rebuild.Problem) {
	if n == 0 {
		return
	}
	fmt.Fprintf(g.Stderr, "%s: %d events could not be applied (the projector dead-letters them too); their ICPs stay at their last good version:\n", what, n)
	for _, pr := range problems {
		fmt.Fprintf(g.Stderr, "  %s\n", pr)
	}
	if uint64(len(problems)) < n {
		fmt.Fprintf(g.Stderr, "  ... and %d more\n", n-uint64(len(problems)))
	}
}
