package rebuild_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/icpservice/icp/events/sqlitestore"
	"github.com/icpservice/icp/projections/rebuild"
	"github.com/icpservice/icp/projections/rebuild/historytest"
	"github.com/icpservice/icp/projections/sqlitemodel"
)

// benchHistory is written once per test binary: 50,000 ICPs, a fifth of
// them updated twice, one in twenty deleted (72,500 events of about 700
// bytes).
var benchHistory struct {
	once   sync.Once
	dir    string
	events uint64
	err    error
}

func historyForBench(b *testing.B) string {
	b.Helper()
	benchHistory.once.Do(func() {
		dir, err := os.MkdirTemp("", "rebuild-bench-")
		if err != nil {
			benchHistory.err = err
			return
		}
		benchHistory.dir = dir
		ctx := context.Background()
		st, err := sqlitestore.Open(ctx, filepath.Join(dir, "events.db"), sqlitestore.Options{})
		if err != nil {
			benchHistory.err = err
			return
		}
		defer st.Close()
		if _, err := historytest.Write(ctx, st, historytest.Spec{ICPs: 50_000, UpdateEvery: 5, DeleteEvery: 20, Writers: 64}); err != nil {
			benchHistory.err = err
			return
		}
		benchHistory.events, benchHistory.err = st.Head(ctx)
	})
	if benchHistory.err != nil {
		b.Fatal(benchHistory.err)
	}
	return benchHistory.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchHistory.dir != "" {
		_ = os.RemoveAll(benchHistory.dir)
	}
	os.Exit(code)
}

// BenchmarkRebuild measures a full rebuild of the SQLite read model from the
// SQLite event store: read, decode, fold in memory, write each ICP once per
// chunk, swap. Reported as events/s of history replayed.
func BenchmarkRebuild(b *testing.B) {
	dir := historyForBench(b)
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, "events.db"), sqlitestore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	// icpctl rebuild runs with the garbage collector's target at 400%: a
	// short-lived tool trades memory for the CPU the collector would take.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	var total uint64
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		path := filepath.Join(b.TempDir(), "readmodel.db")
		b.StartTimer()
		bld, err := sqlitemodel.OpenBuilder(ctx, path)
		if err != nil {
			b.Fatal(err)
		}
		res, err := rebuild.Rebuild(ctx, st, bld, rebuild.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := bld.Close(); err != nil {
			b.Fatal(err)
		}
		total += res.Events
	}
	cpu := cpuTime(b) - cpu0
	b.StopTimer()
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(total), "cpu-µs/event")
}

// cpuTime is the CPU time this process used so far: on a machine shared
// with other work, CPU per event is steadier than events per second.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
