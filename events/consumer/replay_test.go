package consumer_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/consumer"
	"github.com/icpservice/icp/events/relay"
)

// icpctl is the real icpctl binary, built once per test binary by the tests
// that run it, and removed by TestMain.
var icpctl struct {
	once      sync.Once
	dir, path string
	err       error
}

func buildIcpctl(t *testing.T) string {
	t.Helper()
	icpctl.once.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		if icpctl.dir, icpctl.err = os.MkdirTemp("", "consumer-test-icpctl-"); icpctl.err != nil {
			return
		}
		icpctl.path = filepath.Join(icpctl.dir, "icpctl")
		out, err := exec.Command(goBin, "build", "-o", icpctl.path, "github.com/icpservice/icp/cmd/icpctl").CombinedOutput()
		if err != nil {
			icpctl.err = &buildError{err: err, out: out}
		}
	})
	if icpctl.err != nil {
		t.Fatalf("build icpctl: %v", icpctl.err)
	}
	return icpctl.path
}

type buildError struct {
	err error
	out []byte
}

func (b *buildError) Error() string { return b.err.Error() + ":\n" + string(b.out) }

// republish runs `icpctl republish` on the test's data directory and bus,
// and returns what it printed on stdout.
func (e *env) republish(t *testing.T, from uint64) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(buildIcpctl(t), "republish", "--data-dir", e.dir, "--nats", e.srv.ClientURL(),
		"--from-position", strconv.FormatUint(from, 10), "--progress", "none")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("icpctl republish: %v\n%s", err, stderr.String())
	}
	return stdout.String()
}

