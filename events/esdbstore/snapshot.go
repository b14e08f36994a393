package esdbstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/icpservice/icp/events"
)

// Snapshots (events.Snapshotter). The snapshot of stream S is the last event
// of the side stream SnapshotStreamPrefix+S ("snapshot-icp-<id>"): its data
// is the state as given (application/octet-stream, opaque to the server) and
// its custom metadata names what it is the fold of:
//
//	{"stream":"icp-<id>","version":N,"eventId":"<id of S's event N>","fold":F}
//
// The side stream's metadata sets $maxCount to snapshotMaxCount, so the
// server keeps only the latest snapshot readable and scavenges the rest.
//
// EventStoreDB cannot write two streams atomically: the snapshot is written
// right after the events, and is a cache, never the truth. A snapshot write
// that fails is logged and forgotten (the events are stored; the next write
// of the stream keeps a snapshot again); a snapshot stream that is missing,
// deleted, or holds something else only makes the next write fold the
// stream's events, as the reader (commands/load.go) checks every snapshot
// against the stream before it trusts it.

var _ events.Snapshotter = (*Store)(nil)

// SnapshotStreamPrefix starts the name of every snapshot stream. It never
// starts like this service's streams (Options.Validate refuses a
// StreamPrefix that it could), so ReadAll, Head and Follow, and the relay and
// the rebuild that read through them, never see a snapshot; the $metadata
// events of "$$snapshot-..." streams are system streams they skip too.
const SnapshotStreamPrefix = "snapshot-"

// SnapshotStream returns the name of the stream that keeps stream's
// snapshot.
func SnapshotStream(stream string) string { return SnapshotStreamPrefix + stream }

const (
	// snapshotEventType is the type of every snapshot event.
	snapshotEventType = "Snapshot"
	// snapshotMaxCount is the $maxCount of every snapshot stream: only the
	// latest snapshot is ever read.
	snapshotMaxCount = 1
	// snapshotMetadataEvery: the snapshot stream's metadata is written with
	// its first snapshot and again with every snapshotMetadataEvery-th, so
	// that metadata lost (a failed write, a removal by hand) is restored
	// before the stream holds more than that many snapshots.
	snapshotMetadataEvery = 64
)

// snapshotMeta is a snapshot event's custom metadata.
type snapshotMeta struct {
	Stream  string `json:"stream"`
	Version uint64 `json:"version"`
	EventID string `json:"eventId"`
	Fold    int    `json:"fold"`
}

// AppendWithSnapshot is Append that then keeps state as stream's snapshot at
// the version the append reached (see events.Snapshotter). The snapshot is
// written after the events, not with them: an append that fails writes
// none; one that succeeds returns its result even when the snapshot could
// not be written (that is logged to Options.Logger, and the next write of the
// stream writes one). No snapshot is written when the server answered the
// append as a retry without a position, or when the stream already holds
// events after the appended ones (a retry of older events, or a writer that
// came right after): a snapshot at an older version would only replace a
// newer one. A retry the server answers with a position, of the stream's
// last events, writes the snapshot of that same version again.
func (s *Store) AppendWithSnapshot(ctx context.Context, stream string, expected uint64, evs []events.Proposed, fold int, state []byte) (events.AppendResult, error) {
	if len(state) == 0 {
		return events.AppendResult{}, fmt.Errorf("%w to %q: empty snapshot state", ErrInvalidAppend, stream)
	}
	res, keep, err := s.appendEvents(ctx, stream, expected, evs)
	if err != nil || !keep {
		return res, err
	}
	s.keepSnapshot(ctx, snapshotMeta{Stream: stream, Version: res.Version, EventID: evs[len(evs)-1].ID, Fold: fold}, state)
	return res, nil
}

