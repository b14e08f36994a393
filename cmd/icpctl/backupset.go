package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/platform/datadir"
	"github.com/icpservice/icp/platform/sqlite"
)

// A backup set is a directory (mode 0700, every file 0600) holding what
// the embedded default cannot derive:
//
//	events.db              a consistent copy of the event store (VACUUM INTO)
//	dev-signing-key.pem    the development signing key, when there is one
//	nats-auth/*            the NATS operator, system and account seeds and
//	                       the .creds files, when there are any
//	manifest.json          backupManifest: what the set holds and the
//	                       SHA-256 of each file
//
// The read model (readmodel.db) and the JetStream store (nats/) are not in
// it: restore derives them from the event store. A directory rather than
// an archive: SQLite writes the copy to a file anyway, each file keeps its
// own owner-only mode, restore checks each against the manifest before
// touching the data directory, and an operator who wants one file to ship
// archives and encrypts the directory with the tools of the site.

const (
	manifestFile = "manifest.json"
	// backupFormat is the manifest's format; restore refuses any other.
	backupFormat = 1
	// maxManifestBytes bounds what restore reads of a manifest.
	maxManifestBytes = 64 << 10
	// maxSmallFile bounds each backed-up file other than events.db: a key
	// or a .creds file is a few KiB.
	maxSmallFile = 64 << 10
	// maxBackupFiles bounds the files a manifest may list.
	maxBackupFiles = 32
)

// backupManifest describes a backup set. Files maps each file's path in
// the set (slash-separated) to its SHA-256 in hex.
type backupManifest struct {
	Format     int               `json:"format"`
	CreatedAt  time.Time         `json:"createdAt"`
	Generation string            `json:"generation"`
	Head       uint64            `json:"head"`
	Files      map[string]string `json:"files"`
}

// backupPathOK reports whether name is a path a backup set may hold:
// events.db, the dev key, or a plain file name under nats-auth/. Names come
// from a manifest, which is outside input: nothing else is ever opened or
// written.
func backupPathOK(name string) bool {
	switch name {
	case datadir.EventsFile, datadir.DevKeyFile:
		return true
	}
	base, ok := strings.CutPrefix(name, datadir.NATSAuthDir+"/")
	return ok && plainName(base)
}

// plainName is a file name of at most 100 letters, digits, '.', '_' and
// '-', not starting with '.' (temporary files of the identity do).
func plainName(s string) bool {
	if s == "" || len(s) > 100 || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// readManifest reads and checks the manifest of the backup set in dir.
func readManifest(dir string) (*backupManifest, error) {
	f, err := os.Open(filepath.Join(dir, manifestFile))
	if err != nil {
		return nil, fmt.Errorf("not a backup set (no %s): %w", manifestFile, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", manifestFile, err)
	}
	if len(data) > maxManifestBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a backup manifest", manifestFile, maxManifestBytes)
	}
	var m backupManifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s is not a backup manifest: %w", manifestFile, err)
	}
	var errs []error
	if m.Format != backupFormat {
		errs = append(errs, fmt.Errorf("format %d: this icpctl restores format %d", m.Format, backupFormat))
	}
	if err := events.CheckGeneration(m.Generation); err != nil {
		errs = append(errs, err)
	}
	if len(m.Files) > maxBackupFiles {
		errs = append(errs, fmt.Errorf("%d files listed, at most %d", len(m.Files), maxBackupFiles))
	}
	if _, ok := m.Files[datadir.EventsFile]; !ok {
		errs = append(errs, fmt.Errorf("no %s listed", datadir.EventsFile))
	}
	for name, sum := range m.Files {
		if !backupPathOK(name) {
			errs = append(errs, fmt.Errorf("file %.100q: not a file a backup holds", name))
		}
		if b, err := hex.DecodeString(sum); err != nil || len(b) != sha256.Size {
			errs = append(errs, fmt.Errorf("file %.100q: checksum %.100q is not a SHA-256 in hex", name, sum))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%s in %s: %w", manifestFile, dir, err)
	}
	return &m, nil
}

// verifyFile checks that name in the set dir is a regular file (not a
// link) with the SHA-256 the manifest lists.
func verifyFile(dir, name, want string) error {
	path := filepath.Join(dir, filepath.FromSlash(name))
	info, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("backup file %s: %w", name, err)
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("backup file %s is not a regular file", name)
	}
	if name != datadir.EventsFile && info.Size() > maxSmallFile {
		return fmt.Errorf("backup file %s is larger than %d bytes", name, maxSmallFile)
	}
	got, err := fileSHA256(path)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("backup file %s does not match its checksum in %s: the set is damaged", name, manifestFile)
	}
	return nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// copyPrivate copies src to a new file dst (0600, which must not exist),
// refusing a source that is not a regular file or is larger than max
// bytes (max < 0: no bound), and fsyncs the copy.
func copyPrivate(src, dst string, max int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	info, err := in.Stat()
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	if max >= 0 && info.Size() > max {
		return fmt.Errorf("%s is larger than %d bytes", src, max)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	r := io.Reader(in)
	if max >= 0 {
		r = io.LimitReader(in, max)
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return closeSynced(out)
}

// closeSynced fsyncs and closes f.
func closeSynced(f *os.File) error {
	err := f.Sync()
	return errors.Join(err, f.Close())
}

// syncDir makes the names in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return closeSynced(d)
}

// storeFacts reads, from a closed copy of the event store, its generation
// ("" for a file older than generations) and the position of its last
// event. With check it first runs SQLite's quick_check over the file.
func storeFacts(ctx context.Context, path string, check bool) (generation string, head uint64, err error) {
	db, err := sqlite.Open(path, sqlite.Settings{Role: sqlite.ReadOnlyFile}, 1)
	if err != nil {
		return "", 0, err
	}
	defer db.Close()
	if check {
		var res string
		if err := db.QueryRowContext(ctx, "PRAGMA quick_check(1)").Scan(&res); err != nil {
			return "", 0, fmt.Errorf("%s is not a readable SQLite database: %w", path, err)
		}
		if res != "ok" {
			return "", 0, fmt.Errorf("%s fails SQLite's integrity check: %.200s", path, res)
		}
	}
	if err := db.QueryRowContext(ctx, "SELECT COALESCE(MAX(position), 0) FROM events").Scan(&head); err != nil {
		return "", 0, fmt.Errorf("%s is not an event store: %w", path, err)
	}
	var hasMeta bool
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").Scan(&hasMeta); err != nil {
		return "", 0, fmt.Errorf("%s: %w", path, err)
	}
	if hasMeta {
		err := db.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = 'generation'").Scan(&generation)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return "", 0, fmt.Errorf("%s: read its generation: %w", path, err)
		}
	}
	if err := events.CheckGeneration(generation); err != nil {
		return "", 0, fmt.Errorf("%s: %w", path, err)
	}
	return generation, head, nil
}
