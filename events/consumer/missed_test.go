package consumer_test

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/consumer"
)

// A worker that was down while ICP_EVENTS dropped events it never got learns
// which ones, by an error log, Stats.Missed and Config.OnMissed, with the
// icpctl command that publishes them again; running that command and
// reading ICP_REPLAY gives it exactly those events back.
func TestWorkerLearnsOfEventsTheStreamDroppedAndGetsThemAgain(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	before := e.create(3)
	e.waitPublished()
	// A new durable on a stream that dropped its oldest message: that one
	// was never meant for it, and is not reported.
	s, err := e.js.Stream(ctx, events.BusStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSequence(2)); err != nil {
		t.Fatal(err)
	}
	kept := len(before) - 1

	handled := &recorder{}
	reports := make(chan consumer.Missed, 4)
	worker := func() *consumer.Consumer {
		cfg := e.config("audit")
		cfg.OnMissed = func(_ context.Context, m consumer.Missed) error {
			reports <- m
			return nil
		}
		c, err := consumer.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.OnCreated(func(_ context.Context, ev consumer.Event[domain.ICPCreatedV1]) error {
			handled.add(ev.Envelope)
			return nil
		})
		return c
	}
	first := e.start(worker())
	eventually(t, "the first events handled", func() bool { return handled.count() == kept })
	e.settled("audit")
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}
	if s := first.Stats(); s.Missed != 0 {
		t.Fatalf("missed reported with nothing dropped: %+v", s)
	}

	// While the worker is down: five events, of which the stream drops the
	// first three (as MaxAge or MaxMsgs would), then one more.
	down := e.create(5)
	e.waitPublished()
	dropFrom := uint64(len(before)) + 1
	if err := s.Purge(ctx, jetstream.WithPurgeSequence(dropFrom+3)); err != nil {
		t.Fatal(err)
	}
	after := e.create(1)
	e.waitPublished()

	second := e.start(worker())
	var m consumer.Missed
	select {
	case m = <-reports:
	case <-time.After(budget):
		t.Fatal("no missed events reported")
	}
	if len(reports) != 0 {
		t.Fatalf("%d more reports", len(reports))
	}
	want := consumer.Missed{FromPosition: before[2].Position + 1, ToPosition: down[3].Position - 1, FromSeq: dropFrom, ToSeq: dropFrom + 2}
	if m != want {
		t.Fatalf("reported %+v, want %+v", m, want)
	}
	if m.FromPosition > down[0].Position || m.ToPosition < down[2].Position {
		t.Fatalf("reported range %d-%d does not cover the dropped positions %d-%d", m.FromPosition, m.ToPosition, down[0].Position, down[2].Position)
	}
	eventually(t, "the events the stream kept handled", func() bool { return handled.count() == kept+3 })
	e.settled("audit")
	if last := handled.snapshot()[kept+2]; last.ID != after[0].ID {
		t.Fatalf("last handled %s, want the event created after the loss %s", last.ID, after[0].ID)
	}
	if st := second.Stats(); st.Missed != 1 {
		t.Fatalf("stats %+v, want Missed 1", st)
	}

	// The documented way back: the command the report names, and a Replay
	// worker.
	args := strings.Fields(m.Command())
	if args[0] != "icpctl" {
		t.Fatalf("command %q", m.Command())
	}
	var stderr bytes.Buffer
	cmd := exec.Command(buildIcpctl(t), append(args[1:], "--data-dir", e.dir, "--nats", e.srv.ClientURL(), "--progress", "none")...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", m.Command(), err, stderr.String())
	}
	cfg := e.config("audit")
	cfg.Replay = true
	replay, err := consumer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := &recorder{}
	replay.OnCreated(func(_ context.Context, ev consumer.Event[domain.ICPCreatedV1]) error {
		got.add(ev.Envelope)
		return nil
	})
	e.start(replay)
	eventually(t, "the missed events replayed", func() bool { return got.count() >= 3 })
	e.settledOn(consumer.ReplayStream, "audit")
	ids := map[string]bool{}
	for _, ev := range got.snapshot() {
		ids[ev.ID] = true
	}
	if len(got.snapshot()) != 3 || !ids[down[0].ID] || !ids[down[1].ID] || !ids[down[2].ID] {
		t.Fatalf("replayed %+v, want the three dropped events", got.snapshot())
	}
}
