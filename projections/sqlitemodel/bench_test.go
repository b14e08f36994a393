package sqlitemodel_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"path/filepath"
	"slices"
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

// BenchmarkApplyBatches measures the writer alone as the projector drives it:
// one caller applying batches of 256 creates with documents of the load
// generator's size (about 1 KiB), each batch one commit.
func BenchmarkApplyBatches(b *testing.B) {
	m, err := sqlitemodel.Open(context.Background(), filepath.Join(b.TempDir(), "rm.db"), sqlitemodel.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	doc := []byte(`{"id":"x","name":"DACH Tech Leaders","description":"Technology leaders in German-speaking regions",` +
		`"createdAt":"2024-01-15T10:30:00.000Z","updatedAt":"2024-01-15T10:30:00.000Z",` +
		`"leadProviderCriteria":[{"provider":"baseProvider","type":"person","filters":{"job_title":["CTO","VP Engineering","Head of Engineering"],` +
		`"location":{"country":["Germany","Austria","Switzerland"]},"company":{"employee_size":{"min":50,"max":5000}},"skills":["go","kubernetes"]}}],` +
		`"customFilterCriteria":[{"type":"maxPeoplePerCompany","value":2},{"type":"minDaysUntilReuse","value":30}],` +
		`"crmFilters":{"provider":"bullhorn","textSearch":"Marketing*","filters":[{"path":"status","mode":"equals","value":"active","exclude":false}]},` +
		`"leadsPerList":20,"activeUntil":null,"userIds":["user_1"]}`)
	const batch = 256
	views := make([]projections.View, batch)
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for i := 0; i < b.N; i += batch {
		n := min(batch, b.N-i)
		for j := range n {
			pos := uint64(i + j + 1)
			views[j] = projections.View{ID: "00000000-0000-4000-8000-" + strconv.FormatUint(1e11+pos, 10), Tenant: "org_1",
				Version: 1, Position: pos, UserIDs: []string{"user_1"}, Doc: doc, CreatedBy: "user_1"}
		}
		if _, err := m.Apply(context.Background(), views[:n]); err != nil {
			b.Fatal(err)
		}
	}
	cpu := cpuTime(b) - cpu0
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/view")
}

// BenchmarkGet measures point reads by id from concurrent callers, as the
// API's gets (and the load generator's read-backs) make them.
func BenchmarkGet(b *testing.B) {
	const views = 10_000
	m := openFilled(b, views, []byte(`{"id":"x","name":"DACH Tech Leaders","leadProviderCriteria":[],"userIds":["user_1"]}`))
	var n atomic.Uint64
	b.ResetTimer()
	cpu0 := cpuTime(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			want := benchID(int(n.Add(1)%views + 1))
			v, err := m.Get(context.Background(), want)
			if err != nil || v.ID != want {
				b.Fatalf("get %s: %+v, %v", want, v.ID, err)
			}
		}
	})
	cpu := cpuTime(b) - cpu0
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/get")
}

// benchID is the id of the i-th ICP that openFilled creates.
func benchID(i int) string { return "00000000-0000-4000-8000-" + strconv.Itoa(1e11+i) }

// openFilled opens a read model in a temporary directory holding n ICPs at
// version 1, ids benchID(1) to benchID(n) at positions 1 to n, each with doc.
func openFilled(b *testing.B, n int, doc []byte) *sqlitemodel.Model {
	b.Helper()
	m, err := sqlitemodel.Open(context.Background(), filepath.Join(b.TempDir(), "rm.db"), sqlitemodel.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	batch := make([]projections.View, 0, 1000)
	for i := 1; i <= n; i++ {
		batch = append(batch, projections.View{ID: benchID(i), Tenant: "org_1", Version: 1, Position: uint64(i),
			UserIDs: []string{"user_1"}, Doc: doc, CreatedBy: "user_1"})
		if len(batch) == cap(batch) || i == n {
			if _, err := m.Apply(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	return m
}

// BenchmarkApplyUpdates measures the writer on updates spread over a large
// read model: 100,000 ICPs of about 1 KiB, each batch of 32 updates to
// ICPs picked at random, one commit per batch. Unlike creates, which meet
// at the indexes' right edges, each update reads and rewrites pages all
// over the file, so this is where the writer's page cache shows.
func BenchmarkApplyUpdates(b *testing.B) {
	const icps, batch = 100_000, 32
	doc := bytes.Repeat([]byte("x"), 1000)
	doc = append(append([]byte(`{"name":"`), doc...), `","userIds":["user_1"]}`...)
	m := openFilled(b, icps, doc)
	versions := make([]uint64, icps+1)
	for i := range versions {
		versions[i] = 1
	}
	pos := uint64(icps)
	views := make([]projections.View, 0, batch)
	rnd := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for i := 0; i < b.N; i += batch {
		views = views[:0]
		for range min(batch, b.N-i) {
			k := rnd.IntN(icps) + 1
			if slices.ContainsFunc(views, func(v projections.View) bool { return v.ID == benchID(k) }) {
				continue
			}
			pos++
			versions[k]++
			views = append(views, projections.View{ID: benchID(k), Tenant: "org_1", Version: versions[k], Position: pos,
				UserIDs: []string{"user_1"}, Doc: doc, CreatedBy: "user_1"})
		}
		outs, err := m.Apply(context.Background(), views)
		if err != nil {
			b.Fatal(err)
		}
		for j, o := range outs {
			if !o.Applied {
				b.Fatalf("update %s v%d not applied (stored v%d)", views[j].ID, views[j].Version, o.Stored)
			}
		}
	}
	cpu := cpuTime(b) - cpu0
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/update")
}
