package esdbtest

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// record is one event in the server's log. Records are immutable once
// appended, so a reader may keep them after releasing the lock.
type record struct {
	id          uuid.UUID
	stream      string
	revision    uint64 // 0-based number within its stream
	position    uint64 // commit position == prepare position
	eventType   string
	contentType string
	created     int64 // .NET ticks (100 ns) since the Unix epoch
	data        []byte
	meta        []byte // custom (user) metadata
}

// streamLog is one stream: recs[r] is the event at revision r.
type streamLog struct {
	recs []*record
	// tombstoned: hard-deleted, no read finds the stream again.
	tombstoned bool
}

// streamMeta is what the server reads of a stream's metadata: the data of
// the last $metadata event of "$$<stream>".
type streamMeta struct {
	maxCount uint64 // 0: no $maxCount
	tb       uint64 // $tb, truncate before
}

// metastreamPrefix starts the name of a stream's metadata stream.
const metastreamPrefix = "$$"

// parseMeta reads the members of stream metadata the server models.
//
// Rule: a stream's metadata is the whole of its metadata stream's last
// $metadata event: a new one replaces the previous one rather than merging
// with it. $maxCount must be a positive integer and $tb a non-negative
// one; metadata that is not a JSON object sets nothing.
func parseMeta(data []byte) streamMeta {
	var m struct {
		MaxCount *int64 `json:"$maxCount"`
		TB       *int64 `json:"$tb"`
	}
	if json.Unmarshal(data, &m) != nil {
		return streamMeta{}
	}
	var out streamMeta
	if m.MaxCount != nil && *m.MaxCount > 0 {
		out.maxCount = uint64(*m.MaxCount)
	}
	if m.TB != nil && *m.TB > 0 {
		out.tb = uint64(*m.TB)
	}
	return out
}

// json encodes m as a client would write it.
func (m streamMeta) json() []byte {
	b := []byte(`{"$tb":`)
	b = strconv.AppendUint(b, m.tb, 10)
	if m.maxCount > 0 {
		b = append(b, `,"$maxCount":`...)
		b = strconv.AppendUint(b, m.maxCount, 10)
	}
	return append(b, '}')
}

// expectation is an append's expected stream state.
type expectation struct {
	kind     expKind
	revision uint64 // for expRevision
}

type expKind int

const (
	expAny expKind = iota
	expNoStream
	expStreamExists
	expRevision
)

type proposed struct {
	id          uuid.UUID
	eventType   string
	contentType string
	data        []byte
	meta        []byte
}

// appendOutcome is what an append answers: either success (with the
// stream's revision after it and the position of its last event) or a wrong
// expected version with the stream's current revision.
type appendOutcome struct {
	ok       bool
	revision uint64 // success: revision of the last appended (or retried) event
	position uint64 // success: position of that event
	// wrong expected version: current revision, or hasCurrent false for no stream
	current    uint64
	hasCurrent bool
	// deleted: the stream is hard-deleted, nothing can be appended
	deleted bool
}

// memlog is the server's store: the global log in commit order and an index
// by stream.
type memlog struct {
	mu      sync.Mutex
	all     []*record
	streams map[string]*streamLog
	meta    map[string]streamMeta // by stream, from its metadata stream
	next    uint64                // position of the next record
	wake    chan struct{}         // closed and replaced at every commit
	now     func() time.Time
}

// firstPosition is where the log starts. Real logs start with the server's
// own records; what matters to clients is that positions are > 0.
const firstPosition = 1024

func newMemlog() *memlog {
	return &memlog{
		streams: make(map[string]*streamLog),
		meta:    make(map[string]streamMeta),
		next:    firstPosition,
		wake:    make(chan struct{}),
		now:     time.Now,
	}
}

// append applies EventStoreDB's write rules (see the Rule comments).
func (l *memlog) append(stream string, exp expectation, evs []proposed) appendOutcome {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.appendLocked(stream, exp, evs)
}

