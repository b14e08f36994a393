package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/icpservice/icp/platform/datadir"
	"github.com/icpservice/icp/platform/sqlite"
)

// BackupCmd writes a backup set (see backupset.go) of the embedded default's
// data directory, with icpd running or stopped.
//
// Consistency: the event store is copied by SQLite itself (VACUUM INTO in
// one read transaction): the copy holds exactly the events committed when
// that transaction began, whatever icpd appends meanwhile. A raw copy of a
// database in WAL mode could pair the main file with a WAL of another
// moment. The set appears under --to only once complete (it is written
// next to it and renamed), so a set found there is whole.
type BackupCmd struct {
	DataDir string        `name:"data-dir" env:"ICP_DATA_DIR" default:"./data" type:"path" help:"icpd's data directory (events.db, the dev key, nats-auth/)."`
	To      string        `name:"to" required:"" type:"path" help:"Directory to create for the backup set; it must not exist."`
	Timeout time.Duration `name:"timeout" default:"10m" help:"How long the copy may take."`
}

// Validate is called by kong after parsing.
func (c *BackupCmd) Validate() error {
	return checkTimeout(c.Timeout)
}

// Run writes the set and prints what it holds.
func (c *BackupCmd) Run(g *Globals) error {
	ctx, stop := interruptible()
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()

	src := filepath.Join(c.DataDir, datadir.EventsFile)
	if err := mustExist(src, "event store"); err != nil {
		return err
	}
	if _, err := os.Lstat(c.To); err == nil {
		return fmt.Errorf("--to %s exists: choose a new directory for the backup set", c.To)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("--to: %w", err)
	}
	parent := filepath.Dir(filepath.Clean(c.To))
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(c.To)+".partial-*") // mode 0700
	if err != nil {
		return fmt.Errorf("backup set: %w", err)
	}
	done := false
	defer func() {
		if !done {
			_ = os.RemoveAll(tmp)
		}
	}()

	m, err := c.writeSet(ctx, src, tmp)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, c.To); err != nil {
		return fmt.Errorf("backup set: %w", err)
	}
	done = true
	if err := syncDir(parent); err != nil {
		return err
	}
	gen := m.Generation
	if gen == "" {
		gen = "none"
	}
	fmt.Fprintf(g.Stdout, "backed up the event store up to position %d (generation %s) and %d other files to %s\n",
		m.Head, gen, len(m.Files)-1, c.To)
	return nil
}

// writeSet writes the backup set of the event store src and the data
// directory's small files into dir, with its manifest, everything synced,
// and returns the manifest.
func (c *BackupCmd) writeSet(ctx context.Context, src, dir string) (*backupManifest, error) {
	m := &backupManifest{Format: backupFormat, CreatedAt: time.Now().UTC(), Files: map[string]string{}}
	dst := filepath.Join(dir, datadir.EventsFile)
	if err := snapshotStore(ctx, src, dst); err != nil {
		return nil, err
	}
	var err error
	if m.Generation, m.Head, err = storeFacts(ctx, dst, false); err != nil {
		return nil, err
	}
	if err := c.copySmallFiles(dir); err != nil {
		return nil, err
	}
	if err := writeManifest(dir, m); err != nil {
		return nil, err
	}
	if sub := filepath.Join(dir, datadir.NATSAuthDir); dirExists(sub) {
		if err := syncDir(sub); err != nil {
			return nil, err
		}
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	return m, nil
}

// writeManifest lists every file of the backup set being made in dir with
// its SHA-256 in m, and writes m there as the set's manifest (synced).
func writeManifest(dir string, m *backupManifest) error {
	if err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		m.Files[filepath.ToSlash(rel)], err = fileSHA256(path)
		return err
	}); err != nil {
		return fmt.Errorf("backup set: %w", err)
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, manifestFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return err
	}
	return closeSynced(f)
}

// snapshotStore writes a consistent copy of the SQLite database src to
// the new file dst (0600) with VACUUM INTO, which reads src in one
// transaction while other connections (icpd's) keep writing, and fsyncs
// it (VACUUM INTO does not).
func snapshotStore(ctx context.Context, src, dst string) error {
	db, err := sqlite.Open(src, sqlite.Settings{Role: sqlite.Plain, BusyTimeout: 10 * time.Second}, 1)
	if err != nil {
		return fmt.Errorf("open %s: %w", src, err)
	}
	defer db.Close()
	// Created first, so that the copy is the owner's alone from its
	// first byte whatever the umask; VACUUM INTO accepts an empty file.
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", dst); err != nil {
		return fmt.Errorf("copy the event store %s: %w", src, err)
	}
	out, err := os.OpenFile(dst, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return closeSynced(out)
}

// copySmallFiles copies the dev key and the NATS identity, those that
// exist, into the set being written in dir.
func (c *BackupCmd) copySmallFiles(dir string) error {
	key := filepath.Join(c.DataDir, datadir.DevKeyFile)
	if _, err := os.Lstat(key); err == nil {
		if err := copyPrivate(key, filepath.Join(dir, datadir.DevKeyFile), maxSmallFile); err != nil {
			return fmt.Errorf("dev key: %w", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("dev key: %w", err)
	}
	src := filepath.Join(c.DataDir, datadir.NATSAuthDir)
	entries, err := os.ReadDir(src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("NATS identity: %w", err)
	}
	if err := os.Mkdir(filepath.Join(dir, datadir.NATSAuthDir), 0o700); err != nil {
		return err
	}
	n := 0
	for _, e := range entries {
		// Temporary files of the identity start with '.'; nothing else
		// is written there.
		if !e.Type().IsRegular() || !plainName(e.Name()) {
			continue
		}
		if n++; n > maxBackupFiles-2 {
			return fmt.Errorf("NATS identity: more than %d files in %s", maxBackupFiles-2, src)
		}
		if err := copyPrivate(filepath.Join(src, e.Name()), filepath.Join(dir, datadir.NATSAuthDir, e.Name()), maxSmallFile); err != nil {
			return fmt.Errorf("NATS identity: %w", err)
		}
	}
	return nil
}

func dirExists(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.IsDir()
}
