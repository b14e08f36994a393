// Package watermark tells a durable consumer of ICP_EVENTS whether the
// stream dropped (retention: MaxAge, MaxMsgs, MaxBytes, or a purge) messages
// the durable never got, and which part of the event history that was.
//
// JetStream alone cannot say it reliably. Several replicas share one durable,
// so a replica cannot tell a gap in the sequences it sees from messages
// another replica took. The durable's ack floor below the stream's first
// sequence - 1 says that messages it never acknowledged were removed, but
// only for a while: a purge, and the server's periodic ack floor check once
// the distance reaches 50 messages, move the ack floor up to the stream's
// first sequence - 1 as if those messages had been acknowledged.
//
// So the durable's progress is recorded apart from the consumer: a Mark, the
// stream sequence of a message such that every message up to it was
// acknowledged, with the event store position of its event. A Mark only
// moves up, and only to the ack floor at a time when the stream still held
// every message after the previous Mark: the ack floor is then genuine.
// When the stream no longer holds the message after the Mark, the messages
// between the Mark and the stream's first message are a Gap: the events the
// durable may have missed are those after Mark.Position, before the first
// message the stream still has.
//
// A stream younger than its mark (LastSeq below Mark.Seq: deleted and
// created again, or restored from an older copy) restarts the mark's
// sequence at 0; its position stays.
//
// Marks live in the NATS key-value bucket ICP_WATERMARKS, one key per
// durable (<stream>.<durable>). A missing or unreadable key counts as the start of the history:
// the whole history before the stream's first message is then the gap.
package watermark

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/bus"
	"github.com/icpservice/icp/events"
)

// Bucket is the key-value bucket holding the marks.
const Bucket = "ICP_WATERMARKS"

// maxValueBytes bounds a stored mark.
const maxValueBytes = 256

// maxCAS bounds the compare-and-set attempts of one Advance while other
// replicas write the same key.
const maxCAS = 8

// Mark is a durable's watermark: every message of the stream up to Seq was
// acknowledged (or its event otherwise handled), and every event of the
// store up to Position with it. Position is an event's position in the
// store, or 0 (nothing yet): EventStoreDB reads $all only from an event's
// position.
type Mark struct {
	Position uint64 `json:"position"`
	Seq      uint64 `json:"seq"`
}

// Gap is part of the history the stream no longer holds and the durable may
// never have got: the events with a position after After.Position and
// before FirstPosition, published as stream sequences After.Seq+1 to
// FirstSeq-1.
type Gap struct {
	After Mark
	// FirstSeq is the stream's first sequence when the gap was seen.
	FirstSeq uint64
	// FirstPosition is the position of the event of the message at
	// FirstSeq, or 0 when that message does not carry one that Locate
	// accepted: the gap then reaches the store's head.
	FirstPosition uint64
}

// Locate returns the store position of the event a stream message carries,
// and false when it cannot be trusted (no, or a malformed, ce-icpposition
// header; a caller with the event store may also check that the store holds
// that event there).
type Locate func(ctx context.Context, m *jetstream.RawStreamMsg) (uint64, bool)

// HeaderPosition is the Locate of a caller without the event store: the
// message's ce-icpposition header, as the relay wrote it.
func HeaderPosition(_ context.Context, m *jetstream.RawStreamMsg) (uint64, bool) {
	pos, err := strconv.ParseUint(m.Header.Get(events.HeaderPosition), 10, 64)
	return pos, err == nil && pos > 0
}

// Tracker checks and advances one durable's mark. Replicas of a durable may
// each have one: marks only move up, by compare-and-set.
type Tracker struct {
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	stream  string
	durable string
	locate  Locate
}

// Open returns the tracker of durable on stream, creating the bucket when it
// does not exist yet.
func Open(ctx context.Context, js jetstream.JetStream, stream, durable string, locate Locate) (*Tracker, error) {
	kv, err := js.KeyValue(ctx, Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, bus.WatermarkBucket(Bucket, maxValueBytes))
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("watermark bucket %s: %w", Bucket, err)
	}
	return &Tracker{js: js, kv: kv, stream: stream, durable: durable, locate: locate}, nil
}

func (t *Tracker) key() string { return t.stream + "." + t.durable }

// Mark returns the durable's mark and its revision (0: none). A value that
// is not a mark counts as none: the caller then treats the whole history
// as possibly missed, which costs a longer catch-up and loses nothing.
func (t *Tracker) Mark(ctx context.Context) (Mark, uint64, error) {
	e, err := t.kv.Get(ctx, t.key())
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return Mark{}, 0, nil
	case err != nil:
		return Mark{}, 0, fmt.Errorf("watermark %s: %w", t.key(), err)
	}
	var m Mark
	if len(e.Value()) > maxValueBytes || json.Unmarshal(e.Value(), &m) != nil {
		return Mark{}, e.Revision(), nil
	}
	return m, e.Revision(), nil
}

