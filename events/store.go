package events

import (
	"context"
	"errors"
	"fmt"
)

// NoStream is the expected version of an append that creates its stream: the
// append fails with a *ConflictError if the stream already has any event.
const NoStream uint64 = 0

// ErrStreamNotFound is returned by ReadStream for a stream with no events.
var ErrStreamNotFound = errors.New("stream not found")

// ErrConflict is wrapped by every *ConflictError: the stream's version was not
// the expected one. errors.Is(err, ErrConflict) tests for it.
var ErrConflict = errors.New("wrong expected version")

// ErrUnavailable is wrapped by errors that mean the store could not be reached
// or answered too late: nothing may have been recorded, or something may have
// been (an append whose answer was lost). A retry of the same Proposed events
// at the same expected version is safe; it is deduplicated by event id.
var ErrUnavailable = errors.New("event store unavailable")

// ErrClosed is wrapped by the error of every call on a Store after its
// Close. It wraps ErrUnavailable: for a caller, a closed store is one that
// cannot be reached.
var ErrClosed = fmt.Errorf("event store is closed: %w", ErrUnavailable)

// ConflictError reports an append whose expected version did not match.
type ConflictError struct {
	Stream   string
	Expected uint64 // what the append expected (NoStream = 0)
	Actual   uint64 // the stream's version when the append was refused (0: no stream)
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("stream %s: expected version %d, stream is at %d", e.Stream, e.Expected, e.Actual)
}

// Unwrap lets errors.Is(err, ErrConflict) match.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// AppendResult describes a committed append.
type AppendResult struct {
	// Version is the stream's version after the append: the version of its
	// last event.
	Version uint64
	// Positions holds the global position of each appended event, in order.
	Positions []uint64
}

// Store is the event store port: the source of truth. Every adapter passes
// the conformance suite in events/storetest.
//
// Ordering: events of one stream are numbered 1, 2, 3, ... in the order they
// were appended. The global log orders every event by Position, and an event
// is visible in ReadAll/Follow only after everything before it in the global
// order is visible too (no later position may be seen before an earlier one).
//
// Idempotency (EventStoreDB's rule): an Append whose event ids equal, in
// order, the ids of events already at expected+1.. in that stream is a retry;
// it succeeds without writing and returns the original result. The same event
// id in another stream, or at another position, is a different event: ids are
// not unique across the store.
type Store interface {
	// Append appends evs atomically to stream, only if the stream is at
	// version expected (NoStream: does not exist). Durable when it returns
	// nil. A version mismatch that is not a retry returns a *ConflictError.
	// Arguments that break the port's rules (AppendProblems) are refused
	// with an error wrapping ErrInvalidAppend, nothing written. An empty
	// evs is such an error. Append never modifies evs, but an adapter
	// may keep referring to the events' Data and Metadata after it returns,
	// even after an error (the SQLite adapter serves its followers the
	// latest events from memory): the caller must not modify them
	// afterwards.
	Append(ctx context.Context, stream string, expected uint64, evs []Proposed) (AppendResult, error)

	// ReadStream returns the events of stream with Version >= from (from 0 or
	// 1: all), oldest first. A stream with no events returns ErrStreamNotFound.
	ReadStream(ctx context.Context, stream string, from uint64) ([]Recorded, error)

	// ReadStreamPage is ReadStream bounded: at most limit events (limit must
	// be > 0), so a long stream can be read a page at a time. A stream with
	// no events returns ErrStreamNotFound; one that exists but has nothing
	// from there returns no events and no error.
	ReadStreamPage(ctx context.Context, stream string, from uint64, limit int) ([]Recorded, error)

	// ReadAll returns up to limit events with Position > after, in global
	// order. An empty result means nothing after that position yet.
	ReadAll(ctx context.Context, after uint64, limit int) ([]Recorded, error)

	// Follow delivers, in global order and in batches of at most batchSize,
	// every event with Position > after: first those already stored, then
	// new ones as they are committed. It returns when ctx ends (with
	// ctx.Err()), when fn returns an error (that error), or when the store
	// fails. A batch is delivered only after fn returned for the previous one.
	Follow(ctx context.Context, after uint64, batchSize int, fn func([]Recorded) error) error

	// StreamVersions returns the current version of each of streams: the
	// version of its last committed event. A stream with no events is
	// absent from the map. The answer is at least as new as every append
	// that returned before the call began, so a reader comparing it with a
	// copy it holds (a read model's view) learns whether that copy is
	// stale. Any number of streams may be asked at once; adapters batch
	// them. Duplicates and empty names are ignored.
	StreamVersions(ctx context.Context, streams []string) (map[string]uint64, error)

	// Head returns the position of the last committed event (0 when empty).
	Head(ctx context.Context) (uint64, error)

	// Ping reports whether the store is reachable now.
	Ping(ctx context.Context) error

	// Close releases the store; pending appends fail or complete first.
	// Later calls fail with an error wrapping ErrClosed.
	Close() error
}
