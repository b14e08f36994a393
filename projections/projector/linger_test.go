package projector

import (
	"testing"
	"time"
)

func TestBatcherHoldsABatchUnderLoadUntilTheLingerOrFull(t *testing.T) {
	const max = 4
	b := newBatcher(time.Hour)
	defer b.timer.Stop()

	// No load yet: the first message goes at once.
	b.arrived(1)
	if !b.ready(1, max) {
		t.Fatal("first batch held without load")
	}
	b.sent(1)
	// A batch of one is no load either.
	b.arrived(1)
	if !b.ready(1, max) {
		t.Fatal("batch held after a batch of one")
	}
	b.sent(2)

	// After a batch of two: held from its first message on...
	b.arrived(1)
	b.arrived(2)
	if b.ready(2, max) {
		t.Fatal("batch handed over during the linger")
	}
	// ...until full,
	b.arrived(max)
	if !b.ready(max, max) {
		t.Fatal("full batch held")
	}
	b.sent(max)
	// or until the linger has passed.
	b.arrived(1)
	if b.ready(1, max) {
		t.Fatal("batch handed over during the linger")
	}
	b.expired()
	if !b.ready(1, max) {
		t.Fatal("batch held after the linger passed")
	}
	if b.ready(0, max) {
		t.Fatal("empty batch ready")
	}
}

func TestBatcherNeverHoldsWithoutALinger(t *testing.T) {
	b := newBatcher(NoLinger)
	defer b.timer.Stop()
	b.sent(100)
	b.arrived(1)
	if !b.ready(1, 4) {
		t.Fatal("batch held with NoLinger")
	}
}

// The timer fires once per held batch, and a batch handed over early
// leaves no stale tick behind for the next one.
func TestBatcherTimerFiresForAHeldBatch(t *testing.T) {
	b := newBatcher(time.Millisecond)
	defer b.timer.Stop()
	b.sent(2)
	b.arrived(1)
	select {
	case <-b.timer.C:
		b.expired()
	case <-time.After(time.Minute):
		t.Fatal("the linger's timer did not fire")
	}
	if !b.ready(1, 4) {
		t.Fatal("batch held after its timer fired")
	}
	b.sent(2)
	b.linger = time.Hour
	b.arrived(1)
	b.sent(2) // handed over full, before the timer
	select {
	case <-b.timer.C:
		t.Fatal("a stopped timer ticked")
	default:
	}
}
