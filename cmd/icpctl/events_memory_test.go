package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/sqlitestore"
	"github.com/icpservice/icp/platform/datadir"
)

// heapSampler discards what it is given and records the largest live heap
// seen after a full collection, every MiB written.
type heapSampler struct {
	written, next int
	peak          uint64
	lines         int
}

func (s *heapSampler) Write(b []byte) (int, error) {
	s.written += len(b)
	s.lines += strings.Count(string(b), "\n")
	if s.written >= s.next {
		s.next = s.written + 1<<20
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s.peak = max(s.peak, ms.HeapAlloc)
	}
	return len(b), nil
}

// seedLarge writes n events of about size bytes each into a new data
// directory's event store, in streams of perStream events, and returns the
// directory and the id of the first stream's ICP.
func seedLarge(t *testing.T, n, perStream, size int) (dir, firstICP string) {
	t.Helper()
	dir = t.TempDir()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(dir, datadir.EventsFile), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pad := strings.Repeat("x", size)
	for written := 0; written < n; {
		id := uuid.NewString()
		if firstICP == "" {
			firstICP = id
		}
		var evs []events.Proposed
		for i := 0; i < perStream && written < n; i++ {
			evs = append(evs, events.Proposed{ID: uuid.NewString(), Type: events.TypeICPUpdated, SchemaVersion: 1,
				Data: fmt.Appendf(nil, `{"id":%q,"pad":%q}`, id, pad), Metadata: []byte(`{}`)})
			written++
		}
		if _, err := st.Append(context.Background(), events.StreamID(id), events.NoStream, evs); err != nil {
			t.Fatal(err)
		}
	}
	return dir, firstICP
}

// heldWhileExporting runs icpctl events on dir into a heapSampler and
// returns the live heap it held beyond what was live before, and the
// sampler.
func heldWhileExporting(t *testing.T, dir string, args ...string) (uint64, *heapSampler) {
	t.Helper()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := &heapSampler{}
	if code := run(append([]string{"events", "--data-dir", dir}, args...), s, io.Discard); code != 0 {
		t.Fatalf("icpctl events exited %d", code)
	}
	if s.peak < ms.HeapAlloc {
		return 0, s
	}
	return s.peak - ms.HeapAlloc, s
}

// TestEventsMemoryIsFlat: exporting 8 times the history holds about the same
// live heap, less than the history: the events are written as they are read.
func TestEventsMemoryIsFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 20 MiB of history; not run with -short")
	}
	const size = 48 << 10
	// The small history in streams of 50 events, the large one in a single
	// stream of 400: --icp reads that stream in pages too.
	smallDir, smallICP := seedLarge(t, 50, 50, size)
	largeDir, largeICP := seedLarge(t, 400, 400, size)
	for _, c := range []struct {
		name            string
		smallArgs, args []string
	}{
		{"the whole history", nil, nil},
		{"one ICP", []string{"--icp", smallICP}, []string{"--icp", largeICP}},
	} {
		heldSmall, small := heldWhileExporting(t, smallDir, c.smallArgs...)
		heldLarge, large := heldWhileExporting(t, largeDir, c.args...)
		t.Logf("%s: exporting %d bytes held %d bytes of heap; exporting %d bytes held %d", c.name, small.written, heldSmall, large.written, heldLarge)
		if small.lines != 50 || large.lines != 400 {
			t.Fatalf("%s: exported %d and %d lines, want 50 and 400", c.name, small.lines, large.lines)
		}
		// A page (about 1 MiB of events), the output buffer, and noise.
		const bound = 6 << 20
		if heldLarge > bound {
			t.Fatalf("%s: exporting %d bytes held %d bytes of heap, want at most %d", c.name, large.written, heldLarge, bound)
		}
		if heldLarge > heldSmall+2<<20 {
			t.Fatalf("%s: 8 times the history held %d bytes of heap against %d: memory grows with the history", c.name, heldLarge, heldSmall)
		}
	}
}
