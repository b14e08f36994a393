package sqlitestore_test

import (
	"context"
	"fmt"
	"path/filepath"
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
func BenchmarkAppendConcurrent(b *testing.B) {
	for _, batchMax := range []int{sqlitestore.DefaultBatchMax, 1} {
		b.Run(fmt.Sprintf("BatchMax=%d", batchMax), func(b *testing.B) {
			benchmarkAppendConcurrent(b, sqlitestore.Options{BatchMax: batchMax})
		})
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
