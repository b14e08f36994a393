package events

import "context"

// Foreign describes an event in a store's global log, inside this
// service's streams, that this service did not write: an event added by
// another writer or by hand, or a server's own record such as a hard-delete
// tombstone. It is never one of this service's events, so it is never
// published; a store that can hold such events reports them (see
// ForeignFollower) so that passing over them leaves a record.
type Foreign struct {
	// ID, StreamID and Type are as the store holds them.
	ID       string
	StreamID string
	Type     string
	// Position is the event's global position.
	Position uint64
	// Size is the length of its data in bytes.
	Size int
	// Reason says why it is not this service's event.
	Reason string
}

// ForeignFollower is implemented by event stores whose global log can hold
// foreign events in this service's streams (EventStoreDB: anyone may write
// to a stream). Their ReadAll, Head and Follow pass over such events
// silently; FollowReporting is Follow that also hands each one to foreign,
// in log order relative to the batches given to fn, before any later event
// of this service is delivered. An error from foreign ends it as an error
// from fn does. An event that carries this service's envelope but does not
// decode is corruption, not foreign: Follow and FollowReporting fail on it
// with an error wrapping ErrCorrupt.
type ForeignFollower interface {
	FollowReporting(ctx context.Context, after uint64, batchSize int, fn func([]Recorded) error, foreign func(Foreign) error) error
}
