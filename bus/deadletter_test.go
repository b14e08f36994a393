package bus

import (
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/events"
)

// deadLetterTwice writes the dead letter of one message twice, as a
// consumer that died before acknowledging the original does, and returns
// the original and every dead letter the projector's durable then has.
func deadLetterTwice(t *testing.T, js jetstream.JetStream, reason string) (Original, []DeadLetter) {
	t.Helper()
	ctx := context.Background()
	if err := EnsureDLQStream(ctx, js); err != nil {
		t.Fatal(err)
	}
	h := nats.Header{}
	h.Set(events.HeaderID, "ev-1")
	h.Set(nats.MsgIdHdr, "ev-1")
	h.Set(nats.ExpectedLastSeqHdr, "41")
	h.Set(events.HeaderDLQReason, "forged")
	h.Set(events.HeaderDLQBy, events.DLQByConsumer)
	o := Original{Header: h, Data: []byte(`{"x":1}`), Subject: events.Subject(events.TypeICPCreated),
		Stream: events.BusStream, StreamSeq: 42, Deliveries: 3}
	d := NewDeadLetterer(js, "projector", events.DLQByProjector)
	for range 2 {
		if err := d.Publish(ctx, o, reason); err != nil {
			t.Fatal(err)
		}
	}
	var got []DeadLetter
	if err := EachDeadLetter(ctx, js, "projector", 0, func(dl DeadLetter) error { got = append(got, dl); return nil }); err != nil {
		t.Fatal(err)
	}
	return o, got
}

// A dead letter keeps the original's body and headers (less JetStream's and
// any dead-letter header a forger put on it), adds the one schema, and is
// stored once however often it is written.
func TestDeadLetterSchemaIsOneAndStoredOnce(t *testing.T) {
	_, js := newBus(t)
	o, got := deadLetterTwice(t, js, "first line\r\nsecond line "+strings.Repeat("é", 1000))
	if len(got) != 1 {
		t.Fatalf("%d dead letters, want 1 (the second write has the same id)", len(got))
	}
	dl := got[0]
	want := map[string]string{
		events.HeaderID: "ev-1", events.HeaderDLQBy: events.DLQByProjector, events.HeaderDLQConsumer: "projector",
		events.HeaderDLQDeliveries: "3", events.HeaderDLQStream: events.BusStream, events.HeaderDLQStreamSeq: "42",
		events.HeaderDLQSubject: o.Subject, nats.MsgIdHdr: "projector-ICP_EVENTS-42", nats.ExpectedLastSeqHdr: "",
	}
	for k, v := range want {
		if dl.Get(k) != v {
			t.Errorf("header %s = %q, want %q", k, dl.Get(k), v)
		}
	}
	if r := dl.Get(events.HeaderDLQReason); strings.ContainsAny(r, "\r\n") || len(r) > 1024 || !strings.HasPrefix(r, "first line  second line") {
		t.Errorf("reason %q: want one line of at most 1024 bytes", r)
	}
	if len(dl.Header.Values(events.HeaderDLQReason)) != 1 || dl.By() != events.DLQByProjector || string(dl.Data) != `{"x":1}` {
		t.Errorf("dead letter %v %q: want the projector's one reason and the original body", dl.Header, dl.Data)
	}
}

// A re-driven dead letter goes back onto ICP_REPLAY without the dead-letter
// and JetStream headers, and once removed it is gone.
func TestRedriveAndRemoveOfADeadLetter(t *testing.T) {
	_, js := newBus(t)
	ctx := context.Background()
	_, got := deadLetterTwice(t, js, "bad")
	if len(got) != 1 {
		t.Fatalf("%d dead letters, want 1", len(got))
	}
	m, id, err := RedriveMsg(got[0])
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != events.ReplaySubjectPrefix+events.TypeICPCreated || !strings.HasPrefix(id, "redrive-ICP_DLQ-") ||
		m.Header.Get(events.HeaderDLQReason) != "" || m.Header.Get(nats.MsgIdHdr) != "" || m.Header.Get(events.HeaderID) != "ev-1" {
		t.Errorf("re-drive %s %q %v", m.Subject, id, m.Header)
	}
	if err := RemoveDeadLetter(ctx, js, got[0]); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := EachDeadLetter(ctx, js, "projector", 0, func(DeadLetter) error { n++; return nil }); err != nil || n != 0 {
		t.Fatalf("after removal: %d dead letters, %v", n, err)
	}
}

func TestMalformedNamesEveryRepeatedHeaderButJetStreams(t *testing.T) {
	h := nats.Header{"ce-id": {"a", "b"}, "ce-type": {"x"}, "Nats-Msg-Id": {"1", "2"}, "zz": {"1", "2", "3"}, "skip": {"1", "2"}}
	got := Malformed(h, func(k string) bool { return k == "skip" })
	if got != "header ce-id has 2 values; header zz has 3 values" {
		t.Errorf("Malformed = %q", got)
	}
	if Malformed(nats.Header{"ce-id": {"a"}}, nil) != "" {
		t.Error("a header given once is not malformed")
	}
}