func (l *memlog) appendLocked(stream string, exp expectation, evs []proposed) appendOutcome {
	st := l.streams[stream]
	if out, ok := l.expected(st, exp, evs); !ok {
		return out
	}
	if st == nil {
		st = &streamLog{}
		l.streams[stream] = st
	}
	return l.write(stream, st, evs)
}

// expected applies the rules of the expected revision exp to an append of
// evs to stream st (nil: no stream). ok means the events are to be written;
// otherwise out is the append's answer: a refusal, or an idempotent retry's
// original result.
func (l *memlog) expected(st *streamLog, exp expectation, evs []proposed) (out appendOutcome, ok bool) {
	if st != nil && st.tombstoned {
		// Rule: a hard-deleted stream refuses every append, whatever the
		// expected revision.
		return appendOutcome{deleted: true}, false
	}
	current := int64(-1) // -1: no stream
	if st != nil {
		// Rule: a soft-deleted stream keeps its revision; an append
		// continues from where it left off (the client's DeleteStream doc).
		// Here it must expect that last revision; whether a real server
		// also accepts NoStream on a soft-deleted stream is not modelled.
		current = int64(len(st.recs)) - 1
	}
	want := current
	switch exp.kind {
	case expAny:
		// Rule: with Any the server appends (its idempotency for Any is
		// best effort and not modelled here).
	case expNoStream:
		want = -1
	case expStreamExists:
		if current < 0 {
			return appendOutcome{}, false
		}
	case expRevision:
		want = int64(exp.revision)
	}
	if want != current {
		// Rule: idempotent appends. The same event ids, in order, as the
		// events already at want+1.. in this stream make a retry: success
		// with the original result and nothing written. Anything else (the
		// same ids elsewhere, a partial match, more events than stored) is
		// a wrong expected version.
		if want < current && l.isRetry(st, want, evs) {
			last := st.recs[want+int64(len(evs))]
			return appendOutcome{ok: true, revision: last.revision, position: last.position}, false
		}
		return appendOutcome{current: uint64(current), hasCurrent: current >= 0}, false
	}
	return appendOutcome{}, true
}

// write appends evs to stream st, named stream, and wakes the subscriptions.
func (l *memlog) write(stream string, st *streamLog, evs []proposed) appendOutcome {
	created := l.now().UnixNano() / 100
	var last *record
	for _, e := range evs {
		last = &record{
			id:          e.id,
			stream:      stream,
			revision:    uint64(len(st.recs)),
			position:    l.next,
			eventType:   e.eventType,
			contentType: e.contentType,
			created:     created,
			data:        e.data,
			meta:        e.meta,
		}
		// Positions are byte offsets in a real log: strictly increasing,
		// not contiguous. Mimic that so no client can assume +1.
		l.next += uint64(64 + len(stream) + len(e.eventType) + len(e.data) + len(e.meta))
		st.recs = append(st.recs, last)
		l.all = append(l.all, last)
		if target, ok := strings.CutPrefix(stream, metastreamPrefix); ok && e.eventType == "$metadata" {
			l.meta[target] = parseMeta(e.data)
		}
	}
	close(l.wake)
	l.wake = make(chan struct{})
	return appendOutcome{ok: true, revision: last.revision, position: last.position}
}

func (l *memlog) isRetry(st *streamLog, want int64, evs []proposed) bool {
	for i, e := range evs {
		rev := want + 1 + int64(i)
		if rev >= int64(len(st.recs)) || st.recs[rev].id != e.id {
			return false
		}
	}
	return true
}

// softDelete hides every current event of stream from stream reads by
// setting its truncate-before in the stream's metadata stream, as the server
// does, keeping the rest of its metadata. It reports false when the stream
// has no visible events.
func (l *memlog) softDelete(stream string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, hi, ok := l.windowLocked(stream)
	if !ok {
		return false
	}
	m := l.meta[stream]
	m.tb = hi
	// Rule: deleting a stream writes a $metadata event to "$$<stream>",
	// which $all shows like any other event.
	l.appendLocked(metastreamPrefix+stream, expectation{kind: expAny}, []proposed{{
		id: uuid.New(), eventType: "$metadata", contentType: "application/json", data: m.json(),
	}})
	return true
}