// A downstream that lost data gets it again: `icpctl republish
// --from-position P` puts the events from P on ICP_REPLAY, and a worker
// consuming it (Config.Replay) gets each of them once, in store order,
// through the same typed handlers, while a live worker of the same name on
// ICP_EVENTS gets none of them again and the relay's resume point stays.
// Republishing again within the duplicate window delivers nothing. An event
// no release can read is dead-lettered from the replay stream as it is from
// the live one.
func TestReplayWorkerGetsRepublishedEventsOnceInStoreOrder(t *testing.T) {
	e := newEnv(t)
	created := e.create(8)
	id := created[2].ICPID()
	updated := e.appendRaw(id, 1, events.TypeICPUpdated, 1,
		`{"id":"`+id+`","updatedAt":"2025-01-01T00:00:00.000Z","updatedBy":"user_worker","changes":{"name":"renamed"}}`)
	deleted := e.appendRaw(id, 2, events.TypeICPDeleted, 1,
		`{"id":"`+id+`","deletedAt":"2025-01-01T00:00:01.000Z","deletedBy":"user_worker"}`)
	corrupt := e.appendRaw(uuid.NewString(), 0, events.TypeICPCreated, 1, `{"icp":`)
	more := e.create(4)
	e.waitPublished()
	ctx := context.Background()
	busBefore, err := relay.BusPosition(ctx, e.nc)
	if err != nil {
		t.Fatal(err)
	}

	// Events from the fourth create on, in store order; the corrupt one is
	// dead-lettered instead of handled.
	from := created[3].Position
	want := append(append(slices.Clone(created[3:]), updated, deleted), more...)

	handlers := func(c *consumer.Consumer, rec *recorder) {
		c.OnCreated(func(_ context.Context, ev consumer.Event[domain.ICPCreatedV1]) error {
			rec.add(ev.Envelope)
			return nil
		})
		c.OnUpdated(func(_ context.Context, ev consumer.Event[domain.ICPUpdatedV1]) error {
			if ev.Payload.Changes.Name.V != "renamed" {
				t.Errorf("update payload %+v", ev.Payload)
			}
			rec.add(ev.Envelope)
			return nil
		})
		c.OnDeleted(func(_ context.Context, ev consumer.Event[domain.ICPDeletedV1]) error {
			rec.add(ev.Envelope)
			return nil
		})
	}
	live, err := consumer.New(e.config("audit"))
	if err != nil {
		t.Fatal(err)
	}
	liveRec := &recorder{}
	handlers(live, liveRec)
	e.start(live)
	liveWant := len(created) + 2 + len(more)
	eventually(t, "the live worker to handle the history", func() bool { return liveRec.count() >= liveWant })
	e.settled("audit")

	// The replay worker starts before ICP_REPLAY exists and waits for it.
	cfg := e.config("audit")
	cfg.Replay = true
	replay, err := consumer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	handlers(replay, rec)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- replay.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("replay Run: %v", err)
		}
	})

	out := e.republish(t, from)
	if !strings.Contains(out, "republished "+strconv.Itoa(len(want)+1)+" events") {
		t.Fatalf("republish printed %q", out)
	}
	eventually(t, "the replay worker to handle the republished events", func() bool { return rec.count() >= len(want) })
	info := e.settledOn(consumer.ReplayStream, "audit")

	got := rec.snapshot()
	if len(got) != len(want) {
		t.Fatalf("%d handler calls, want %d", len(got), len(want))
	}
	for i, ev := range got {
		w := want[i]
		if ev.ID != w.ID || ev.Position != w.Position || ev.Version != w.Version || ev.Type != w.Type || ev.ICPID != w.ICPID() {
			t.Fatalf("call %d: event %s %s v%d at %d, want %s %s v%d at %d", i, ev.ID, ev.Type, ev.Version, ev.Position, w.ID, w.Type, w.Version, w.Position)
		}
		if ev.Stream != consumer.ReplayStream || ev.Delivery != 1 || ev.Metadata.Tenant != "org_worker" {
			t.Fatalf("call %d: envelope %+v", i, ev)
		}
	}
	if s := replay.Stats(); s.Handled != uint64(len(want)) || s.DeadLettered != 1 || s.Retried != 0 {
		t.Errorf("replay stats %+v", s)
	}
	if info.NumRedelivered != 0 || info.AckFloor.Stream != uint64(len(want)+1) {
		t.Errorf("replay durable: %d redelivered, ack floor %d; want 0 and %d", info.NumRedelivered, info.AckFloor.Stream, len(want)+1)
	}
	// One copy from each stream, told apart by icp-dlq-stream and by id.
	dl := e.deadLetters("audit")
	if len(dl) != 2 {
		t.Fatalf("%d dead letters, want one per stream", len(dl))
	}
	for i, stream := range []string{events.BusStream, consumer.ReplayStream} {
		h := dl[i].Header
		if h.Get(events.HeaderID) != corrupt.ID || h.Get(consumer.HeaderDLQStream) != stream ||
			h.Get(nats.MsgIdHdr) != "audit-"+stream+"-"+h.Get(consumer.HeaderDLQStreamSeq) {
			t.Fatalf("dead letter %d: %v", i, h)
		}
	}

	// The live side saw nothing again and the relay's point did not move.
	if n := liveRec.count(); n != liveWant {
		t.Errorf("the live worker handled %d events, want %d", n, liveWant)
	}
	for _, ev := range liveRec.snapshot() {
		if ev.Stream != events.BusStream {
			t.Fatalf("live call from stream %s", ev.Stream)
		}
	}
	if p, err := relay.BusPosition(ctx, e.nc); err != nil || p != busBefore {
		t.Errorf("bus position %d (%v), want %d", p, err, busBefore)
	}

	// Again inside the duplicate window: JetStream keeps nothing new, so
	// nothing can be delivered.
	out = e.republish(t, from)
	if !strings.Contains(out, ": 0 stored, "+strconv.Itoa(len(want)+1)+" already held") {
		t.Fatalf("second republish printed %q", out)
	}
	if st := e.streamState(consumer.ReplayStream); st.LastSeq != uint64(len(want)+1) {
		t.Fatalf("%s grew to %d messages", consumer.ReplayStream, st.LastSeq)
	}
	e.settledOn(consumer.ReplayStream, "audit")
	if n := rec.count(); n != len(want) {
		t.Errorf("%d replay handler calls after the second republish, want %d", n, len(want))
	}
}
