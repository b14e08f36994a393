//go:build unix

package main

import (
	"context"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/icpservice/icp/api/auth"
	"github.com/icpservice/icp/platform/datadir"
)

// TestDataDirIsOwnerOnly starts icpd on a data directory that others can
// read, holding a file others can read: icpd says it tightened them, and
// while it runs, after a create, the directory and everything icpd made in
// it (the stores with their -wal and -shm, the dev key, the NATS store) are
// its owner's alone.
func TestDataDirIsOwnerOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(stray, []byte("left here by someone"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, stray} { // whatever this test's umask is
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	apiAddr, admin := freeAddr(t), freeAddr(t)
	stderr, exited, _ := startCapturing(t, "--dev", "--data-dir="+dir, "--addr="+apiAddr, "--admin-addr="+admin, "--log-level=info")
	waitUntil(t, 60*time.Second, "icpd ready", func() bool {
		select {
		case <-exited:
			t.Fatalf("icpd exited:\n%s", stderr.String())
		default:
		}
		code, _ := readyz(admin)
		return code == http.StatusOK
	})
	if !strings.Contains(stderr.String(), "the data directory was open to other users; made it owner-only") {
		t.Fatalf("icpd did not say it tightened the data directory:\n%s", stderr.String())
	}

	key, err := auth.LoadOrCreateDevKey(dir) // made by icpd: read here
	if err != nil {
		t.Fatal(err)
	}
	token, err := key.Mint(auth.DevClaims{UserID: "user_private", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	status, hdr, body := do(t, http.MethodPost, "http://"+apiAddr+"/api/v1/entities/icps", token,
		`{"name":"private","leadProviderCriteria":[{"provider":"baseProvider","filters":{}}]}`)
	if status != http.StatusCreated || hdr.Get("ICP-Consistency") == "pending" {
		t.Fatalf("create: %d %s", status, body)
	}

	seen := map[string]bool{}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		seen[rel] = true
		perm := info.Mode().Perm()
		switch {
		case d.IsDir() && perm != 0o700:
			t.Errorf("directory %s has mode %v, want drwx------", rel, info.Mode())
		case !d.IsDir() && perm&0o077 != 0:
			t.Errorf("file %s has mode %v, want no access for group or others", rel, info.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	natsFiles := 0
	for p := range seen {
		if strings.HasPrefix(p, "nats"+string(filepath.Separator)) {
			natsFiles++
		}
	}
	for _, want := range []string{"events.db", "events.db-wal", "events.db-shm", "readmodel.db", "readmodel.db-wal", "readmodel.db-shm", datadir.DevKeyFile, "nats", "notes.txt"} {
		if !seen[want] {
			t.Errorf("%s is missing from the data directory: the check above did not cover it (have %v)", want, seen)
		}
	}
	if natsFiles == 0 {
		t.Errorf("the NATS store holds no files: the check above did not cover them")
	}
}

// TestDataDirThatCannotBeMadePrivateIsRefused runs icpd on a data directory
// that others can read and that icpd's user may not change: icpd refuses to
// start, saying so in one line that names --data-dir.
func TestDataDirThatCannotBeMadePrivateIsRefused(t *testing.T) {
	var dir string
	var cred *syscall.Credential
	bin := os.Args[0]
	if os.Geteuid() == 0 {
		// Root may chmod anything: run icpd as nobody, on a directory
		// root owns.
		base := t.TempDir()
		dir = filepath.Join(base, "data")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{filepath.Dir(base), base, dir} {
			if err := os.Chmod(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		bin = filepath.Join(base, "icpd.test")
		copyExecutable(t, os.Args[0], bin)
		cred = &syscall.Credential{Uid: 65534, Gid: 65534}
	} else {
		// Not root: the shared temporary directory is open to all and
		// belongs to root.
		dir = os.TempDir()
		info, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok || int(st.Uid) == os.Geteuid() || info.Mode().Perm()&0o077 == 0 {
			t.Skipf("no directory at hand that others can read and this user cannot chmod (%s is %v)", dir, info.Mode())
		}
	}

	before, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), asICPD+"="+strings.Join(devArgs(dir), "\x1f"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	_ = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("icpd did not exit within a minute:\n%s", stderr.String())
	}
	assertFault(t, cmd.ProcessState.ExitCode(), stderr.String(),
		[]string{"--data-dir " + dir + " is open to other users and cannot be made owner-only", "operation not permitted", "--data-dir / ICP_DATA_DIR"})
	after, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if after.Mode() != before.Mode() {
		t.Fatalf("the directory's mode changed from %v to %v", before.Mode(), after.Mode())
	}
}

func copyExecutable(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(to, 0o755); err != nil {
		t.Fatal(err)
	}
}
