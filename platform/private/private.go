// Package private keeps the data directory to its owner: the event store, the
// read model, the development signing key and the bus's files hold every
// tenant's data and a key that mints tokens, so no other user of the machine
// may read them or slip files in.
package private

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// DirMode and FileMode are what the data directory and its files are
// tightened to: owner-only.
const (
	DirMode  fs.FileMode = 0o700
	FileMode fs.FileMode = 0o600
)

// ErrNotDir is returned by Tighten when the path is not a directory.
var ErrNotDir = errors.New("not a directory")

// Tighten takes the group and other permissions off dir and everything in
// it, and reports how many paths it changed. Symbolic links are neither
// followed nor changed (a link placed in the directory must not make this
// chmod a file elsewhere). An error means some path that others can reach
// could not be tightened; the caller must not use the directory then.
// Where the platform has no Unix permissions, Tighten does nothing.
func Tighten(dir string) (int, error) {
	fi, err := os.Lstat(dir)
	if err != nil {
		return 0, err
	}
	if !fi.IsDir() {
		return 0, fmt.Errorf("%s: %w", dir, ErrNotDir)
	}
	if !unixModes {
		return 0, nil
	}
	changed := 0
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		perm := info.Mode().Perm()
		if perm&0o077 == 0 {
			return nil
		}
		if err := os.Chmod(path, perm&^0o077); err != nil {
			return err
		}
		changed++
		return nil
	})
	return changed, err
}
