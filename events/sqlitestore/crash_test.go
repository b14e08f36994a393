package sqlitestore_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/sqlitestore"
)

// crashEnv names the file the child process appends to.
const crashEnv = "SQLITESTORE_CRASH_CHILD_DB"

// TestCrashKeepsEveryAcknowledgedAppend runs a child process that appends from
// many goroutines and prints every acknowledged append, kills it with SIGKILL
// while appends are in flight, and checks the file: every acknowledged append
// is there exactly once, and the global positions run 1..N without a gap.
func TestCrashKeepsEveryAcknowledgedAppend(t *testing.T) {
	if path := os.Getenv(crashEnv); path != "" {
		crashChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "events.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashKeepsEveryAcknowledgedAppend$")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// If this test fails early, do not leave the child appending.
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	const killAfter = 400
	var acks []crashAck
	r := bufio.NewReader(out)
	killed := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			// EOF after the kill; a line cut short by the kill has no
			// newline and was never a complete acknowledgement.
			if !errors.Is(err, io.EOF) {
				t.Fatalf("reading the child's output: %v", err)
			}
			break
		}
		a, ok := parseCrashAck(t, line)
		if !ok {
			continue
		}
		acks = append(acks, a)
		if len(acks) == killAfter && !killed {
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
			killed = true
		}
	}
	werr := cmd.Wait()
	if !killed {
		t.Fatalf("child ended after %d acknowledgements without being killed: %v\n%s", len(acks), werr, stderr.String())
	}

	s := openStore(t, path, sqlitestore.Options{})
	ctx := context.Background()
	var all []events.Recorded
	for after := uint64(0); ; {
		page, err := s.ReadAll(ctx, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
		after = page[len(page)-1].Position
	}
	byID := make(map[string]events.Recorded, len(all))
	for i, rec := range all {
		if rec.Position != uint64(i+1) {
			t.Fatalf("position %d at index %d: the log has a gap or is out of order", rec.Position, i)
		}
		if _, dup := byID[rec.ID]; dup {
			t.Fatalf("event %s stored twice", rec.ID)
		}
		byID[rec.ID] = rec
	}
	for _, a := range acks {
		for i, id := range a.ids {
			rec, ok := byID[id]
			if !ok {
				t.Fatalf("acknowledged event %s (%s v%d) lost in the crash", id, a.stream, a.expected+uint64(i)+1)
			}
			if rec.StreamID != a.stream || rec.Version != a.expected+uint64(i)+1 || rec.Position != a.positions[i] {
				t.Fatalf("acknowledged event %s stored as %s v%d at %d, acknowledged as %s v%d at %d",
					id, rec.StreamID, rec.Version, rec.Position, a.stream, a.expected+uint64(i)+1, a.positions[i])
			}
		}
	}
	t.Logf("%d appends acknowledged before the kill, %d events in the file after it", len(acks), len(all))
	// The reopened file takes appends again.
	if _, err := s.Append(ctx, "icp-after-crash", events.NoStream, []events.Proposed{event(1)}); err != nil {
		t.Fatalf("append after the crash: %v", err)
	}
}

type crashAck struct {
	stream    string
	expected  uint64
	positions []uint64
	ids       []string
}

// An acknowledgement line: "ack <stream> <expected> <pos,pos...> <id,id...>".
func formatCrashAck(stream string, expected uint64, res events.AppendResult, evs []events.Proposed) string {
	ps := make([]string, len(res.Positions))
	for i, p := range res.Positions {
		ps[i] = strconv.FormatUint(p, 10)
	}
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	return fmt.Sprintf("ack %s %d %s %s\n", stream, expected, strings.Join(ps, ","), strings.Join(ids, ","))
}

func parseCrashAck(t *testing.T, line string) (crashAck, bool) {
	t.Helper()
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != "ack" {
		return crashAck{}, false
	}
	if len(f) != 5 {
		t.Fatalf("malformed acknowledgement %q", line)
	}
	exp, err := strconv.ParseUint(f[2], 10, 64)
	if err != nil {
		t.Fatalf("malformed acknowledgement %q", line)
	}
	a := crashAck{stream: f[1], expected: exp, ids: strings.Split(f[4], ",")}
	for _, p := range strings.Split(f[3], ",") {
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			t.Fatalf("malformed acknowledgement %q", line)
		}
		a.positions = append(a.positions, n)
	}
	if len(a.positions) != len(a.ids) {
		t.Fatalf("malformed acknowledgement %q", line)
	}
	return a, true
}

// crashChild appends until it is killed: each of 16 goroutines creates a
// stream, then extends it, and prints each acknowledged append in one write.
func crashChild(path string) {
	s, err := sqlitestore.Open(context.Background(), path, sqlitestore.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // the parent kills it long before
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				stream := "icp-" + uuid.NewString()
				for expected := uint64(0); expected < 3; {
					evs := []events.Proposed{event(g)}
					if (i+g)%2 == 0 {
						evs = append(evs, event(i))
					}
					res, err := s.Append(ctx, stream, expected, evs)
					if err != nil {
						fmt.Fprintln(os.Stderr, "append:", err)
						os.Exit(3)
					}
					line := formatCrashAck(stream, expected, res, evs)
					mu.Lock()
					_, werr := os.Stdout.WriteString(line)
					mu.Unlock()
					if werr != nil {
						os.Exit(4)
					}
					expected = res.Version
				}
			}
		})
	}
	wg.Wait()
	os.Exit(5) // not killed in time
}
