package esdbstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/icpservice/icp/events"
)

// An event's custom metadata in EventStoreDB is the envelope
//
//	{"schemaVersion":<n>,"metadata":<the event's metadata, byte for byte>}
//
// with the "metadata" member left out when the event has none. It is JSON,
// so the server's tools show it, and it is written and read by hand rather
// than with encoding/json because encoding/json compacts and re-escapes
// embedded JSON, and the metadata must come back exactly as it was given.
// The event's schema version cannot travel in the content type: the client
// only sends application/json or application/octet-stream.

const (
	envelopeHead = `{"schemaVersion":`
	envelopeMeta = `,"metadata":`
)

func encodeEnvelope(schemaVersion int, metadata []byte) []byte {
	b := make([]byte, 0, len(envelopeHead)+len(envelopeMeta)+len(metadata)+12)
	b = append(b, envelopeHead...)
	b = strconv.AppendInt(b, int64(schemaVersion), 10)
	if len(metadata) > 0 {
		b = append(b, envelopeMeta...)
		b = append(b, metadata...)
	}
	return append(b, '}')
}

var errNoEnvelope = errors.New("custom metadata is not this service's envelope")

func decodeEnvelope(b []byte) (schemaVersion int, metadata []byte, err error) {
	if !bytes.HasPrefix(b, []byte(envelopeHead)) || len(b) < len(envelopeHead)+2 || b[len(b)-1] != '}' {
		return 0, nil, errNoEnvelope
	}
	rest := b[len(envelopeHead) : len(b)-1]
	end := bytes.IndexByte(rest, ',')
	if end < 0 {
		end = len(rest)
	}
	n, err := strconv.Atoi(string(rest[:end]))
	if err != nil || n < 1 {
		return 0, nil, errNoEnvelope
	}
	rest = rest[end:]
	if len(rest) == 0 {
		return n, nil, nil
	}
	if !bytes.HasPrefix(rest, []byte(envelopeMeta)) {
		return 0, nil, errNoEnvelope
	}
	metadata = rest[len(envelopeMeta):]
	if !json.Valid(metadata) {
		return 0, nil, errNoEnvelope
	}
	return n, metadata, nil
}

// foreign tells whether an event of one of this service's streams was not
// written by this service, and why: its type is the server's (a "$" type,
// such as the $streamDeleted tombstone a hard delete leaves), or its custom
// metadata does not even start like the envelope. An event whose metadata
// starts like the envelope but does not decode is this service's and
// corrupt (recorded fails on it), never foreign.
func foreign(e *esdb.RecordedEvent) (events.Foreign, bool) {
	reason := ""
	switch {
	case strings.HasPrefix(e.EventType, "$"):
		reason = "a server event (type " + e.EventType + "), such as a hard-delete tombstone"
	case !bytes.HasPrefix(e.UserMetadata, []byte(envelopeHead)):
		reason = "no envelope of this service in its metadata: written by another writer"
	default:
		return events.Foreign{}, false
	}
	return events.Foreign{
		ID: e.EventID.String(), StreamID: e.StreamID, Type: e.EventType,
		Position: e.Position.Commit, Size: len(e.Data), Reason: reason,
	}, true
}

// recorded converts an event read from the server.
func recorded(e *esdb.RecordedEvent) (events.Recorded, error) {
	sv, meta, err := decodeEnvelope(e.UserMetadata)
	if err != nil {
		return events.Recorded{}, fmt.Errorf("esdbstore: event %s of %s at revision %d (position %d): %w: %w",
			e.EventID, e.StreamID, e.EventNumber, e.Position.Commit, events.ErrCorrupt, err)
	}
	return events.Recorded{
		ID:            e.EventID.String(),
		Type:          e.EventType,
		SchemaVersion: sv,
		Data:          e.Data,
		Metadata:      meta,
		StreamID:      e.StreamID,
		Version:       e.EventNumber + 1,
		Position:      e.Position.Commit,
		Time:          e.CreatedDate.UTC(),
	}, nil
}
