package rebuild

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/projections"
)

// Sizes of the pipeline's steps. Variables, not constants, so that tests
// can make them small.
var (
	// readChunk is how many events one store read returns, and how many
	// are folded between two looks at the cache's size. The states aged
	// out of one chunk are written together, so it sizes the Puts too.
	// Up to five chunks are in the pipeline at once (being read, queued,
	// being decoded, queued, being folded), each event raw and decoded:
	// with the state cache, this is what the replay's memory is made of,
	// and it does not grow with the history.
	readChunk = 2048
	// putViews bounds the views written in one Put: each Put is one write
	// transaction, during which the live projector's writes to the same
	// file wait (the API's read-your-writes wait, 5 s, absorbs it).
	// Trade-off, measured with BenchmarkRebuild: a larger Put holds the
	// lock longer and costs less CPU per view, since every commit rewrites
	// the index pages it touched, and the checkpointer copies them again.
	putViews = 16384
	// ageChunks is how many chunks a dirty state stays unwritten after its
	// last event (see ageOut): 16384 events.
	ageChunks uint64 = 8
	// retireChunks is how many chunks' worth of finished states a history
	// read by stream writes in one go (see retire). One chunk per Put
	// commits more often, and each commit costs the read model's writer
	// more than the rows it adds; more chunks hold more states in memory,
	// which the collector has to scan (BenchmarkRebuild, and icpctl rebuild
	// on a million events: docs/performance.md).
	retireChunks uint64 = 2
	// compactEvery is how often (in chunks) touched is compacted.
	compactEvery uint64 = 512
)

// replayer folds the history into a write-back cache of ICP states. A
// state is written when no event touched it for ageChunks chunks (in a
// history read by stream: for one chunk, and it leaves the cache, see
// retire), when it leaves the cache, or at the end of the replay: an ICP
// whose events come close together in the history is written once, with
// its final state, as a plain insert. Reading, decoding (on every core),
// folding and encoding (on every core), and writing overlap: each has a
// goroutine of its own.
//
// The cache is bounded (Options.MaxStates); the least recently touched
// states leave first. A state needed again after it left is read back from
// the target, once every write queued is done; a state that left with its
// write still in flight is taken back from that write instead.
//
// The bookkeeping holds entries, not ids, wherever it can: with a hundred
// thousand states, looking ids up in the cache map several times per event
// was a measurable part of a replay's CPU (BenchmarkRebuild).
type replayer struct {
	store  events.Store
	target Target
	opts   Options
	f      *folder

	cache map[string]*entry
	// touched lists, per chunk sequence number, the entries folded in that
	// chunk: the eviction order. An entry appears under every chunk that
	// touched it; only its latest counts.
	touched [][]*entry
	first   uint64 // touched[0] is the chunk with sequence number first+1
	seq     uint64 // sequence number of the chunk being folded

	start  time.Time
	events uint64
	views  uint64
	last   uint64
}

// entry is one ICP's state in the cache.
type entry struct {
	id    string
	state *domain.State
	// inTarget: the target holds a view of this ICP (maybe an older one),
	// or a write in flight will put one there.
	inTarget bool
	// dirty: state is newer than what the target holds.
	dirty bool
	seq   uint64 // last chunk that folded an event of this ICP
	// doc is the JSON of state.ICP when state is the fold of a create whose
	// payload gave it (decoded.doc), until it is written.
	doc []byte
	// out: the entry left the cache.
	out bool
	// batch is the number of the last batch sent to the writer with it.
	batch uint64
}

