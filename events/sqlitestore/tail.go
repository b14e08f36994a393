package sqlitestore

import (
	"sync"

	"github.com/icpservice/icp/events"
)

// tailSize bounds the events the tail keeps: enough for a follower that
// keeps up, without holding megabytes of payloads.
const tailSize = 1024

// tail keeps the events of this process's latest commits, as committed, so
// that a follower that has caught up takes them from memory instead of
// reading back from the file what the writer has just written.
//
// It only ever holds a run of contiguous positions. Positions are handed
// out in commit order, so a follower at position p that finds p+1 in the
// tail is given everything after p, with no hole: an event of another
// process sharing the file would have broken the run, which starts over
// then, and the follower reads the file.
type tail struct {
	mu   sync.Mutex
	recs []events.Recorded
}

// add appends the events of one commit, in position order.
func (t *tail) add(recs []events.Recorded) {
	if len(recs) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, r := range recs {
		prev := uint64(0)
		switch {
		case i > 0:
			prev = recs[i-1].Position
		case len(t.recs) > 0:
			prev = t.recs[len(t.recs)-1].Position
		default:
			prev = r.Position - 1
		}
		if r.Position != prev+1 {
			// Start the run over at the first event after the break.
			t.recs = t.recs[:0]
		}
		t.recs = append(t.recs, r)
	}
	if over := len(t.recs) - tailSize; over > 0 {
		t.recs = append(t.recs[:0:0], t.recs[over:]...)
	}
}

// after returns at most limit events with Position > pos, and true, when
// the tail holds pos+1; otherwise nil and false (the caller reads the file).
func (t *tail) after(pos uint64, limit int) ([]events.Recorded, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.recs) == 0 {
		return nil, false
	}
	first := t.recs[0].Position
	if pos+1 < first || pos >= t.recs[len(t.recs)-1].Position {
		return nil, false
	}
	i := int(pos + 1 - first)
	n := min(limit, len(t.recs)-i)
	out := make([]events.Recorded, n)
	copy(out, t.recs[i:i+n])
	return out, true
}
