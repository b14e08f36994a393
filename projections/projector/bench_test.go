package projector_test

import (
	"context"
	"log/slog"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/projections/projector"
)

// BenchmarkProjector measures events/s projected into the SQLite read model:
// b.N creates are published first, then one projector (default concurrency)
// consumes them all. Creates skip the read of the stored view, so this is the
// bus-to-durable-write path: pull delivery, decode, fold, one read model
// commit per batch, acks.
//
// Run it with go test -run X -bench BenchmarkProjector -benchtime 50000x
// ./projections/projector; docs/performance.md holds its figures. The CPU
// per event is for the whole process (embedded NATS server included), and
// steadier than the rate on a shared machine. Where the CPU goes, largest
// first: the read model's single writer (a third of it the WAL's write
// syscalls), NATS delivery and acks on both sides, then decoding and folding
// (creates in canonical form keep their ICP's JSON as the document); GC
// takes the rest.
func BenchmarkProjector(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	recs := e.storeCreates(b.N)
	futures := make([]nats.PubAckFuture, 0, b.N)
	for i, rec := range recs {
		if i%2048 == 0 {
			// Keep the outstanding publishes under the context's limit:
			// on a busy machine the server acknowledges late.
			select {
			case <-e.js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				b.Fatal("publishing did not complete")
			}
		}
		m := nats.NewMsg(events.Subject(rec.Type))
		for k, v := range events.Headers(rec) {
			m.Header.Set(k, v)
		}
		m.Header.Set(nats.MsgIdHdr, rec.ID)
		m.Data = rec.Data
		f, err := e.js.PublishMsgAsync(m)
		if err != nil {
			b.Fatal(err)
		}
		futures = append(futures, f)
	}
	select {
	case <-e.js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("publishing did not complete")
	}
	for _, f := range futures {
		select {
		case err := <-f.Err():
			b.Fatal(err)
		default:
		}
	}
	cfg := e.config()
	cfg.Concurrency = 0 // the default
	cfg.Logger = slog.New(slog.DiscardHandler)
	p, err := projector.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime(b)
	go func() { done <- p.Run(runCtx) }()
	deadline := time.Now().Add(5 * time.Minute)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for p.Stats().Applied < uint64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("stats after the deadline: %+v", p.Stats())
		}
		<-tick.C
	}
	elapsed, cpu := time.Since(start), cpuTime(b)-cpu0
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	rs := e.rm.Stats()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(rs.Written)/float64(max(rs.Commits, 1)), "views/commit")
	// CPU time of the whole process (projector, read model and the embedded
	// NATS server) per event: on a shared machine the events/s figure says
	// more about the neighbours than about the code.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/event")
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// storeCreates appends n creates to the event store, many appends at once so
// that the store's group commit keeps the setup short, and returns them as
// recorded, in global order.
func (e *env) storeCreates(n int) []events.Recorded {
	e.t.Helper()
	ctx := context.Background()
	const workers = 64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				id := uuid.NewString()
				ev, err := events.Encode(uuid.NewString(), domain.ICPCreatedV1{ICP: testICP(id), Tenant: "org_1", CreatedBy: "user_1"},
					events.Metadata{Tenant: "org_1", UserID: "user_1"})
				if err == nil {
					_, err = e.store.Append(ctx, events.StreamID(id), events.NoStream, []events.Proposed{ev})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		e.t.Fatal(err)
	}
	recs := make([]events.Recorded, 0, n)
	for len(recs) < n {
		var after uint64
		if len(recs) > 0 {
			after = recs[len(recs)-1].Position
		}
		page, err := e.store.ReadAll(ctx, after, 4096)
		if err != nil || len(page) == 0 {
			e.t.Fatalf("ReadAll after %d: %d events, %v", after, len(page), err)
		}
		recs = append(recs, page...)
	}
	return recs
}

// BenchmarkStoreCheck measures the read that checks a batch against the
// event store (see verify) on its own: one ReadAll over the global log per
// batch of consecutive events, the steady state of a projector keeping up.
// Reported per event, with the projector's default batch size.
func BenchmarkStoreCheck(b *testing.B) {
	e := newEnv(b)
	const batch = 1024
	recs := e.storeCreates(8 * batch)
	ctx := context.Background()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	n := 0
	for i := range b.N {
		after := recs[(i%8)*batch].Position - 1
		got, err := e.store.ReadAll(ctx, after, batch)
		if err != nil || len(got) != batch {
			b.Fatalf("ReadAll: %d events, %v", len(got), err)
		}
		n += len(got)
	}
	cpu := cpuTime(b) - cpu0
	b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/event")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(n), "µs/event")
}

// BenchmarkCatchUp measures events/s a projector catches up from the event
// store after the bus stream dropped them (see checkpoint): b.N creates are
// stored, the stream keeps only the last one, and a new projector reads the
// rest from the store a page at a time into the SQLite read model.
func BenchmarkCatchUp(b *testing.B) {
	e := newEnv(b)
	recs := e.storeCreates(b.N + 1)
	e.publish(recs[b.N-1])
	e.publish(recs[b.N])
	e.purgeBelow(e.lastSeq())
	cfg := e.config()
	cfg.Logger = slog.New(slog.DiscardHandler)
	p, err := projector.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime(b)
	go func() { done <- p.Run(runCtx) }()
	deadline := time.Now().Add(5 * time.Minute)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for p.Stats().CatchUps < 1 {
		if time.Now().After(deadline) {
			b.Fatalf("stats after the deadline: %+v", p.Stats())
		}
		<-tick.C
	}
	elapsed, cpu := time.Since(start), cpuTime(b)-cpu0
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	if s := p.Stats(); s.CaughtUpFromStore != uint64(b.N) {
		b.Fatalf("caught up %d, want %d", s.CaughtUpFromStore, b.N)
	}
	rs := e.rm.Stats()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(rs.Written)/float64(max(rs.Commits, 1)), "views/commit")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/event")
}
