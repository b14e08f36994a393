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

// benchHistories are written once per test binary, on first use.
var benchHistories struct {
	mu   sync.Mutex
	dirs map[string]string
}

func historyForBench(b *testing.B, name string, spec historytest.Spec) string {
	b.Helper()
	benchHistories.mu.Lock()
	defer benchHistories.mu.Unlock()
	if dir, ok := benchHistories.dirs[name]; ok {
		return dir
	}
	dir, err := os.MkdirTemp("", "rebuild-bench-")
	if err != nil {
		b.Fatal(err)
	}
	if benchHistories.dirs == nil {
		benchHistories.dirs = map[string]string{}
	}
	benchHistories.dirs[name] = dir
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, "events.db"), sqlitestore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	spec.Writers = 64
	if _, err := historytest.Write(ctx, st, spec); err != nil {
		b.Fatal(err)
	}
	return dir
}

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildDir); dir != "" {
		os.Exit(crashChild(dir))
	}
	code := m.Run()
	for _, dir := range benchHistories.dirs {
		_ = os.RemoveAll(dir)
	}
	os.Exit(code)
}

// BenchmarkRebuild measures a full rebuild of the SQLite read model from the
// SQLite event store: read, decode, fold in memory, write each ICP's state
// once where its events come close together, swap, close. Reported as
// events/s of history replayed, and CPU per event (steadier on a shared
// machine).
//
// Histories (about 700-byte events; creates, then two rounds of updates,
// then deletes; time-ordered ids, as the service writes them, unless said):
//   - creates: 100,000 ICPs, created only: 100,000 events, 1 per ICP;
//   - creates-random-ids: the same with random (version 4) ids, as
//     releases before time-ordered ids wrote them;
//   - mixed: 50,000 ICPs, a fifth of them updated twice, one in twenty
//     deleted: 72,500 events, 1.45 per ICP;
//   - updated: 20,000 ICPs, each updated twice: 60,000 events, 3 per ICP.
//
// Run it with
//
//	go test -run X -bench Rebuild -benchtime 3x ./projections/rebuild
//
// Its figures, and those of icpctl rebuild on a million events, are in
// docs/performance.md with the date and machine they were measured on. On
// a machine shared with other work, CPU per event is the steadier of the
// two.
func BenchmarkRebuild(b *testing.B) {
	for _, h := range []struct {
		name string
		spec historytest.Spec
	}{
		{"creates", historytest.Spec{ICPs: 100_000}},
		{"creates-random-ids", historytest.Spec{ICPs: 100_000, RandomIDs: true}},
		{"mixed", historytest.Spec{ICPs: 50_000, UpdateEvery: 5, DeleteEvery: 20}},
		{"updated", historytest.Spec{ICPs: 20_000, UpdateEvery: 1}},
	} {
		b.Run(h.name, func(b *testing.B) { benchmarkRebuild(b, historyForBench(b, h.name, h.spec)) })
	}
}

func benchmarkRebuild(b *testing.B, dir string) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, "events.db"), sqlitestore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	// icpctl rebuild runs with the garbage collector's target at 400%: a
	// short-lived tool trades memory for the CPU the collector would take,
	// up to a soft limit (cmd/icpctl, replayMemoryLimit).
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(96 << 20))
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
