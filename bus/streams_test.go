package bus

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/events"
)

func TestStreamConfigValidationReportsEveryProblem(t *testing.T) {
	err := StreamConfig{Duplicates: time.Hour, MaxAge: time.Minute, Replicas: 7, MaxBytes: 1000}.Validate()
	if err == nil || !strings.Contains(err.Error(), "Duplicates") || !strings.Contains(err.Error(), "Replicas") || !strings.Contains(err.Error(), "MaxBytes") {
		t.Errorf("stream config error: %v", err)
	}
}

func TestEnsureStreamsIsIdempotentAndAppliesSettings(t *testing.T) {
	nc, js := newBus(t)
	ctx := context.Background()
	cfg := StreamConfig{Duplicates: time.Minute, MaxAge: 24 * time.Hour, MaxBytes: 64 << 20}
	for range 2 {
		if err := EnsureStreams(ctx, nc, cfg); err != nil {
			t.Fatal(err)
		}
	}
	s, err := js.Stream(ctx, events.BusStream)
	if err != nil {
		t.Fatal(err)
	}
	c := s.CachedInfo().Config
	if c.Duplicates != time.Minute || c.MaxAge != 24*time.Hour || c.MaxBytes != 64<<20 || c.Storage != jetstream.FileStorage ||
		len(c.Subjects) != 1 || c.Subjects[0] != events.BusSubjects {
		t.Errorf("ICP_EVENTS config %+v", c)
	}
	d, err := js.Stream(ctx, events.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	if dc := d.CachedInfo().Config; len(dc.Subjects) != 1 || dc.Subjects[0] != events.DLQSubjects || dc.Storage != jetstream.FileStorage ||
		dc.Duplicates != DLQDuplicates || dc.MaxAge != DLQMaxAge || dc.MaxBytes != DLQMaxBytes {
		t.Errorf("ICP_DLQ config %+v", dc)
	}
	r, err := js.Stream(ctx, events.RelayDLQStream)
	if err != nil {
		t.Fatal(err)
	}
	if rc := r.CachedInfo().Config; rc.MaxAge != RelayDLQMaxAge || rc.MaxBytes != RelayDLQMaxBytes {
		t.Errorf("ICP_RELAY_DLQ config %+v", rc)
	}
}

func TestEnsureStreamsUpdatesAStreamOfAnEarlierReleaseInPlace(t *testing.T) {
	nc, js := newBus(t)
	ctx := context.Background()
	// The configuration earlier releases created, without a per-subject limit.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:       events.BusStream,
		Subjects:   []string{events.BusSubjects},
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.LimitsPolicy,
		Discard:    jetstream.DiscardOld,
		Duplicates: DefaultDuplicates,
	}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := js.Publish(ctx, events.Subject(events.TypeICPCreated), []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := EnsureStreams(ctx, nc, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, events.BusStream)
	if err != nil {
		t.Fatal(err)
	}
	info := s.CachedInfo()
	if info.Config.MaxMsgsPerSubject != perSubjectLimit {
		t.Errorf("per-subject limit %d, want %d", info.Config.MaxMsgsPerSubject, int64(perSubjectLimit))
	}
	if info.Config.MaxBytes != DefaultMaxBytes {
		t.Errorf("size bound %d, want the default %d", info.Config.MaxBytes, DefaultMaxBytes)
	}
	if info.State.Msgs != 3 || info.State.FirstSeq != 1 || info.State.LastSeq != 3 {
		t.Errorf("stream state after the update %+v, want the 3 messages it held", info.State)
	}
}

// A dead-letter stream of an earlier release, with no limits, is given the
// limits; one an operator bounded keeps its own.
func TestEnsureDLQStreamBoundsOnlyAnUnboundedStream(t *testing.T) {
	_, js := newBus(t)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: events.DLQStream, Subjects: []string{events.DLQSubjects}}); err != nil {
		t.Fatal(err)
	}
	if err := EnsureDLQStream(ctx, js); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, events.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	if c := s.CachedInfo().Config; c.MaxAge != DLQMaxAge || c.MaxBytes != DLQMaxBytes {
		t.Fatalf("unbounded stream after EnsureDLQStream: age %s, bytes %d", c.MaxAge, c.MaxBytes)
	}
	c := s.CachedInfo().Config
	c.MaxAge = time.Hour
	if _, err := js.UpdateStream(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := EnsureDLQStream(ctx, js); err != nil {
		t.Fatal(err)
	}
	if s, err = js.Stream(ctx, events.DLQStream); err != nil || s.CachedInfo().Config.MaxAge != time.Hour {
		t.Fatalf("operator's age replaced: %v %+v", err, s.CachedInfo().Config)
	}
}

func TestBackoffDoublesPerDeliveryUpToItsCap(t *testing.T) {
	b := Backoff{First: 100, Max: 1000}
	for delivered, want := range map[uint64]int64{0: 100, 1: 100, 2: 200, 3: 400, 4: 800, 5: 1000, 60: 1000} {
		if got := b.WaitTime(delivered); int64(got) != want {
			t.Errorf("delivery %d: wait %d, want %d", delivered, got, want)
		}
	}
}
