package sqlitestore

import (
	"testing"

	"github.com/icpservice/icp/events"
)

// Past its size the tail keeps the latest events and forgets the oldest: a
// follower behind them is sent to the file, one among them gets the run
// from the next position on.
func TestTailKeepsTheLatestRun(t *testing.T) {
	var tl tail
	var pos uint64
	for range 1000 {
		commit := make([]events.Recorded, 7)
		for i := range commit {
			pos++
			commit[i] = events.Recorded{Position: pos}
		}
		tl.add(commit)
	}
	if len(tl.recs) < tailSize || len(tl.recs) >= 2*tailSize {
		t.Fatalf("tail holds %d events, want between %d and %d", len(tl.recs), tailSize, 2*tailSize)
	}
	if _, ok := tl.after(pos-uint64(len(tl.recs))-1, 10); ok {
		t.Fatal("a follower behind the tail was not sent to the file")
	}
	recs, ok := tl.after(pos-100, 1000)
	if !ok || len(recs) != 100 {
		t.Fatalf("after(head-100): %d events, %v; want 100", len(recs), ok)
	}
	for i, r := range recs {
		if r.Position != pos-100+uint64(i)+1 {
			t.Fatalf("event %d at position %d, want %d", i, r.Position, pos-100+uint64(i)+1)
		}
	}
	if _, ok := tl.after(pos, 10); ok {
		t.Fatal("a follower at the head was given events")
	}
	// A break in the positions (another process's commit) starts over.
	tl.add([]events.Recorded{{Position: pos + 5}})
	if _, ok := tl.after(pos-1, 10); ok {
		t.Fatal("events before a break were handed out across it")
	}
}
