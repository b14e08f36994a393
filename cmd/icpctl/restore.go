package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/icpservice/icp/platform/datadir"
)

// RestoreCmd puts a backup set (see backupset.go) back into the data
// directory of the embedded default, with icpd stopped, and realigns the
// bus and the read model with it (RealignCmd's steps, forced): after it,
// icpd starts ready, with every event of the backup in the read model once
// and nothing recorded after the backup visible, under a new generation.
//
// The set is checked whole (manifest, each file's checksum, SQLite's
// integrity check) before anything in the data directory changes. The
// event store it replaces is not deleted: it is renamed to
// events.db.replaced-<time> (with its -wal), for the operator to delete.
// If restore fails after "restored" was printed, the store is in place but
// not realigned: `icpctl realign --force` finishes the job.
type RestoreCmd struct {
	DataDir string        `name:"data-dir" env:"ICP_DATA_DIR" default:"./data" type:"path" help:"icpd's data directory to restore into (icpd must be stopped)."`
	From    string        `name:"from" required:"" type:"path" help:"Backup set written by icpctl backup."`
	Timeout time.Duration `name:"timeout" default:"10s" help:"How long each call to NATS or the event store may take."`
}

// Validate is called by kong after parsing.
func (c *RestoreCmd) Validate() error {
	return checkTimeout(c.Timeout)
}

// Run checks the set, swaps it in and realigns.
func (c *RestoreCmd) Run(g *Globals) error {
	ctx, stop := interruptible()
	defer stop()

	m, names, err := c.checkSet(ctx)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if err := refuseWhileServing(c.DataDir); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	kept, err := c.swapStore(filepath.Join(c.From, datadir.EventsFile))
	if err != nil {
		return err
	}
	for _, name := range names {
		if name == datadir.EventsFile {
			continue
		}
		if err := replaceFile(filepath.Join(c.From, filepath.FromSlash(name)), filepath.Join(c.DataDir, filepath.FromSlash(name))); err != nil {
			return fmt.Errorf("%s: %w; the event store is restored but not realigned: run icpctl realign --force --data-dir %s before starting icpd", name, err, c.DataDir)
		}
	}
	fmt.Fprintf(g.Stdout, "restored the event store up to position %d and %d other files from %s\n", m.Head, len(names)-1, c.From)
	if kept != "" {
		fmt.Fprintf(g.Stdout, "the event store it replaced is kept as %s (delete it when satisfied)\n", kept)
	}

	rc := &RealignCmd{
		StoreFlags: StoreFlags{DataDir: c.DataDir},
		NATSAuth:   NATSAuthFlags{EmbeddedAddr: "127.0.0.1:4222"},
		Force:      true,
		Timeout:    c.Timeout,
	}
	if err := c.realign(ctx, g, rc); err != nil {
		return fmt.Errorf("%w; the event store is restored but not realigned: run icpctl realign --force --data-dir %s before starting icpd", err, c.DataDir)
	}
	return nil
}

// checkSet checks every file of the set against its manifest, and the event
// store's generation and head too, before anything is restored. It returns
// the manifest and the set's file names, sorted.
func (c *RestoreCmd) checkSet(ctx context.Context) (*backupManifest, []string, error) {
	m, err := readManifest(c.From)
	if err != nil {
		return nil, nil, err
	}
	names := make([]string, 0, len(m.Files))
	for name := range m.Files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := verifyFile(c.From, name, m.Files[name]); err != nil {
			return nil, nil, err
		}
	}
	gen, head, err := storeFacts(ctx, filepath.Join(c.From, datadir.EventsFile), true)
	if err != nil {
		return nil, nil, err
	}
	if gen != m.Generation || head != m.Head {
		return nil, nil, fmt.Errorf("the event store in %s (generation %q, head %d) is not the one %s describes (generation %q, head %d)",
			c.From, gen, head, manifestFile, m.Generation, m.Head)
	}
	return m, names, nil
}

// realign runs RealignCmd's steps without its checks: icpd is known to be
// stopped, so a lease left on the bus is stale, and the bus must be
// purged whether or not its tail happens to agree with the restored store
// (its events after the tail's position may still differ).
func (c *RestoreCmd) realign(parent context.Context, g *Globals, rc *RealignCmd) error {
	ctx, cancel := context.WithTimeout(parent, 4*c.Timeout)
	defer cancel()
	nc, closeBus, err := connectBus(g, busTarget{rc.StoreFlags, rc.NATSAuth, "", rc.Timeout}, "restore")
	if err != nil {
		return err
	}
	defer closeBus()
	st, err := rc.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	return rc.realign(parent, g, nc, st)
}

// swapStore puts a copy of the set's events.db in place of the data
// directory's, whose files (events.db and its -wal and -shm) are renamed
// aside together, so that no WAL of the replaced store is ever read with
// the restored file. It returns the name the replaced store was kept
// under ("" when there was none).
func (c *RestoreCmd) swapStore(src string) (kept string, err error) {
	dst := filepath.Join(c.DataDir, datadir.EventsFile)
	tmp := filepath.Join(c.DataDir, "."+datadir.EventsFile+".restoring")
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if err := copyPrivate(src, tmp, -1); err != nil {
		return "", fmt.Errorf("copy the event store: %w", err)
	}
	defer os.Remove(tmp) // a no-op once renamed
	if _, err := os.Lstat(dst); err == nil {
		kept = dst + ".replaced-" + time.Now().UTC().Format("20060102T150405.000Z")
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if kept == "" {
			err = os.Remove(dst + suffix) // a -wal or -shm without its database
		} else {
			err = os.Rename(dst+suffix, kept+suffix)
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("move the current event store aside: %w", err)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		return "", fmt.Errorf("put the restored event store in place: %w", err)
	}
	return kept, syncDir(c.DataDir)
}

// replaceFile writes a copy of src over dst (0600) by renaming a complete
// copy into place, creating dst's directory (0700) if needed.
func replaceFile(src, dst string) error {
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+filepath.Base(dst)+".restoring")
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := copyPrivate(src, tmp, maxSmallFile); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}
