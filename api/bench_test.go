package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/icpservice/icp/api"
	"github.com/icpservice/icp/commands"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/sqlitestore"
	"github.com/icpservice/icp/projections"
	"github.com/icpservice/icp/projections/sqlitemodel"
)

// benchStores opens an event store and a read model on SQLite files of a
// fresh directory, closed when b ends.
func benchStores(b *testing.B) (*sqlitestore.Store, *sqlitemodel.Model) {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, "events.db"), sqlitestore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	rm, err := sqlitemodel.Open(ctx, filepath.Join(dir, "read.db"), sqlitemodel.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = rm.Close() })
	return st, rm
}

// benchAPI is the API over real SQLite stores holding n ICPs of alice's,
// each projected to the read model at its store version: the normal case,
// no lag. It returns the handler and the ICPs' ids.
func benchAPI(b *testing.B, n int) (http.Handler, []string) {
	b.Helper()
	ctx := context.Background()
	st, rm := benchStores(b)
	h, err := api.New(api.Config{ConsistencyWait: time.Nanosecond}, api.Deps{
		Commands: commands.NewHandler(st), ReadModel: rm, Verifier: testTokens,
	})
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, n)
	for i := range ids {
		body := fmt.Sprintf(`{"name":"ICP %d","leadProviderCriteria":[{"provider":"baseProvider","type":"person","filters":{"job_title":["CTO","VP Engineering"],"location":{"country":["Germany"]}}}],"userIds":["user_bob"],"leadsPerList":20}`, i)
		w := serveBench(h, http.MethodPost, api.BasePath, body)
		if w.Code != http.StatusCreated {
			b.Fatalf("create: %d %s", w.Code, w.Body)
		}
		ids[i] = w.Body.String()[7:43] // {"id":"<36>"
	}
	recs, err := st.ReadAll(ctx, 0, n+1)
	if err != nil {
		b.Fatal(err)
	}
	views := make([]projections.View, 0, len(recs))
	for _, r := range recs {
		s, err := events.EvolveRecorded(nil, r)
		if err != nil {
			b.Fatal(err)
		}
		v, err := projections.ViewOf(s)
		if err != nil {
			b.Fatal(err)
		}
		views = append(views, v)
	}
	if _, err := rm.Apply(ctx, views); err != nil {
		b.Fatal(err)
	}
	return h, ids
}

func serveBench(h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	var hr *http.Request
	if body != "" {
		hr = httptest.NewRequest(method, path, strings.NewReader(body))
		hr.Header.Set("Content-Type", "application/json")
	} else {
		hr = httptest.NewRequest(method, path, nil)
	}
	hr.Header.Set("Authorization", "Bearer alice")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, hr)
	return w
}

// BenchmarkGet is a get of one ICP whose view is up to date, through the
// whole handler (authentication, the read model, the check against the event
// store of access while the read model lags).
func BenchmarkGet(b *testing.B) {
	h, ids := benchAPI(b, 1)
	path := api.BasePath + "/" + ids[0]
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if w := serveBench(h, http.MethodGet, path, ""); w.Code != http.StatusOK {
			b.Fatalf("get: %d %s", w.Code, w.Body)
		}
	}
}

// BenchmarkList is a list of 100 ICPs whose views are up to date.
func BenchmarkList(b *testing.B) {
	h, _ := benchAPI(b, 100)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if w := serveBench(h, http.MethodGet, api.BasePath, ""); w.Code != http.StatusOK {
			b.Fatalf("list: %d", w.Code)
		}
	}
}

// createBody is the load generator's create request (internal/loadgen.Body).
const createBody = `{"name":"DACH Tech Leaders","description":"Technology leaders in German-speaking regions",
"leadProviderCriteria":[{"provider":"baseProvider","type":"person","filters":{"job_title":["CTO","VP Engineering","Head of Engineering"],
"location":{"country":["Germany","Austria","Switzerland"]},"company":{"employee_size":{"min":50,"max":5000}},"skills":["go","kubernetes"]}}],
"customFilterCriteria":[{"type":"maxPeoplePerCompany","value":2},{"type":"minDaysUntilReuse","value":30}],
"crmFilters":{"provider":"bullhorn","textSearch":"Marketing*","filters":[{"path":"status","mode":"equals","value":"active","exclude":false}]},
"leadsPerList":20,"activeUntil":null}`

// BenchmarkCreate is a create through the whole handler, as the load
// generator sends it, from 64 clients at once (as icpctl load -c 64) on the
// embedded SQLite store, with the bus's and the read model's limits checked
// as the service wires them. No projector runs, so every answer is 201 with
// ICP-Consistency: pending after the shortest wait. It reports the process's
// CPU time per create: its ns/op is mostly the store's commits, and on a
// shared machine says more about the neighbours than about the code.
func BenchmarkCreate(b *testing.B) {
	st, rm := benchStores(b)
	cmds := commands.NewHandler(st, commands.WithBusLimit(func() int64 { return 1 << 20 }),
		commands.WithMaxDocBytes(rm.MaxDocBytes()))
	h, err := api.New(api.Config{ConsistencyWait: time.Nanosecond}, api.Deps{Commands: cmds, ReadModel: rm, Verifier: testTokens})
	if err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(max(64/runtime.GOMAXPROCS(0), 1))
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if w := serveBench(h, http.MethodPost, api.BasePath, createBody); w.Code != http.StatusCreated {
				b.Errorf("create: %d %s", w.Code, w.Body)
				return
			}
		}
	})
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/create")
}

// cpuTime is the process's CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
