package relay

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/icpservice/icp/bus"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/esdbstore"
	"github.com/icpservice/icp/events/esdbstore/esdbtest"
)

// esdbEvents appends n events of this service to store, one new ICP each,
// and returns their streams.
func esdbEvents(t *testing.T, store events.Store, n int) []string {
	t.Helper()
	var streams []string
	for i := range n {
		stream := events.StreamID(uuid.NewString())
		ev := events.Proposed{ID: uuid.NewString(), Type: events.TypeICPCreated, SchemaVersion: 1,
			Data: fmt.Appendf(nil, `{"n":%d}`, i), Metadata: []byte(`{"tenant":"t1"}`)}
		if _, err := store.Append(context.Background(), stream, events.NoStream, []events.Proposed{ev}); err != nil {
			t.Fatal(err)
		}
		streams = append(streams, stream)
	}
	return streams
}

// waitBusAt waits until the bus's last event of this service is at the
// store's head.
func (e *env) waitBusAt(store events.Store) {
	e.t.Helper()
	var pos, head uint64
	var err error
	eventually(e.t, waitLong, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if head, err = store.Head(ctx); err != nil {
			return false
		}
		pos, err = BusPosition(ctx, e.nc)
		return err == nil && pos == head
	}, func() string { return fmt.Sprintf("bus at position %d, store head %d (err %v)", pos, head, err) })
}

func openESDB(t *testing.T) (*esdbtest.Server, *esdbstore.Store) {
	t.Helper()
	srv := esdbtest.Start(t)
	store, err := esdbstore.Open(context.Background(), srv.ConnString(), esdbstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return srv, store
}

func TestForeignEventsInEventStoreDBArePassedOverWithARecord(t *testing.T) {
	e := newEnv(t, bus.StreamConfig{})
	srv, store := openESDB(t)
	streams := esdbEvents(t, store, 3)
	r, _ := e.startRelay(Config{InstanceID: "a", Store: store})
	e.waitBusAt(store)

	// Another writer's event in an icp- stream, and the tombstone of a
	// hard-deleted stream of ours, then more events of ours.
	handWritten := srv.WriteEvent(events.StreamID(uuid.NewString()), "AddedByHand", []byte(`{"x":1}`))
	tombstone, err := srv.HardDeleteStream(streams[0])
	if err != nil {
		t.Fatal(err)
	}
	esdbEvents(t, store, 3)
	e.waitBusAt(store)

	var want []events.Recorded
	for after := uint64(0); ; {
		recs, err := store.ReadAll(context.Background(), after, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		want = append(want, recs...)
		after = recs[len(recs)-1].Position
	}
	if len(want) != 6 {
		t.Fatalf("store holds %d events of this service, want 6", len(want))
	}
	e.assertOwnBusIs(want)
	var got []uint64
	eventually(t, waitLong, func() bool {
		got = got[:0]
		for _, p := range e.relayRecords() {
			if p.Kind == PassedForeign {
				got = append(got, p.Position)
			}
		}
		return len(got) >= 2
	}, func() string { return fmt.Sprintf("records at %v", got) })
	if len(got) != 2 || got[0] != handWritten || got[1] != tombstone {
		t.Errorf("records of foreign events at %v, want %d and %d", got, handWritten, tombstone)
	}
	if st := r.Stats(); st.PassedForeign != 2 {
		t.Errorf("PassedForeign = %d, want 2", st.PassedForeign)
	}
	if err := r.Health(); err != nil {
		t.Errorf("relay not ready: %v", err)
	}
}

func TestCorruptEventOfOursInEventStoreDBHaltsTheRelay(t *testing.T) {
	e := newEnv(t, bus.StreamConfig{})
	srv, store := openESDB(t)
	esdbEvents(t, store, 2)
	r, _ := e.startRelay(Config{InstanceID: "a", Store: store})
	e.waitBusAt(store)

	// This service's envelope, broken: not foreign, corrupt.
	srv.WriteEventWithMetadata(events.StreamID(uuid.NewString()), events.TypeICPCreated, []byte(`{}`), []byte(`{"schemaVersion":x}`))
	esdbEvents(t, store, 1)
	eventually(t, waitLong, func() bool { return r.Stats().Corrupt != "" },
		func() string { return "relay did not report corruption; last error: " + r.Stats().LastError })
	if err := r.Health(); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("health %v, want not ready naming the corrupt event", err)
	}
	if got := len(e.ownBus()); got != 2 {
		t.Errorf("bus holds %d events, want the 2 before the corrupt one", got)
	}
	if st := r.Stats(); st.PassedForeign != 0 {
		t.Errorf("a corrupt event of ours was passed over as foreign")
	}
}
