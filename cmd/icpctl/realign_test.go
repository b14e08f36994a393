package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/icpservice/icp/platform/datadir"
	"github.com/icpservice/icp/projections/rebuild/historytest"
)

// copyFiles copies an SQLite database's files (closed) from one path to
// another, as restoring a backup does.
func copyFiles(t *testing.T, from, to string) {
	t.Helper()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		_ = os.Remove(to + suffix)
		src, err := os.Open(from + suffix)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.Create(to + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			t.Fatal(err)
		}
		_ = src.Close()
		if err := dst.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// An event store restored from an older copy: icpd refuses to publish and
// says so on /readyz, naming the command; realign and rebuild bring it back.
func TestRealignAfterTheEventStoreWasRestoredFromAnOlderCopy(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, datadir.EventsFile)
	backup := filepath.Join(t.TempDir(), "backup.db")
	seedStore(t, dir, historytest.Spec{ICPs: 3})
	copyFiles(t, db, backup)

	svc := startService(t, dir)
	client := svc.client()
	for range 3 {
		if _, err := svc.create(client, "before the restore"); err != nil {
			t.Fatal(err)
		}
	}
	svc.stop()

	// The restore loses three creates; more events than that are
	// recorded after it, so positions pass the bus's again.
	copyFiles(t, backup, db)
	seedStore(t, dir, historytest.Spec{ICPs: 6})
	svc = startServiceUnready(t, dir)
	var err error
	waitFor(t, 30*time.Second, "icpd not ready naming the realign command", func() bool {
		err = svc.Ready(context.Background())
		return err != nil && strings.Contains(err.Error(), "icpctl realign")
	})
	svc.stop()

	code, out, errOut := icpctl(t, "realign", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "purged") || !strings.Contains(errOut, "disagree") {
		t.Fatalf("realign: exit %d, %q, %q", code, out, errOut)
	}
	if code, _, errOut := icpctl(t, "rebuild", "--data-dir", dir); code != 0 {
		t.Fatalf("rebuild: exit %d, %q", code, errOut)
	}
	svc = startService(t, dir)
	if _, err := svc.create(svc.client(), "after the realign"); err != nil {
		t.Fatal(err)
	}
	svc.stop()
	// The relay published the store again: nothing left to realign.
	code, _, errOut = icpctl(t, "realign", "--data-dir", dir)
	if code == 0 || !strings.Contains(errOut, "agree") {
		t.Fatalf("second realign: exit %d, %q", code, errOut)
	}
}
