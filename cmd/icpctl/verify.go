package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/projections/rebuild"
	"github.com/icpservice/icp/projections/sqlitemodel"
)

// VerifyCmd replays the event history into a scratch read model and compares
// it, ICP by ICP, with the live SQLite read model (icpd running or stopped).
// It never writes to the live read model.
//
// Each ICP that differs is printed on stdout as one line: kind, id and
// detail, tab separated. Kinds: missing (the history has it, the read model
// not), extra (the other way round), version (different versions), tombstone
// (one says deleted, the other not), content (same version, different
// fields or document). The exit status is non-zero when any ICP differs.
type VerifyCmd struct {
	StoreFlags     `embed:""`
	ReadModelFlag  `embed:""`
	Settle         time.Duration `name:"settle" default:"5s" help:"How long a difference may take to go away (a running projector catching up) before it is reported."`
	ScratchDir     string        `name:"scratch-dir" type:"path" help:"Directory for the scratch read model (default: the system's temporary directory); removed afterwards."`
	Progress       string        `name:"progress" default:"auto" enum:"auto,bar,lines,none" help:"Progress on stderr: a bar on a terminal (auto), a bar, plain lines, or none."`
	MaxDifferences int           `name:"max-differences" default:"10000" help:"Differing ICPs listed (and settled); more are only counted."`
}

// Validate is called by kong after parsing.
func (c *VerifyCmd) Validate() error {
	var errs []error
	if err := c.StoreFlags.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.ReadModelFlag.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxDifferences < 1 || c.MaxDifferences > 10_000_000 {
		errs = append(errs, fmt.Errorf("--max-differences %d: want 1 to 10000000", c.MaxDifferences))
	}
	if c.Settle < 0 || c.Settle > time.Hour {
		errs = append(errs, fmt.Errorf("--settle %s: want 0 to 1h", c.Settle))
	}
	return errors.Join(errs...)
}

// Run audits the read model. It fails when the read model differs from the
// history, or when the audit could not be completed.
func (c *VerifyCmd) Run(g *Globals) error {
	ctx, stop := interruptible()
	defer stop()
	defer tuneReplayMemory()()

	livePath := c.readModelPath()
	if err := mustExist(livePath, "read model"); err != nil {
		return err
	}
	st, err := c.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	live, err := sqlitemodel.Open(ctx, livePath, sqlitemodel.Options{})
	if err != nil {
		return err
	}
	defer live.Close()

	dir, err := os.MkdirTemp(c.ScratchDir, "icpctl-verify-")
	if err != nil {
		return fmt.Errorf("scratch directory: %w", err)
	}
	defer os.RemoveAll(dir)
	scratchPath := filepath.Join(dir, "replayed.db")
	res, head, err := c.replay(ctx, g, st, scratchPath)
	if err != nil {
		return err
	}
	// The replay's heap is garbage now: hand it back before the compare
	// opens two more read models, so that the process stays as small as
	// the replay was.
	debug.FreeOSMemory()
	scratch, err := sqlitemodel.Open(ctx, scratchPath, sqlitemodel.Options{})
	if err != nil {
		return err
	}
	defer scratch.Close()
	vr, err := c.compare(ctx, g, st, scratch, live)
	if err != nil {
		return err
	}
	return c.report(g, livePath, res, head, vr)
}

// replay replays the history up to the store's head into a new scratch read
// model at path, closed when replay returns, and returns the replay's result
// and the head it ended at.
func (c *VerifyCmd) replay(ctx context.Context, g *Globals, st events.Store, path string) (rebuild.Result, uint64, error) {
	head, err := st.Head(ctx)
	if err != nil {
		return rebuild.Result{}, 0, fmt.Errorf("event store head: %w", err)
	}
	b, err := sqlitemodel.OpenBuilder(ctx, path)
	if err != nil {
		return rebuild.Result{}, 0, err
	}
	defer b.Close()
	p := newProgress(g.Stderr, c.Progress, "verify", "events")
	res, err := rebuild.Replay(ctx, st, b, 0, head, rebuild.Options{
		Progress: func(pr rebuild.Progress) {
			p.update("replay", pr.Position, pr.Head, pr.Events, pr.Elapsed)
		},
	})
	p.done()
	if err != nil {
		return rebuild.Result{}, 0, fmt.Errorf("replay the history: %w", err)
	}
	reportProblems(g, "verify", res.Skipped, res.Problems)
	if err := b.Swap(ctx, nil); err != nil {
		return rebuild.Result{}, 0, err
	}
	if err := b.Close(); err != nil {
		return rebuild.Result{}, 0, err
	}
	return res, head, nil
}

// compare compares the scratch read model with the live one, ICP by ICP.
func (c *VerifyCmd) compare(ctx context.Context, g *Globals, st events.Store, scratch, live *sqlitemodel.Model) (rebuild.VerifyResult, error) {
	cp := newProgress(g.Stderr, c.Progress, "verify", "ICPs")
	started := time.Now()
	vr, err := rebuild.Verify(ctx, st, scratch, live, rebuild.VerifyOptions{
		Settle: c.Settle, MaxDifferences: c.MaxDifferences,
		Progress: func(n uint64) { cp.update("compare", n, 0, n, time.Since(started)) },
	})
	cp.done()
	return vr, err
}

// report prints the differences and the summary; it fails when any ICP
// differs.
func (c *VerifyCmd) report(g *Globals, livePath string, res rebuild.Result, head uint64, vr rebuild.VerifyResult) error {
	for _, d := range vr.Differences {
		fmt.Fprintf(g.Stdout, "%s\t%s\t%s\n", d.Kind, d.ID, d.Detail)
	}
	if n := vr.Differing - uint64(len(vr.Differences)); n > 0 {
		fmt.Fprintf(g.Stderr, "verify: %d more ICPs differ, not listed (--max-differences %d)\n", n, c.MaxDifferences)
	}
	fmt.Fprintf(g.Stderr, "verify: %d events up to position %d replayed, %d ICPs compared, %d differ\n", res.Events, head, vr.Compared, vr.Differing)
	if vr.Differing > 0 {
		return fmt.Errorf("the read model %s differs from the history in %d ICPs", livePath, vr.Differing)
	}
	return nil
}
