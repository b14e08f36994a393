package app_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/icpservice/icp/internal/app"
	"github.com/icpservice/icp/internal/config"
)

// childEnv names the data directory when the test binary runs as icpd;
// childFlagsEnv holds further icpd flags for it, one per line.
const (
	childEnv      = "ICPD_TEST_CHILD_DIR"
	childFlagsEnv = "ICPD_TEST_CHILD_FLAGS"
)

// TestMain lets a test start this binary as an icpd process (to kill it with
// SIGKILL): with childEnv set it runs the service instead of the tests.
func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(runChild(dir))
	}
	os.Exit(m.Run())
}

// runChild runs icpd on dir, port 0, with the flags in childFlagsEnv, and
// prints "ICPD <api addr> <nats url>" on stdout once it serves.
func runChild(dir string) int {
	args := []string{"--dev", "--addr=127.0.0.1:0", "--embedded-nats-addr=127.0.0.1:0", "--admin-addr=127.0.0.1:0", "--data-dir=" + dir, "--log-level=warn"}
	if flags := os.Getenv(childFlagsEnv); flags != "" {
		args = append(args, strings.Split(flags, "\n")...)
	}
	cfg, err := config.Load(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	a, err := app.New(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		fmt.Fprintln(os.Stderr, "start:", err)
		return 1
	}
	fmt.Printf("ICPD %s %s\n", a.Addr(), a.NATSURL())
	if err := a.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		return 1
	}
	return 0
}

// child is an icpd process started from this test binary.
type child struct {
	cmd     *exec.Cmd
	BaseURL string
	NATSURL string
	exited  chan struct{}
	err     error // exit status, set before exited closes
}

// startChild starts icpd on the data directory dir with the extra flags
// and returns once it serves.
func startChild(t *testing.T, dir string, flags ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir, childFlagsEnv+"="+strings.Join(flags, "\n"))
	cmd.Stderr = &prefixWriter{t: t}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, exited: make(chan struct{})}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "ICPD ") {
				lines <- sc.Text()
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() { c.err = cmd.Wait(); close(c.exited) }()
	t.Cleanup(c.kill)
	select {
	case l := <-lines:
		f := strings.Fields(l)
		c.BaseURL, c.NATSURL = "http://"+f[1], f[2]
	case <-c.exited:
		t.Fatalf("icpd child exited before serving: %v", c.err)
	case <-time.After(60 * time.Second):
		t.Fatal("icpd child did not start within 60s")
	}
	return c
}

// kill stops the child with SIGKILL: no shutdown code runs.
func (c *child) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.exited
}

// stop asks the child to shut down gracefully and returns its exit status.
func (c *child) stop(t *testing.T) error {
	t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		return c.err
	case <-time.After(60 * time.Second):
		t.Fatal("icpd child did not stop within 60s of SIGTERM")
		return nil
	}
}

type prefixWriter struct{ t *testing.T }

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.t.Logf("icpd: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
