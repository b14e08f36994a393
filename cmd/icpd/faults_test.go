package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/icpservice/icp/events/sqlitestore"
)

// runFailing runs icpd with args until it exits (it must, within a minute)
// and returns its exit code and what it wrote to stderr.
func runFailing(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), asICPD+"="+strings.Join(args, "\x1f"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("icpd %v did not exit within a minute; stderr:\n%s", args, stderr.String())
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// faultLines are the lines icpd prints for problems that stop its start.
func faultLines(stderr string) []string {
	var lines []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "icpd: ") {
			lines = append(lines, l)
		}
	}
	return lines
}

// assertFault checks that icpd refused to start the way an operator can act
// on: a non-zero exit, no panic or goroutine dump, and exactly one problem
// line per entry of want, each naming its flag and environment variable and
// holding the other words given.
func assertFault(t *testing.T, code int, stderr string, want ...[]string) {
	t.Helper()
	if code == 0 {
		t.Fatalf("exit code 0, want non-zero; stderr:\n%s", stderr)
	}
	if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic:") {
		t.Fatalf("stderr holds a panic or goroutine dump:\n%s", stderr)
	}
	lines := faultLines(stderr)
	if len(lines) != len(want) {
		t.Fatalf("%d problem lines, want %d; stderr:\n%s", len(lines), len(want), stderr)
	}
	for i, words := range want {
		for _, w := range words {
			if !strings.Contains(lines[i], w) {
				t.Errorf("problem line %q lacks %q", lines[i], w)
			}
		}
	}
}

// occupied returns the address of a real listener this test holds open.
func occupied(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// devArgs are the arguments of an icpd that would start: the faults are
// added by each test.
func devArgs(dir string) []string {
	return []string{"--dev", "--data-dir=" + dir, "--addr=127.0.0.1:0", "--admin-addr=127.0.0.1:0", "--log-level=warn"}
}

func TestStartFaultAdminPortInUse(t *testing.T) {
	addr := occupied(t)
	code, stderr := runFailing(t, append(devArgs(t.TempDir()), "--admin-addr="+addr)...)
	assertFault(t, code, stderr, []string{"--admin-addr " + addr + " is in use by another process", "--admin-addr / ICP_ADMIN_ADDR", "or empty to disable"})
}

func TestStartFaultAPIPortInUse(t *testing.T) {
	addr := occupied(t)
	code, stderr := runFailing(t, append(devArgs(t.TempDir()), "--addr="+addr)...)
	assertFault(t, code, stderr, []string{"--addr " + addr + " is in use by another process", "--addr / ICP_ADDR"})
}

func TestStartFaultBothPortsInUseAreReportedTogether(t *testing.T) {
	api, admin := occupied(t), occupied(t)
	code, stderr := runFailing(t, append(devArgs(t.TempDir()), "--addr="+api, "--admin-addr="+admin)...)
	assertFault(t, code, stderr,
		[]string{"--addr " + api + " is in use", "--addr / ICP_ADDR"},
		[]string{"--admin-addr " + admin + " is in use", "--admin-addr / ICP_ADMIN_ADDR"})
}

func TestStartFaultDataDirIsAFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(file, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{file, filepath.Join(file, "sub")} {
		code, stderr := runFailing(t, devArgs(dir)...)
		assertFault(t, code, stderr, []string{"--data-dir " + dir + " cannot be created", "not a directory", "--data-dir / ICP_DATA_DIR"})
	}
}

func TestStartFaultDataFileIsNotADatabase(t *testing.T) {
	for _, file := range []string{"events.db", "readmodel.db"} {
		t.Run(file, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, file), bytes.Repeat([]byte("not sqlite "), 500), 0o600); err != nil {
				t.Fatal(err)
			}
			code, stderr := runFailing(t, devArgs(dir)...)
			assertFault(t, code, stderr, []string{"--data-dir " + dir + " holds " + file + ", which is not an SQLite database", "--data-dir / ICP_DATA_DIR"})
		})
	}
}

func TestStartFaultEventsFromANewerRelease(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.db")
	s, err := sqlitestore.Open(context.Background(), path, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA user_version = 999"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	code, stderr := runFailing(t, devArgs(dir)...)
	assertFault(t, code, stderr, []string{"holds events.db from a newer release of icpd", "schema version 999", "--data-dir / ICP_DATA_DIR"})
}

func TestStartFaultUnreadableDevKey(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dev-signing-key.pem"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stderr := runFailing(t, devArgs(dir)...)
	assertFault(t, code, stderr, []string{"development signing key", "remove it", "--data-dir / ICP_DATA_DIR"})
}

func TestStartFaultMalformedURLs(t *testing.T) {
	for _, tc := range []struct {
		name, arg string
		want      []string
	}{
		// Refused when the connection string is parsed: the password
		// never appears in the message.
		{"event-store", "--event-store=esdb://admin:hunter2@localhost:2113?tls=maybe", []string{"--event-store esdb://admin:xxxxx@localhost:2113", "--event-store / ICP_EVENT_STORE"}},
		{"read-model", "--read-model=mongodb://admin:hunter2@localhost:27017/icp?connectTimeoutMS=soon", []string{"--read-model mongodb://admin:xxxxx@localhost:27017/icp", "--read-model / ICP_READ_MODEL"}},
		// Refused by the configuration's validation, before anything runs.
		{"nats", "--nats=nats://[::1", []string{"--nats", "ICP_NATS_URL"}},
		{"otlp-endpoint", "--otlp-endpoint=ftp://collector", []string{"--otlp-endpoint", "ICP_OTLP_ENDPOINT"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stderr := runFailing(t, append(devArgs(t.TempDir()), tc.arg)...)
			assertFault(t, code, stderr, tc.want)
			if strings.Contains(stderr, "hunter2") {
				t.Fatalf("stderr shows the password:\n%s", stderr)
			}
		})
	}
}
