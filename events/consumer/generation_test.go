package consumer_test

import (
	"context"
	"strings"
	"testing"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/consumer"
)

// Every event the relay publishes carries the event store's generation, and
// the handler sees it; a message with a malformed generation is
// dead-lettered at once with a reason naming the header.
func TestHandlerSeesTheStoreGenerationAndBadOnesAreDeadLettered(t *testing.T) {
	e := newEnv(t)
	gen, err := e.store.Generation(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c, err := consumer.New(e.config("generation"))
	if err != nil {
		t.Fatal(err)
	}
	rec := recordCreates(c)
	e.start(c)
	good := e.create(3)
	e.waitPublished()
	h := events.Headers(good[0])
	h[events.HeaderGeneration] = "not a generation\x7f"
	if _, err := e.js.PublishMsg(context.Background(), natsMsg(events.Subject(events.TypeICPCreated), h, good[0].Data)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the dead letter", func() bool { return len(e.deadLetters("generation")) == 1 })
	e.settled("generation")
	for _, ev := range rec.snapshot() {
		if ev.Generation != gen {
			t.Errorf("event %s: generation %q, want the store's %q", ev.ID, ev.Generation, gen)
		}
	}
	if rec.count() != 3 {
		t.Errorf("%d handler calls, want 3", rec.count())
	}
	if reason := e.deadLetters("generation")[0].Header.Get(events.HeaderDLQReason); !strings.Contains(reason, events.HeaderGeneration) {
		t.Errorf("reason %q does not name %s", reason, events.HeaderGeneration)
	}
}
