package relay

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/icpservice/icp/bus"
	"github.com/icpservice/icp/events"
)

// BenchmarkRelayPublish measures how fast the relay drains a backlog from the
// SQLite store onto the embedded JetStream (file storage): b.N events of
// about 600 bytes, default batch size, each batch pipelined with async
// publishes whose acks are checked in order. Run it without -race (go test
// -run X -bench RelayPublish -benchtime 20000x ./events/relay);
// docs/performance.md holds its figures.
func BenchmarkRelayPublish(b *testing.B) {
	e := newEnv(b, bus.StreamConfig{})
	ctx := context.Background()
	const perAppend = 500
	data, _ := json.Marshal(map[string]any{"name": "bench", "pad": strings.Repeat("x", 500)})
	meta := events.Metadata{Tenant: "tenant-1", UserID: "user-1"}.Encode()
	for left := b.N; left > 0; left -= perAppend {
		n := min(left, perAppend)
		evs := make([]events.Proposed, n)
		for i := range evs {
			typ := events.TypeICPUpdated
			if i == 0 {
				typ = events.TypeICPCreated
			}
			evs[i] = events.Proposed{ID: uuid.NewString(), Type: typ, SchemaVersion: 1, Data: data, Metadata: meta}
		}
		if _, err := e.store.Append(ctx, events.StreamID(uuid.NewString()), events.NoStream, evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	// In-process connection, as the embedded default runs.
	nc, err := nats.Connect("", nats.InProcessServer(e.srv.Inner()))
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	r, _ := e.startRelay(Config{InstanceID: "bench", Conn: nc, LeaseTTL: 10 * time.Second, Logger: discardLogger()})
	e.waitCaughtUp(5 * time.Minute)
	b.StopTimer()
	if got := r.Stats().Published; got != uint64(b.N) {
		b.Fatalf("published %d, want %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