func newReplayer(store events.Store, target Target, opts Options) (*replayer, error) {
	if store == nil || target == nil {
		return nil, errors.New("rebuild: store and target are required")
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return &replayer{store: store, target: target, opts: o, f: newFolder(), cache: map[string]*entry{}, start: time.Now()}, nil
}

func (r *replayer) result() Result {
	return Result{
		Events:   r.events,
		Last:     r.last,
		Views:    r.views,
		Skipped:  r.f.nProblem,
		Problems: slices.Clone(r.f.problems),
		Elapsed:  time.Since(r.start),
	}
}

// chunk is a run of decoded events in global order, or the error that ended
// the reading.
type chunk struct {
	evs []decoded
	err error
}

// batch is one Put for the writing goroutine.
type batch struct {
	created, replaced []projections.View
}

// replay folds the events in (after, to] and writes every state they
// changed before it returns; it returns the position of the last event
// (after, when there were none).
func (r *replayer) replay(ctx context.Context, phase Phase, after, to uint64) (last uint64, err error) {
	if to <= after {
		return after, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks, byStream := r.startReading(ctx, phase, after, to)
	w := r.startWriter(ctx)
	defer func() {
		if werr := w.stop(); err == nil {
			err = werr
		}
	}()
	last = after
	for c := range chunks {
		if c.err != nil {
			return last, c.err
		}
		if err := r.foldChunk(ctx, w, c.evs, byStream); err != nil {
			return last, err
		}
		last = r.advance(phase, c.evs, byStream, last, to)
	}
	if err := ctx.Err(); err != nil {
		return last, err
	}
	if err := r.flush(w); err != nil {
		return last, err
	}
	return last, w.wait()
}

// startReading starts the goroutines that read the events in (after, to]
// and decode them, and returns the decoded chunks, in the order read, until
// the reading ends or ctx does. byStream reports that the history is read
// by stream (see StreamOrderReader): only a history phase from the start,
// and only from a store that can.
func (r *replayer) startReading(ctx context.Context, phase Phase, after, to uint64) (chunks <-chan chunk, byStream bool) {
	raw := make(chan rawChunk, 1)
	out := make(chan chunk, 1)
	sr, byStream := r.store.(StreamOrderReader)
	byStream = byStream && after == 0 && phase == PhaseHistory
	if byStream {
		go r.readByStream(ctx, sr, to, raw)
	} else {
		go r.read(ctx, after, to, raw)
	}
	go decodeAll(ctx, raw, out)
	return out, byStream
}

// foldChunk folds one chunk into the cache, then hands the writer the
// states the chunk finished (retire, by stream) or aged (ageOut), and those
// the cache has no room for (evict).
func (r *replayer) foldChunk(ctx context.Context, w *writer, evs []decoded, byStream bool) error {
	if err := r.fold(ctx, w, evs); err != nil {
		return err
	}
	var err error
	if byStream {
		err = r.retire(w)
	} else {
		err = r.ageOut(w)
	}
	if err != nil {
		return err
	}
	return r.evict(w, r.opts.MaxStates)
}

// advance counts a folded chunk and reports progress. last is the position
// of the last event folded before the chunk; it returns that of the last
// event folded now.
func (r *replayer) advance(phase Phase, evs []decoded, byStream bool, last, to uint64) uint64 {
	r.events += uint64(len(evs))
	pos := evs[len(evs)-1].rec.Position
	if byStream {
		// Positions come in no order; every one is at most to.
		for _, d := range evs {
			last = max(last, d.rec.Position)
		}
		pos = min(r.events, to)
	} else {
		last = pos
	}
	r.last = last
	if r.opts.Progress != nil {
		r.opts.Progress(Progress{Phase: phase, Position: pos, Head: to, Events: r.events, Elapsed: time.Since(r.start)})
	}
	return last
}

// read sends the events in (after, to] in chunks, then closes out. It stops
// early when ctx ends.
func (r *replayer) read(ctx context.Context, after, to uint64, out chan<- rawChunk) {
	defer close(out)
	send := func(c rawChunk) bool {
		select {
		case out <- c:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for after < to {
		recs, err := r.store.ReadAll(ctx, after, readChunk)
		if err != nil {
			send(rawChunk{err: fmt.Errorf("rebuild: read the event store after position %d: %w", after, err)})
			return
		}
		if len(recs) == 0 {
			break // the store holds nothing up to to after all
		}
		for i, rec := range recs {
			if rec.Position <= after {
				send(rawChunk{err: fmt.Errorf("rebuild: event store returned position %d after %d", rec.Position, after)})
				return
			}
			if rec.Position > to {
				recs, after = recs[:i], to
				break
			}
			after = rec.Position
		}
		if len(recs) > 0 && !send(rawChunk{recs: recs}) {
			return
		}
	}
}

// StreamOrderReader is an event store that can read its log a stream at a
// time (sqlitestore.Store.ReadAllByStream): the events with positions up
// to to, ordered by stream and version, after the given stream and version.
//
// A replay of the history from its start reads such a store in that order:
// each ICP's events come together, so its state is folded, written once as
// a plain insert, and dropped from the cache within a few chunks. In global
// order, an ICP updated long after its creation has left the cache and is
// read back from the target and written twice, at a rate that falls as the
// history grows (docs/performance.md, "Rebuild and verify at scale").
// Catch-up phases read in global order, as their events are few.
type StreamOrderReader interface {
	ReadAllByStream(ctx context.Context, afterStream string, afterVersion, to uint64, limit int) ([]events.Recorded, error)
}

// readByStream sends the events with positions up to to in stream order, in
// chunks, then closes out. It stops early when ctx ends.
func (r *replayer) readByStream(ctx context.Context, sr StreamOrderReader, to uint64, out chan<- rawChunk) {
	defer close(out)
	send := func(c rawChunk) bool {
		select {
		case out <- c:
			return true
		case <-ctx.Done():
			return false
		}
	}
	var stream string
	var version uint64
	for {
		recs, err := sr.ReadAllByStream(ctx, stream, version, to, readChunk)
		if err != nil {
			send(rawChunk{err: fmt.Errorf("rebuild: read the event store by stream after %s v%d: %w", stream, version, err)})
			return
		}
		if len(recs) == 0 {
			return
		}
		for _, rec := range recs {
			if rec.Position > to || rec.StreamID < stream || (rec.StreamID == stream && rec.Version <= version) {
				send(rawChunk{err: fmt.Errorf("rebuild: event store returned %s v%d at position %d after %s v%d up to position %d", rec.StreamID, rec.Version, rec.Position, stream, version, to)})
				return
			}
			stream, version = rec.StreamID, rec.Version
		}
		if !send(rawChunk{recs: recs}) {
			return
		}
	}
}

// rawChunk is a run of recorded events, or the error that ended the reading.
type rawChunk struct {
	recs []events.Recorded
	err  error
}

// decodeAll decodes the chunks from in, each with all cores (JSON decoding
// is the largest single cost of a replay), and sends them on in order.
func decodeAll(ctx context.Context, in <-chan rawChunk, out chan<- chunk) {
	defer close(out)
	for c := range in {
		if c.err != nil {
			select {
			case out <- chunk{err: c.err}:
			case <-ctx.Done():
			}
			return
		}
		evs := make([]decoded, len(c.recs))
		parallel(len(c.recs), func(i int) { evs[i] = decode(&c.recs[i]) })
		select {
		case out <- chunk{evs: evs}:
		case <-ctx.Done():
			return
		}
	}
}

// fold folds one chunk into the cache, reading back from the target the
// states of ICPs that left the cache earlier.
func (r *replayer) fold(ctx context.Context, w *writer, evs []decoded) error {
	r.seq++
	es, touched, missing := r.entries(w, evs)
	if len(missing) > 0 {
		if err := r.loadBack(ctx, w, missing); err != nil {
			return err
		}
	}
	r.touched = append(r.touched, touched)
	r.compact()
	return r.foldInto(evs, es)
}

// entries returns the cache entry of each event's ICP (nil for an event of
// no ICP, or of one broken before this chunk), the entries the chunk
// touches, each once, and the ids of the ICPs whose state must be read back
// from the target. An entry that left the cache with its write still queued
// is taken back from the writer; an ICP not known here gets a new entry.
func (r *replayer) entries(w *writer, evs []decoded) (es, touched []*entry, missing []string) {
	touched = make([]*entry, 0, len(evs))
	es = make([]*entry, len(evs))
	for i, d := range evs {
		if d.id == "" || r.f.broken[d.id] {
			continue
		}
		e, ok := r.cache[d.id]
		if ok && e.seq == r.seq {
			es[i] = e
			continue
		}
		if !ok {
			if e, ok = w.inflight[d.id]; ok {
				// It left the cache with its write queued: the target
				// will hold it.
				delete(w.inflight, d.id)
				e.out = false
				r.cache[d.id] = e
			}
		}
		if ok {
			e.seq = r.seq
			touched, es[i] = append(touched, e), e
			continue
		}
		// Not known here. A create needs nothing; anything else needs the
		// ICP's stored state (a create of an ICP already stored would be
		// refused by Evolve, like any event out of order).
		e = &entry{id: d.id, seq: r.seq}
		r.cache[d.id] = e
		touched, es[i] = append(touched, e), e
		if d.rec.Version > 1 {
			missing = append(missing, d.id)
		}
	}
	return es, touched, missing
}

// loadBack reads the states of the cached ICPs missing from the target, on
// the writer's connection once every write queued so far is done; an ICP
// the target does not hold keeps no state.
func (r *replayer) loadBack(ctx context.Context, w *writer, missing []string) error {
	if err := w.wait(); err != nil {
		return err
	}
	loaded, err := r.target.Load(ctx, missing)
	if err != nil {
		return err
	}
	for id, v := range loaded {
		s, err := projections.StateOf(v)
		if err != nil {
			return fmt.Errorf("rebuild: %w", err)
		}
		e := r.cache[id]
		e.state, e.inTarget = s, true
	}
	return nil
}

// foldInto folds each event onto its entry's state (es[i] is evs[i]'s
// entry), marking the entries it changes dirty; an event without an entry
// is still handed to the folder, which counts it.
func (r *replayer) foldInto(evs []decoded, es []*entry) error {
	for i, d := range evs {
		if d.id == "" {
			continue
		}
		e := es[i]
		if e == nil { // broken before this chunk: the folder counts it
			if _, err := r.f.fold(nil, d); err != nil {
				return err
			}
			continue
		}
		n, err := r.f.fold(e.state, d)
		if err != nil {
			return err
		}
		if n != e.state {
			e.doc = nil
			if e.state == nil {
				e.doc = d.doc
			}
			e.state, e.dirty = n, true
		}
	}
	return nil
}

// compact drops, every compactEvery chunks, the ids that no longer count
// in touched (touched again later, or gone), so that touched stays in
// proportion to the cache however long the history.
func (r *replayer) compact() {
	if r.seq%compactEvery != 0 {
		return
	}
	for i, es := range r.touched {
		seq := r.first + 1 + uint64(i)
		r.touched[i] = slices.DeleteFunc(es, func(e *entry) bool { return e.out || e.seq != seq })
	}
}

// ageOut writes the dirty states last touched ageChunks chunks ago and
// keeps them, clean: writing goes on while folding does, and an ICP whose
// events come close together is still written once.
func (r *replayer) ageOut(w *writer) error {
	if r.seq <= ageChunks || r.seq-ageChunks <= r.first {
		return nil
	}
	old := r.seq - ageChunks
	var es []*entry
	for _, e := range r.touched[old-r.first-1] {
		if !e.out && e.seq == old && e.dirty {
			es = append(es, e)
		}
	}
	return r.write(w, es, false)
}

// evict writes and drops the least recently touched states until at most
// an eighth below max remain, when there are more than max.
func (r *replayer) evict(w *writer, max int) error {
	if len(r.cache) <= max {
		return nil
	}
	keep := max - max/8
	return r.drop(w, func() bool { return len(r.cache) > keep })
}

// retire, for a history read by stream, writes and drops the states that
// no event touched in the chunk just folded, retireChunks chunks' worth at
// a time. Their ICPs' events are all folded, since each stream's events
// come together, so nothing needs them again; the cache then holds a few
// chunks' ICPs, not MaxStates, which keeps the live heap, and the
// collector's work on it, small. Should an ICP come again all the same,
// its state is taken back from the write in flight or read back from the
// target, as after an eviction.
func (r *replayer) retire(w *writer) error {
	if r.seq-r.first <= retireChunks {
		return nil
	}
	return r.drop(w, func() bool { return r.first+1 < r.seq })
}

// drop writes and drops the states whose last event is in the oldest chunk
// of touched, chunk by chunk, while more says so.
func (r *replayer) drop(w *writer, more func() bool) error {
	var out []*entry
	for len(r.touched) > 0 && more() {
		for _, e := range r.touched[0] {
			if e.out || e.seq != r.first+1 {
				continue // touched again since, or gone already
			}
			delete(r.cache, e.id)
			e.out = true
			if e.dirty {
				out = append(out, e)
			}
		}
		r.touched = r.touched[1:]
		r.first++
	}
	return r.write(w, out, true)
}

// flush writes every dirty state and keeps it in the cache, clean.
func (r *replayer) flush(w *writer) error {
	var es []*entry
	for _, e := range r.cache {
		if e.dirty {
			es = append(es, e)
		}
	}
	return r.write(w, es, false)
}

// write queues the states of es for writing, in batches of putViews, in id
// order within a batch (the read model's primary key order). out: es left
// the cache.
func (r *replayer) write(w *writer, es []*entry, out bool) error {
	type item struct {
		e *entry
		v projections.View
	}
	items := make([]item, 0, len(es))
	for _, e := range es {
		if e.state != nil {
			items = append(items, item{e: e})
		}
	}
	if len(items) == 0 {
		return nil
	}
	slices.SortFunc(items, func(a, b item) int { return strings.Compare(a.e.id, b.e.id) })
	// Encoding the documents is the folding goroutine's largest cost: use
	// every core for it.
	errs := make([]error, len(items))
	parallel(len(items), func(i int) {
		items[i].v, errs[i] = projections.ViewOfDoc(items[i].e.state, items[i].e.doc)
	})
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	for len(items) > 0 {
		n := min(len(items), putViews)
		var b batch
		es := make([]*entry, n)
		for i, it := range items[:n] {
			if it.e.inTarget {
				b.replaced = append(b.replaced, it.v)
			} else {
				b.created = append(b.created, it.v)
			}
			it.e.inTarget, it.e.dirty, it.e.doc = true, false, nil
			es[i] = it.e
		}
		if err := w.send(b, es, out); err != nil {
			return err
		}
		r.views += uint64(n)
		items = items[n:]
	}
	return nil
}

// parallel calls fn(0) ... fn(n-1), spread over the cores, and returns when
// all have returned.
func parallel(n int, fn func(i int)) {
	workers := max(1, runtime.GOMAXPROCS(0))
	per := (n + workers - 1) / workers
	var wg sync.WaitGroup
	for start := 0; start < n; start += per {
		end := min(start+per, n)
		wg.Go(func() {
			for i := start; i < end; i++ {
				fn(i)
			}
		})
	}
	wg.Wait()
}

// writer is the goroutine that Puts batches, in the order they were sent.
// Only the folding goroutine calls its methods.
type writer struct {
	in   chan batch
	done chan error
	// inflight holds, by ICP id, the entries that left the cache while a
	// batch sent and not yet confirmed carries them.
	inflight map[string]*entry
	// pending lists, per batch sent and not confirmed (oldest first), the
	// entries of it that left the cache.
	pending [][]*entry
	sent    uint64 // batches sent
	failed  error
}

func (r *replayer) startWriter(ctx context.Context) *writer {
	w := &writer{in: make(chan batch, 1), done: make(chan error, 2), inflight: map[string]*entry{}}
	go func() {
		defer close(w.done)
		for b := range w.in {
			err := r.target.Put(ctx, b.created, b.replaced)
			w.done <- err
			if err != nil {
				for range w.in { // the folding goroutine stops at the error
				}
				return
			}
		}
	}()
	return w
}

// send queues one batch of the states es (out: they left the cache); it
// blocks while the writer is two batches behind.
func (w *writer) send(b batch, es []*entry, out bool) error {
	if w.failed != nil {
		return w.failed
	}
	for len(w.pending) >= 2 {
		if err := w.confirm(); err != nil {
			return err
		}
	}
	w.sent++
	for _, e := range es {
		e.batch = w.sent
		if out {
			w.inflight[e.id] = e
		}
	}
	if !out {
		es = nil
	}
	w.pending = append(w.pending, es)
	w.in <- b
	return nil
}

// confirm waits for the oldest batch in flight to be written. After a
// failed write it returns that error at once: the writing goroutine sends
// one error and then only drains, so waiting for the batches behind it
// would wait forever (a cancelled rebuild hung here).
func (w *writer) confirm() error {
	if w.failed != nil {
		return w.failed
	}
	err, ok := <-w.done
	if !ok && err == nil {
		err = errors.New("rebuild: writer stopped")
	}
	if err != nil {
		w.failed = err
		return err
	}
	n := w.sent - uint64(len(w.pending)) + 1 // number of the batch confirmed
	for _, e := range w.pending[0] {
		if e.out && e.batch == n {
			delete(w.inflight, e.id)
		}
	}
	w.pending = w.pending[1:]
	return nil
}

// wait waits until every batch sent is written.
func (w *writer) wait() error {
	for len(w.pending) > 0 {
		if err := w.confirm(); err != nil {
			return err
		}
	}
	return w.failed
}

// stop ends the writing goroutine after the batches sent.
func (w *writer) stop() error {
	err := w.wait()
	close(w.in)
	for range w.done {
	}
	return err
}
