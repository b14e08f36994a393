package relay

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/icpservice/icp/bus"
	"github.com/icpservice/icp/events"
)

// Every message carries the store's generation; once the store has a new
// one (a realign that stopped before purging the bus), the relay refuses
// to publish after the old generation's tail.
func TestMessagesCarryTheGenerationAndANewOneIsRefusedUntilRealigned(t *testing.T) {
	e := newEnv(t, bus.StreamConfig{})
	ctx := context.Background()
	if err := e.appendEvents(ctx, 3); err != nil {
		t.Fatal(err)
	}
	gen, err := e.store.Generation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, stop := e.startRelay(Config{InstanceID: "a"})
	e.waitCaughtUp(waitLong)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, m := range e.readBus() {
		if got := m.Header.Get(events.HeaderGeneration); got != gen {
			t.Fatalf("message %d: %s %q, want the store's %q", m.Seq, events.HeaderGeneration, got, gen)
		}
	}

	if _, err := e.store.NewGeneration(ctx); err != nil {
		t.Fatal(err)
	}
	check := CheckAgreement(ctx, e.nc, e.store)
	if !errors.Is(check, ErrDiverged) || !strings.Contains(check.Error(), "generation") {
		t.Fatalf("CheckAgreement after a new generation: %v", check)
	}
	r, _ := e.startRelay(Config{InstanceID: "b"})
	eventually(t, waitLong, func() bool { return strings.Contains(r.Stats().Diverged, "generation") },
		func() string { return "no divergence reported: " + r.Stats().LastError })
	if r.Ready() {
		t.Error("a relay whose store changed generation under the bus reports ready")
	}
}
