// Package events holds what every part of the service agrees on about events:
// the envelope of a stored event, the versioned JSON form of the ICP event
// payloads (the payloads themselves and their fold are package domain's),
// the fold of a recorded stream, the event store port, and the names under
// which events travel on the bus.
package events

import (
	"strings"
	"time"
)

// Event types. The type names the fact; the payload's schema version is kept
// beside it (SchemaVersion) so a type can evolve without a new name.
const (
	TypeICPCreated = "ICPCreated"
	TypeICPUpdated = "ICPUpdated"
	TypeICPDeleted = "ICPDeleted"
)

// StreamPrefix starts the name of every ICP stream: "icp-<id>".
const StreamPrefix = "icp-"

// StreamID names the stream that holds the events of one ICP.
func StreamID(icpID string) string { return StreamPrefix + icpID }

// ICPIDFromStream returns the ICP id of an ICP stream name, and false for any
// other stream.
func ICPIDFromStream(stream string) (string, bool) {
	if !strings.HasPrefix(stream, StreamPrefix) || len(stream) == len(StreamPrefix) {
		return "", false
	}
	return stream[len(StreamPrefix):], true
}

// Proposed is an event that a command handler asks the store to append.
//
// ID is a fresh random UUID per append attempt: the store treats a repeated
// append of the same IDs at the same expected version as the same append (a
// retry), and the same ID anywhere else as a new event.
type Proposed struct {
	ID            string // lowercase UUID
	Type          string // one of the Type* constants
	SchemaVersion int    // version of the payload's JSON form, >= 1
	Data          []byte // JSON payload
	Metadata      []byte // JSON object (see Metadata)
}

// Recorded is an event as the store holds it.
type Recorded struct {
	ID            string
	Type          string
	SchemaVersion int
	Data          []byte
	Metadata      []byte

	StreamID string
	// Version is the event's 1-based number within its stream: after it is
	// applied, the ICP is at this version.
	Version uint64
	// Position is the event's place in the store's global order: strictly
	// increasing in the order events were committed, > 0, not necessarily
	// contiguous (EventStoreDB commit positions are not).
	Position uint64
	// Time is when the store recorded the event (UTC).
	Time time.Time
}

// ICPID returns the id of the ICP the event belongs to ("" for a stream that
// is not an ICP stream).
func (r Recorded) ICPID() string {
	id, _ := ICPIDFromStream(r.StreamID)
	return id
}
