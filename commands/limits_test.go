package commands_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/icpservice/icp/commands"
	"github.com/icpservice/icp/events"
)

func padded(n int) string {
	return `{"name":"Padded","leadProviderCriteria":[{"provider":"baseProvider","filters":{"pad":"` + strings.Repeat("x", n) + `"}}]}`
}

func head(t *testing.T, s events.Store) uint64 {
	t.Helper()
	h, err := s.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestEventsTheBusCannotCarryAreNotRecorded(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	var maxPayload atomic.Int64 // 0: the bus was not reached yet
	h := commands.NewHandler(st, commands.WithBusLimit(maxPayload.Load))

	_, err := h.Create(ctx, alice, parse(t, padded(10), alice), "", commands.RequestMeta{})
	if !errors.Is(err, commands.ErrBusLimitUnknown) || !errors.Is(err, events.ErrUnavailable) {
		t.Fatalf("create before the bus's limit is known: %v, want ErrBusLimitUnknown (unavailable)", err)
	}
	if h.MaxEventData() != 0 {
		t.Fatalf("MaxEventData %d before the limit is known, want 0", h.MaxEventData())
	}

	maxPayload.Store(events.BusHeaderRoom + 2000)
	if got := h.MaxEventData(); got != 2000 {
		t.Fatalf("MaxEventData %d, want the bus's limit less its header room, 2000", got)
	}
	_, err = h.Create(ctx, alice, parse(t, padded(2000), alice), "", commands.RequestMeta{})
	var tl *commands.TooLargeError
	if !errors.As(err, &tl) || tl.Limit != events.BusHeaderRoom+2000 || tl.Size <= tl.Limit {
		t.Fatalf("create of an event the bus cannot carry: %v, want a TooLargeError", err)
	}
	if n := head(t, st); n != 0 {
		t.Fatalf("refused creates recorded events: head %d", n)
	}
	res, err := h.Create(ctx, alice, parse(t, padded(10), alice), "", commands.RequestMeta{})
	if err != nil {
		t.Fatalf("small create: %v", err)
	}
	// An update that would make the event too large is refused too; the
	// ICP stays as it was.
	id := res.State.ICP.ID
	upd, err := commands.ParseUpdate([]byte(`{"description":"` + strings.Repeat("d", 1900) + `","name":"` + strings.Repeat("n", 200) + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	maxPayload.Store(events.BusHeaderRoom + 1500)
	if _, err := h.Update(ctx, alice, id, upd, nil, commands.RequestMeta{}); !errors.As(err, &tl) {
		t.Fatalf("update of an event the bus cannot carry: %v, want a TooLargeError", err)
	}
	if n := head(t, st); n != res.Position {
		t.Fatalf("a refused update recorded events: head %d, want %d", n, res.Position)
	}
	if _, err := h.Delete(ctx, alice, id, nil, commands.RequestMeta{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
}

func TestICPsTheReadModelCannotStoreAreNotRecorded(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	h := commands.NewHandler(st, commands.WithMaxDocBytes(1000))
	var ve *commands.ValidationError
	if _, err := h.Create(ctx, alice, parse(t, padded(1000), alice), "", commands.RequestMeta{}); !errors.As(err, &ve) {
		t.Fatalf("create of an ICP longer than the read model stores: %v, want a ValidationError", err)
	}
	if n := head(t, st); n != 0 {
		t.Fatalf("a refused create recorded events: head %d", n)
	}
	res, err := h.Create(ctx, alice, parse(t, padded(300), alice), "", commands.RequestMeta{})
	if err != nil {
		t.Fatalf("create that fits: %v", err)
	}
	// Each field fits on its own; together they would not.
	upd, err := commands.ParseUpdate([]byte(`{"description":"` + strings.Repeat("d", 600) + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Update(ctx, alice, res.State.ICP.ID, upd, nil, commands.RequestMeta{}); !errors.As(err, &ve) {
		t.Fatalf("update making the ICP longer than the read model stores: %v, want a ValidationError", err)
	}
	if n := head(t, st); n != res.Position {
		t.Fatalf("a refused update recorded events: head %d, want %d", n, res.Position)
	}
}
