package sqlitestore

import (
	"sync"

	"github.com/icpservice/icp/events"
)

// tailSize is how many events the tail keeps at least (at most twice as
// many): enough for a follower that keeps up, without holding megabytes of
// payloads.
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
//
// The relay's follower and the projector's check of bus messages
// (ReadRecent) both take from it.
type tail struct {
	mu   sync.Mutex
	recs []events.Recorded
}

// add appends the events of one commit, in position order. The run is cut
// back to its last tailSize events once it holds twice that many, so that
// the copy is paid once per tailSize events, not on every commit.
func (t *tail) add(recs []events.Recorded) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range recs {
		if n := len(t.recs); n > 0 && r.Position != t.recs[n-1].Position+1 {
			// Start the run over at the first event after the break.
			clear(t.recs)
			t.recs = t.recs[:0]
		}
		t.recs = append(t.recs, r)
	}
	if len(t.recs) >= 2*tailSize {
		n := copy(t.recs, t.recs[len(t.recs)-tailSize:])
		clear(t.recs[n:]) // drop the payloads of the events cut
		t.recs = t.recs[:n]
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

var _ events.RecentReader = (*Store)(nil)

// ReadRecent implements events.RecentReader from the tail: the projector
// checks each bus message against the event it names, which this process
// has usually just committed, without reading it back from the file
// (measured by icpctl load; docs/performance.md). A limit below 1 gets
// nothing.
func (s *Store) ReadRecent(after uint64, limit int) ([]events.Recorded, bool) {
	if limit <= 0 || s.isClosing() {
		return nil, false
	}
	return s.tail.after(after, limit)
}
