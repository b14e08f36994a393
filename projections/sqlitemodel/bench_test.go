package sqlitemodel_test

import (
	"context"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/icpservice/icp/projections"
	"github.com/icpservice/icp/projections/sqlitemodel"
)

// BenchmarkApplyConcurrent measures creates/s when many goroutines apply one
// view each, as projector handlers do: group commit turns them into few
// transactions.
func BenchmarkApplyConcurrent(b *testing.B) {
	m, err := sqlitemodel.Open(context.Background(), filepath.Join(b.TempDir(), "rm.db"), sqlitemodel.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	doc := []byte(`{"id":"x","name":"DACH Tech Leaders","description":null,"createdAt":"2024-01-15T10:30:00.000Z",` +
		`"leadProviderCriteria":[{"provider":"baseProvider","filters":{"job_title":["CTO"]}}],"userIds":["user_1"]}`)
	var n atomic.Uint64
	b.SetParallelism(128)
	b.ResetTimer()
	cpu0 := cpuTime(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			v := projections.View{ID: "id-" + strconv.FormatUint(i, 10), Tenant: "org", Version: 1, Position: i,
				UserIDs: []string{"user_1"}, Doc: doc, CreatedBy: "user_1"}
			if _, err := m.Apply(context.Background(), []projections.View{v}); err != nil {
				b.Fatal(err)
			}
		}
	})
	cpu := cpuTime(b) - cpu0
	b.StopTimer()
	s := m.Stats()
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/view")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "views/s")
	b.ReportMetric(float64(s.Written)/float64(s.Commits), "views/commit")
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