// Init records where a durable that was just created starts: the messages
// up to seq (its stream's last sequence before a deliver-new durable was
// created, or the first sequence - 1 for a deliver-all one) were never
// meant for it, so their loss is not a gap. It does nothing when the
// durable has a mark already.
func (t *Tracker) Init(ctx context.Context, seq uint64) error {
	var m Mark
	if seq > 0 {
		if str, err := t.js.Stream(ctx, t.stream); err == nil {
			m.Position, _ = t.position(ctx, str, seq)
		}
	}
	m.Seq = seq
	val, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if _, err := t.kv.Create(ctx, t.key(), val); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("watermark %s: %w", t.key(), err)
	}
	return nil
}

// Check compares the durable's mark with the stream. When the stream still
// holds every message after the mark, it moves the mark up to the durable's
// ack floor (when the message there is still held and Locate accepts it)
// and reports no gap. Otherwise it reports the gap, and leaves the mark
// where it is until the caller, having dealt with the gap, calls Close.
func (t *Tracker) Check(ctx context.Context) (Gap, bool, error) {
	mark, rev, err := t.Mark(ctx)
	if err != nil {
		return Gap{}, false, err
	}
	// The ack floor is read before the stream's first sequence: if the
	// stream held every message after the mark after the floor was read,
	// it did when it was read too, and the floor was not moved by a
	// removal.
	floor, err := t.ackFloor(ctx)
	if err != nil {
		return Gap{}, false, err
	}
	str, err := t.js.Stream(ctx, t.stream)
	if err != nil {
		return Gap{}, false, fmt.Errorf("stream %s: %w", t.stream, err)
	}
	state := str.CachedInfo().State
	if mark.Seq > state.LastSeq {
		// The stream is younger than the mark (deleted and created
		// again, or restored from an older copy): its sequences start
		// again. Position still says what was handled.
		mark.Seq = 0
		if err := t.reset(ctx, rev, mark); err != nil {
			return Gap{}, false, err
		}
	}
	if state.FirstSeq <= mark.Seq+1 {
		if floor > mark.Seq && floor <= state.LastSeq {
			if pos, ok := t.position(ctx, str, floor); ok && pos >= mark.Position {
				return Gap{}, false, t.advance(ctx, Mark{Position: pos, Seq: floor})
			}
		}
		return Gap{}, false, nil
	}
	gap := Gap{After: mark, FirstSeq: state.FirstSeq}
	if pos, ok := t.position(ctx, str, state.FirstSeq); ok && pos > mark.Position {
		gap.FirstPosition = pos
	}
	return gap, true, nil
}

// Close records that the gap was dealt with: the mark moves to the last
// event position the caller handled before the gap's first position (last;
// gap.After.Position when there was none) at sequence FirstSeq-1.
func (t *Tracker) Close(ctx context.Context, gap Gap, last uint64) error {
	return t.advance(ctx, Mark{Position: max(last, gap.After.Position), Seq: gap.FirstSeq - 1})
}

// ackFloor returns the durable's ack floor, pull or push consumer.
func (t *Tracker) ackFloor(ctx context.Context) (uint64, error) {
	pull, err := t.js.Consumer(ctx, t.stream, t.durable)
	if err == nil {
		return pull.CachedInfo().AckFloor.Stream, nil
	}
	if errors.Is(err, jetstream.ErrNotPullConsumer) {
		push, err := t.js.PushConsumer(ctx, t.stream, t.durable)
		if err == nil {
			return push.CachedInfo().AckFloor.Stream, nil
		}
	}
	return 0, fmt.Errorf("consumer %s: %w", t.durable, err)
}

func (t *Tracker) position(ctx context.Context, str jetstream.Stream, seq uint64) (uint64, bool) {
	m, err := str.GetMsg(ctx, seq)
	if err != nil {
		return 0, false
	}
	return t.locate(ctx, m)
}

// reset replaces the mark at revision rev with m, even if lower; another
// writer in between makes it fail (checked again next time).
func (t *Tracker) reset(ctx context.Context, rev uint64, m Mark) error {
	val, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if _, err := t.kv.Update(ctx, t.key(), val, rev); err != nil {
		return fmt.Errorf("watermark %s: reset for a younger stream: %w", t.key(), err)
	}
	return nil
}

// advance moves the mark up to next: each of its two fields becomes the
// larger of the stored one and next's. Each field states on its own what was
// handled (messages up to Seq, events up to Position), so the larger of two
// true statements is true.
func (t *Tracker) advance(ctx context.Context, next Mark) error {
	for range maxCAS {
		cur, rev, err := t.Mark(ctx)
		if err != nil {
			return err
		}
		if rev != 0 && cur.Seq >= next.Seq && cur.Position >= next.Position {
			return nil
		}
		next = Mark{Position: max(cur.Position, next.Position), Seq: max(cur.Seq, next.Seq)}
		val, err := json.Marshal(next)
		if err != nil {
			return err
		}
		if rev == 0 {
			_, err = t.kv.Create(ctx, t.key(), val)
		} else {
			_, err = t.kv.Update(ctx, t.key(), val, rev)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return fmt.Errorf("watermark %s: %w", t.key(), err)
		}
		// Another replica wrote it in between: read again.
	}
	return fmt.Errorf("watermark %s: other writers kept winning", t.key())
}
