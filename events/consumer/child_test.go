package consumer_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events/consumer"
)

// Environment of a worker process started from this test binary.
const (
	childURL     = "CONSUMER_TEST_CHILD_URL"
	childDurable = "CONSUMER_TEST_CHILD_DURABLE"
	childBlockAt = "CONSUMER_TEST_CHILD_BLOCK_AT"
)

// TestMain lets a test run this binary as a worker process (to kill it with
// SIGKILL): with childURL set it runs a worker instead of the tests.
func TestMain(m *testing.M) {
	if url := os.Getenv(childURL); url != "" {
		os.Exit(runChild(url))
	}
	code := m.Run()
	if icpctl.dir != "" {
		_ = os.RemoveAll(icpctl.dir)
	}
	os.Exit(code)
}

// runChild consumes ICPCreated events and prints "EVENT <id> <delivery>"
// for each handler call, before returning from it. With childBlockAt = n,
// the n-th call prints its line and never returns: that event is in flight,
// unacknowledged, when the process is killed.
func runChild(url string) int {
	blockAt, _ := strconv.Atoi(os.Getenv(childBlockAt))
	c, err := consumer.New(consumer.Config{
		URL: url, Durable: os.Getenv(childDurable), AckWait: time.Second,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	calls := 0
	c.OnCreated(func(ctx context.Context, ev consumer.Event[domain.ICPCreatedV1]) error {
		calls++ // one handler at a time (Concurrency 1)
		fmt.Printf("EVENT %s %d\n", ev.ID, ev.Delivery)
		if calls == blockAt {
			select {} // in flight until SIGKILL
		}
		return nil
	})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := c.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		return 1
	}
	return 0
}

// worker is a worker process started from this test binary.
type worker struct {
	cmd    *exec.Cmd
	lines  chan call
	exited chan struct{}
	err    error
}

type call struct {
	id       string
	delivery int
}

func startWorker(t *testing.T, url, durable string, blockAt int) *worker {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childURL+"="+url, childDurable+"="+durable, childBlockAt+"="+strconv.Itoa(blockAt))
	cmd.Stderr = logWriter{t}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &worker{cmd: cmd, lines: make(chan call, 1000), exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 3 && f[0] == "EVENT" {
				n, _ := strconv.Atoi(f[2])
				w.lines <- call{f[1], n}
			}
		}
		_, _ = io.Copy(io.Discard, out)
		close(w.lines)
	}()
	go func() { w.err = cmd.Wait(); close(w.exited) }()
	t.Cleanup(w.kill)
	return w
}

// next returns the worker's next handler call.
func (w *worker) next(t *testing.T) call {
	t.Helper()
	select {
	case c, ok := <-w.lines:
		if !ok {
			t.Fatalf("worker exited: %v", w.err)
		}
		return c
	case <-time.After(budget):
		t.Fatal("no handler call within the budget")
		return call{}
	}
}

func (w *worker) kill() {
	_ = w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.exited
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Logf("worker: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestKilledWorkerResumesWithoutGapOrRepeatingAcknowledgedEvents kills a
// worker process with SIGKILL while its handler holds the 40th of 100
// events, starts it again, and checks that the second process gets exactly
// the rest: the event in flight again first (it was never acknowledged),
// then every later one once, in store order; none acknowledged before the
// kill comes again.
func TestKilledWorkerResumesWithoutGapOrRepeatingAcknowledgedEvents(t *testing.T) {
	e := newEnv(t)
	want := e.create(100)
	e.waitPublished()
	const durable, blockAt = "killed", 40

	w1 := startWorker(t, e.srv.ClientURL(), durable, blockAt)
	for i := range blockAt {
		c := w1.next(t)
		if c.id != want[i].ID || c.delivery != 1 {
			t.Fatalf("first worker, call %d: event %s delivery %d, want %s delivery 1", i, c.id, c.delivery, want[i].ID)
		}
	}
	w1.kill()
	info := e.durableState(durable)
	if info.AckFloor.Stream != blockAt-1 || info.NumAckPending != 1 {
		t.Fatalf("after the kill: ack floor %d, %d outstanding; want %d acknowledged and the one in flight outstanding", info.AckFloor.Stream, info.NumAckPending, blockAt-1)
	}

	w2 := startWorker(t, e.srv.ClientURL(), durable, 0)
	first := w2.next(t)
	if first.id != want[blockAt-1].ID || first.delivery != 2 {
		t.Fatalf("second worker's first call: event %s delivery %d, want the one in flight (%s) on its second delivery", first.id, first.delivery, want[blockAt-1].ID)
	}
	for i := blockAt; i < len(want); i++ {
		c := w2.next(t)
		if c.id != want[i].ID || c.delivery != 1 {
			t.Fatalf("second worker, event %d: %s delivery %d, want %s delivery 1", i, c.id, c.delivery, want[i].ID)
		}
	}
	e.settled(durable)
	_ = w2.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w2.exited:
		if w2.err != nil {
			t.Errorf("graceful stop: %v", w2.err)
		}
	case <-time.After(budget):
		t.Fatal("worker did not stop after SIGTERM")
	}
	for c := range w2.lines {
		t.Errorf("extra handler call after the last event: %+v", c)
	}
}