// keepSnapshot writes state as m.Stream's latest snapshot, and the snapshot
// stream's metadata when it is due. A failure is logged, not returned.
func (s *Store) keepSnapshot(ctx context.Context, m snapshotMeta, state []byte) {
	meta, err := json.Marshal(m)
	if err != nil {
		s.snapshotNotKept(m.Stream, err)
		return
	}
	name := SnapshotStream(m.Stream)
	ev := esdb.EventData{
		EventID: uuid.New(), EventType: snapshotEventType, ContentType: esdb.ContentTypeBinary,
		Data: state, Metadata: meta,
	}
	var md esdb.StreamMetadata
	md.SetMaxCount(snapshotMaxCount)
	err = s.do(ctx, func(c *esdb.Client) error {
		wr, err := c.AppendToStream(ctx, name, esdb.AppendToStreamOptions{ExpectedRevision: esdb.Any{}}, ev)
		if err != nil || wr.NextExpectedVersion%snapshotMetadataEvery != 0 {
			return err
		}
		_, err = c.SetStreamMetadata(ctx, name, esdb.AppendToStreamOptions{ExpectedRevision: esdb.Any{}}, md)
		return err
	})
	if err != nil {
		s.snapshotNotKept(m.Stream, s.failed(ctx, "keep the snapshot of "+m.Stream, err))
	}
}

func (s *Store) snapshotNotKept(stream string, err error) {
	if s.opts.Logger != nil {
		s.opts.Logger.Warn("event store: snapshot not kept; the next write of the stream reads its events and keeps one",
			slog.String("stream", stream), slog.Any("error", err))
	}
}

// ReadSnapshot returns stream's latest snapshot: the last event of its
// snapshot stream, read backwards, one event. ok is false when there is none
// (no snapshot stream, or one deleted, softly or hard), and when that event is not a snapshot of stream this adapter can decode
// (another writer's event, a corrupt one) or its state is empty or larger
// than maxState: data in the store is untrusted, and the reader then folds
// the stream's events. The server bounds an event's size, so a state larger
// than maxState is dropped after it arrived, never kept. The snapshot's Fold
// is returned as written: the reader decides whether it is its own. An error
// means the server could not be read (wrapping events.ErrUnavailable) or
// refused the read.
func (s *Store) ReadSnapshot(ctx context.Context, stream string, maxState int) (events.Snapshot, bool, error) {
	if stream == "" {
		return events.Snapshot{}, false, errors.New("esdbstore: read snapshot: empty stream name")
	}
	var (
		ev    *esdb.RecordedEvent
		found bool
	)
	err := s.do(ctx, func(c *esdb.Client) error {
		ev, found = nil, false
		rs, err := c.ReadStream(ctx, SnapshotStream(stream), esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}}, 1)
		if err != nil {
			return err
		}
		defer rs.Close()
		re, err := rs.Recv()
		switch {
		case isNotFound(err), isStreamDeleted(err), isEOF(err):
			return nil
		case err != nil:
			return err
		}
		ev, found = re.OriginalEvent(), re.OriginalEvent() != nil
		return nil
	})
	if err != nil {
		return events.Snapshot{}, false, s.failed(ctx, "read the snapshot of "+stream, err)
	}
	if !found {
		return events.Snapshot{}, false, nil
	}
	snap, ok := decodeSnapshot(ev, stream, maxState)
	return snap, ok, nil
}

// decodeSnapshot checks that e is a snapshot of stream, as keepSnapshot
// writes it, with a state of 1..maxState bytes.
func decodeSnapshot(e *esdb.RecordedEvent, stream string, maxState int) (events.Snapshot, bool) {
	if e.EventType != snapshotEventType || len(e.Data) == 0 || len(e.Data) > maxState {
		return events.Snapshot{}, false
	}
	var m snapshotMeta
	dec := json.NewDecoder(bytes.NewReader(e.UserMetadata))
	dec.DisallowUnknownFields()
	if dec.Decode(&m) != nil || dec.More() {
		return events.Snapshot{}, false
	}
	id, err := uuid.Parse(m.EventID)
	if m.Stream != stream || m.Version == 0 || err != nil || id.String() != m.EventID {
		return events.Snapshot{}, false
	}
	return events.Snapshot{Version: m.Version, EventID: m.EventID, Fold: m.Fold, State: e.Data}, true
}
