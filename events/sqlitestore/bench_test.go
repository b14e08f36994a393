package sqlitestore_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/sqlitestore"
)

// BenchmarkAppendConcurrent measures durable appends per second with 64
// concurrent callers, each append one event creating its own stream (the
// shape of ICP creation). Group commit is what lifts this above one commit
// per fsync; BatchMax=1 (one transaction per append) shows the difference.
// Alone on the machine the store does better without its linger (the writer
// idles while it waits); the linger pays off when the rest of the pipeline
// competes for the CPU (see docs/performance.md).
func BenchmarkAppendConcurrent(b *testing.B) {
	for _, c := range []struct {
		name string
		opts sqlitestore.Options
	}{
		{"BatchMax=512", sqlitestore.Options{}},
		{"BatchMax=512,NoLinger", sqlitestore.Options{Linger: sqlitestore.NoLinger}},
		{"BatchMax=1", sqlitestore.Options{BatchMax: 1}},
	} {
		b.Run(c.name, func(b *testing.B) { benchmarkAppendConcurrent(b, c.opts) })
	}
}

func benchmarkAppendConcurrent(b *testing.B, opts sqlitestore.Options) {
	const callers = 64
	s, err := sqlitestore.Open(context.Background(), filepath.Join(b.TempDir(), "events.db"), opts)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	// Events are built before the clock starts: the benchmark measures the
	// store, not UUID generation.
	evs := make([]events.Proposed, b.N)
	streams := make([]string, b.N)
	for i := range evs {
		evs[i] = event(i)
		streams[i] = "icp-" + uuid.NewString()
	}
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range callers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				if _, err := s.Append(ctx, streams[i], events.NoStream, evs[i:i+1]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
}

// BenchmarkReadAll measures reading the global log in pages: 20,000 events
// of about 700 bytes, 4,096 per page the way a rebuild or a relay that is
// behind reads it, and 16 per page the way the projector checks a batch
// under load (verify), where a read's fixed cost, not its rows, dominates.
func BenchmarkReadAll(b *testing.B) {
	const total = 20_000
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, filepath.Join(b.TempDir(), "events.db"), sqlitestore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	evs := make([]events.Proposed, 0, 1000)
	for i := 0; i < total; i += cap(evs) {
		evs = evs[:0]
		for j := range cap(evs) {
			e := event(i + j)
			e.Data = []byte(`{"n":` + strconv.Itoa(i+j) + `,"pad":"` + strings.Repeat("x", 600) + `"}`)
			evs = append(evs, e)
		}
		if _, err := s.Append(ctx, "bench-"+uuid.NewString(), events.NoStream, evs); err != nil {
			b.Fatal(err)
		}
	}
	for _, page := range []int{4096, 16} {
		b.Run("page="+strconv.Itoa(page), func(b *testing.B) {
			for range b.N {
				readAllPages(b, s, page, total)
			}
			b.ReportMetric(float64(b.N*total)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// readAllPages reads the whole log, page events at a time, and fails b
// unless it holds total events.
func readAllPages(b *testing.B, s *sqlitestore.Store, page, total int) {
	var after uint64
	n := 0
	for {
		recs, err := s.ReadAll(context.Background(), after, page)
		if err != nil {
			b.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		n += len(recs)
		after = recs[len(recs)-1].Position
	}
	if n != total {
		b.Fatalf("read %d events, want %d", n, total)
	}
}

// BenchmarkStreamVersions asks for the versions of 1 and of 100 streams at
// once (a get, and a page of a list, checked for a lagging read model) in a
// store of 10,000 streams.
func BenchmarkStreamVersions(b *testing.B) {
	s, err := sqlitestore.Open(context.Background(), filepath.Join(b.TempDir(), "events.db"), sqlitestore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	streams := make([]string, 10_000)
	var wg sync.WaitGroup
	var failed atomic.Value
	for i := range streams {
		streams[i] = "icp-" + uuid.NewString()
	}
	for w := range 32 {
		wg.Go(func() {
			for i := w; i < len(streams); i += 32 {
				if _, err := s.Append(ctx, streams[i], events.NoStream, []events.Proposed{event(i)}); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		b.Fatal(err)
	}
	for _, n := range []int{1, 100} {
		b.Run("streams="+strconv.Itoa(n), func(b *testing.B) {
			ask := streams[len(streams)/2 : len(streams)/2+n]
			b.ReportAllocs()
			for b.Loop() {
				got, err := s.StreamVersions(ctx, ask)
				if err != nil || len(got) != n {
					b.Fatalf("%d versions, %v", len(got), err)
				}
			}
		})
	}
}