// hardDelete hides stream from reads for good and appends its tombstone to
// $all: an event of type $streamDeleted in the stream itself at revision
// math.MaxInt64, as the server does. It returns the tombstone's position,
// and false when the stream has no visible events.
func (l *memlog) hardDelete(stream string) (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, _, ok := l.windowLocked(stream); !ok {
		return 0, false
	}
	st := l.streams[stream]
	st.tombstoned = true
	rec := &record{
		id: uuid.New(), stream: stream, revision: math.MaxInt64, position: l.next,
		eventType: "$streamDeleted", contentType: "application/octet-stream",
		created: l.now().UnixNano() / 100,
	}
	l.next += uint64(64 + len(stream) + len(rec.eventType))
	l.all = append(l.all, rec)
	close(l.wake)
	l.wake = make(chan struct{})
	return rec.position, true
}

// windowLocked returns the revisions of stream a read sees, [lo, hi), and
// false when a read finds no stream (missing, deleted, or with nothing
// visible).
//
// Rule: a stream's $tb hides the revisions below it, and its $maxCount all
// but its last $maxCount events, from stream reads at once (scavenging
// removes them from the log later; $all still shows them until then). A
// metadata stream keeps only its last event unless told otherwise.
func (l *memlog) windowLocked(stream string) (lo, hi uint64, ok bool) {
	st := l.streams[stream]
	if st == nil || st.tombstoned {
		return 0, 0, false
	}
	m := l.meta[stream]
	if m.maxCount == 0 && strings.HasPrefix(stream, metastreamPrefix) {
		m.maxCount = 1
	}
	hi = uint64(len(st.recs))
	lo = m.tb
	if m.maxCount > 0 && hi > m.maxCount {
		lo = max(lo, hi-m.maxCount)
	}
	return lo, hi, lo < hi
}

// readStream returns up to count visible events of stream, from revision
// from (fromEnd: the last) in the given direction. found is false when a
// read finds no stream (see windowLocked); deleted is true when the stream
// is hard-deleted.
func (l *memlog) readStream(stream string, from uint64, fromEnd, backwards bool, count uint64) (recs []*record, found, deleted bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if st := l.streams[stream]; st != nil && st.tombstoned {
		return nil, false, true
	}
	lo, hi, ok := l.windowLocked(stream)
	if !ok {
		return nil, false, false
	}
	st := l.streams[stream]
	if !backwards {
		start := max(from, lo)
		if fromEnd {
			start = hi
		}
		for r := start; r < hi && uint64(len(recs)) < count; r++ {
			recs = append(recs, st.recs[r])
		}
		return recs, true, false
	}
	start := hi - 1
	if !fromEnd {
		if from < lo {
			return nil, true, false
		}
		start = min(from, hi-1)
	}
	for r := int64(start); r >= int64(lo) && uint64(len(recs)) < count; r-- {
		recs = append(recs, st.recs[r])
	}
	return recs, true, false
}

// since returns the records at index >= i of the global log and the channel
// closed at the next commit, taken together so that no commit is missed.
func (l *memlog) since(i int) ([]*record, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if i >= len(l.all) {
		return nil, l.wake
	}
	return l.all[i:len(l.all):len(l.all)], l.wake
}

// indexAfter returns the index in the global log of the first record with a
// position > pos.
func (l *memlog) indexAfter(pos uint64) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.searchLocked(pos + 1)
}

// indexAtOrAfter returns the index of the first record with position >= pos.
func (l *memlog) indexAtOrAfter(pos uint64) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.searchLocked(pos)
}

func (l *memlog) searchLocked(pos uint64) int {
	lo, hi := 0, len(l.all)
	for lo < hi {
		m := (lo + hi) / 2
		if l.all[m].position < pos {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// length returns the number of records in the global log.
func (l *memlog) length() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.all)
}

// at returns the record at index i of the global log.
func (l *memlog) at(i int) *record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all[i]
}
