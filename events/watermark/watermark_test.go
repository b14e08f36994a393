package watermark_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/watermark"
	"github.com/icpservice/icp/internal/natsserver/natstest"
)

type env struct {
	t    *testing.T
	js   jetstream.JetStream
	str  jetstream.Stream
	cons jetstream.Consumer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := natstest.Start(t, t.TempDir())
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	str, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: events.BusStream, Subjects: []string{events.BusSubjects}})
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, events.BusStream, jetstream.ConsumerConfig{Durable: "d", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, js: js, str: str, cons: cons}
}

// publish puts messages whose events sit at positions 10×seq.
func (e *env) publish(n int) {
	e.t.Helper()
	for range n {
		info, err := e.str.Info(context.Background())
		if err != nil {
			e.t.Fatal(err)
		}
		m := nats.NewMsg(events.BusSubjectPrefix + events.TypeICPCreated)
		m.Header.Set(events.HeaderPosition, strconv.FormatUint(10*(info.State.LastSeq+1), 10))
		if _, err := e.js.PublishMsg(context.Background(), m); err != nil {
			e.t.Fatal(err)
		}
	}
}

// ackAll fetches and acknowledges n messages, waiting for each ack.
func (e *env) ackAll(n int) {
	e.t.Helper()
	batch, err := e.cons.Fetch(n, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		e.t.Fatal(err)
	}
	got := 0
	for m := range batch.Messages() {
		if err := m.DoubleAck(context.Background()); err != nil {
			e.t.Fatal(err)
		}
		got++
	}
	if got != n {
		e.t.Fatalf("fetched %d messages, want %d", got, n)
	}
}

func (e *env) tracker() *watermark.Tracker {
	e.t.Helper()
	tr, err := watermark.Open(context.Background(), e.js, events.BusStream, "d", watermark.HeaderPosition)
	if err != nil {
		e.t.Fatal(err)
	}
	return tr
}

func (e *env) mark(tr *watermark.Tracker) watermark.Mark {
	e.t.Helper()
	m, _, err := tr.Mark(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// The mark follows the ack floor while the stream holds everything after
// it; once the stream dropped messages after it, a purge having moved the
// ack floor over them, the mark stays and the gap is reported until closed.
func TestAPurgeThatMovedTheAckFloorIsStillAGap(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tr := e.tracker()
	e.publish(3)
	e.ackAll(3)
	if _, found, err := tr.Check(ctx); err != nil || found {
		t.Fatalf("Check: gap %v, %v", found, err)
	}
	if m := e.mark(tr); m != (watermark.Mark{Position: 30, Seq: 3}) {
		t.Fatalf("mark %+v, want position 30 at seq 3", m)
	}

	e.publish(3) // seqs 4, 5, 6: never delivered
	if err := e.str.Purge(ctx, jetstream.WithPurgeSequence(6)); err != nil {
		t.Fatal(err)
	}
	info, err := e.cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.AckFloor.Stream != 5 {
		t.Fatalf("ack floor %d after the purge; this test relies on the server moving it to 5", info.AckFloor.Stream)
	}
	for range 2 { // reported until closed
		gap, found, err := tr.Check(ctx)
		if err != nil || !found {
			t.Fatalf("Check after the purge: gap %v, %v", found, err)
		}
		if want := (watermark.Gap{After: watermark.Mark{Position: 30, Seq: 3}, FirstSeq: 6, FirstPosition: 60}); gap != want {
			t.Fatalf("gap %+v, want %+v", gap, want)
		}
	}
	gap, _, _ := tr.Check(ctx)
	if err := tr.Close(ctx, gap, 50); err != nil {
		t.Fatal(err)
	}
	if m := e.mark(tr); m != (watermark.Mark{Position: 50, Seq: 5}) {
		t.Fatalf("mark after close %+v", m)
	}
	if _, found, err := tr.Check(ctx); err != nil || found {
		t.Fatalf("Check after close: gap %v, %v", found, err)
	}
	e.ackAll(1)
	if _, found, err := tr.Check(ctx); err != nil || found {
		t.Fatalf("Check: gap %v, %v", found, err)
	}
	if m := e.mark(tr); m != (watermark.Mark{Position: 60, Seq: 6}) {
		t.Fatalf("mark %+v, want position 60 at seq 6", m)
	}
}

// A value in the bucket that is not a mark counts as none: the whole
// history before the stream's first message is the gap. A mark never moves
// down, whoever writes it.
func TestAnUnreadableMarkMeansEverythingAndMarksOnlyMoveUp(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tr := e.tracker()
	e.publish(4)
	if err := e.str.Purge(ctx, jetstream.WithPurgeSequence(3)); err != nil {
		t.Fatal(err)
	}
	kv, err := e.js.KeyValue(ctx, watermark.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, events.BusStream+".d", []byte(`{"position":`)); err != nil {
		t.Fatal(err)
	}
	gap, found, err := tr.Check(ctx)
	if err != nil || !found || gap != (watermark.Gap{FirstSeq: 3, FirstPosition: 30}) {
		t.Fatalf("Check: %+v %v %v", gap, found, err)
	}
	if err := tr.Close(ctx, gap, 20); err != nil {
		t.Fatal(err)
	}
	other := e.tracker()
	if err := other.Close(ctx, watermark.Gap{FirstSeq: 2}, 10); err != nil {
		t.Fatal(err)
	}
	if m := e.mark(tr); m != (watermark.Mark{Position: 20, Seq: 2}) {
		t.Fatalf("mark %+v, want it kept at position 20, seq 2", m)
	}
	// Each field moves up on its own.
	if err := other.Close(ctx, watermark.Gap{FirstSeq: 4}, 10); err != nil {
		t.Fatal(err)
	}
	if m := e.mark(tr); m != (watermark.Mark{Position: 20, Seq: 3}) {
		t.Fatalf("mark %+v, want position 20, seq 3", m)
	}
}

// A stream younger than the mark (created again, or restored from an older
// copy) starts its sequences again: the mark keeps its position and follows
// the new sequences, and a loss in the new stream is still seen.
func TestAYoungerStreamRestartsTheSequences(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tr := e.tracker()
	e.publish(5)
	e.ackAll(5)
	if _, _, err := tr.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if m := e.mark(tr); m.Seq != 5 {
		t.Fatalf("mark %+v", m)
	}
	if err := e.js.DeleteStream(ctx, events.BusStream); err != nil {
		t.Fatal(err)
	}
	var err error
	if e.str, err = e.js.CreateStream(ctx, jetstream.StreamConfig{Name: events.BusStream, Subjects: []string{events.BusSubjects}}); err != nil {
		t.Fatal(err)
	}
	if e.cons, err = e.js.CreateOrUpdateConsumer(ctx, events.BusStream, jetstream.ConsumerConfig{Durable: "d", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	e.publish(3) // positions 10, 20, 30 again
	if err := e.str.Purge(ctx, jetstream.WithPurgeSequence(3)); err != nil {
		t.Fatal(err)
	}
	gap, found, err := tr.Check(ctx)
	if err != nil || !found {
		t.Fatalf("Check: %v %v", found, err)
	}
	if want := (watermark.Gap{After: watermark.Mark{Position: 50}, FirstSeq: 3}); gap != want {
		t.Fatalf("gap %+v, want %+v (the first message's position is below the mark's: unknown)", gap, want)
	}
}
