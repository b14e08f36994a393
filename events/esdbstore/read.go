package esdbstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/icpservice/icp/events"
)

// readAll is the count of a read that runs until the caller stops it.
const readAll = math.MaxInt64

// ReadStream returns the events of stream with Version >= from (0 or 1:
// all), oldest first. A stream the server does not find (never written, or
// deleted, softly or hard) returns an error wrapping events.ErrStreamNotFound; a stream that
// exists but has nothing from there returns no events and no error.
func (s *Store) ReadStream(ctx context.Context, stream string, from uint64) ([]events.Recorded, error) {
	return s.readStream(ctx, stream, from, readAll)
}

// ReadStreamPage returns up to limit events of stream with Version >= from,
// oldest first (see events.Store and ReadStream).
func (s *Store) ReadStreamPage(ctx context.Context, stream string, from uint64, limit int) ([]events.Recorded, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("esdbstore: read stream page: limit %d, want > 0", limit)
	}
	return s.readStream(ctx, stream, from, uint64(limit))
}

func (s *Store) readStream(ctx context.Context, stream string, from, count uint64) ([]events.Recorded, error) {
	if stream == "" {
		return nil, errors.New("esdbstore: read stream: empty stream name")
	}
	var start esdb.StreamPosition = esdb.Start{}
	if from > 1 {
		start = esdb.Revision(from - 1)
	}
	var out []events.Recorded
	err := s.do(ctx, func(c *esdb.Client) error {
		out = nil
		rs, err := c.ReadStream(ctx, stream, esdb.ReadStreamOptions{From: start}, count)
		if err != nil {
			return err
		}
		defer rs.Close()
		for {
			ev, err := rs.Recv()
			if isEOF(err) {
				return nil
			}
			if err != nil {
				return err
			}
			r, err := recorded(ev.OriginalEvent())
			if err != nil {
				return err
			}
			out = append(out, r)
		}
	})
	if isNotFound(err) || isStreamDeleted(err) {
		return nil, fmt.Errorf("esdbstore: stream %s: %w", stream, events.ErrStreamNotFound)
	}
	if err != nil {
		return nil, s.failed(ctx, "read stream "+stream, err)
	}
	return out, nil
}

// ReadAll returns up to limit events of this service's streams with
// Position > after, in global order, passing over foreign events (see
// events.ForeignFollower). It reads $all from after and filters
// on the client (the client cannot ask for a filtered read), so a long run
// of other streams' events costs reading them.
func (s *Store) ReadAll(ctx context.Context, after uint64, limit int) ([]events.Recorded, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("esdbstore: read all: limit %d, want > 0", limit)
	}
	var out []events.Recorded
	err := s.do(ctx, func(c *esdb.Client) error {
		out = nil
		// Reads of $all include the event at the start position: skip it.
		rs, err := c.ReadAll(ctx, esdb.ReadAllOptions{From: allPosition(after)}, readAll)
		if err != nil {
			return err
		}
		defer rs.Close()
		for len(out) < limit {
			ev, err := rs.Recv()
			if isEOF(err) {
				return nil
			}
			if err != nil {
				return err
			}
			e := ev.OriginalEvent()
			if e.Position.Commit <= after || !s.ours(e.StreamID) {
				continue
			}
			if _, ok := foreign(e); ok {
				continue
			}
			r, err := recorded(e)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, s.failed(ctx, fmt.Sprintf("read all after %d", after), err)
	}
	return out, nil
}

// Head returns the position of the last event of this service's streams (0
// when there is none; foreign events do not count), reading $all backwards
// past other streams' events.
func (s *Store) Head(ctx context.Context) (uint64, error) {
	var head uint64
	err := s.do(ctx, func(c *esdb.Client) error {
		head = 0
		rs, err := c.ReadAll(ctx, esdb.ReadAllOptions{Direction: esdb.Backwards, From: esdb.End{}}, readAll)
		if err != nil {
			return err
		}
		defer rs.Close()
		for {
			ev, err := rs.Recv()
			if isEOF(err) {
				return nil
			}
			if err != nil {
				return err
			}
			if e := ev.OriginalEvent(); s.ours(e.StreamID) {
				if _, ok := foreign(e); ok {
					continue
				}
				head = e.Position.Commit
				return nil
			}
		}
	})
	if err != nil {
		return 0, s.failed(ctx, "head", err)
	}
	return head, nil
}

// ours reports whether stream is one of this service's streams.
func (s *Store) ours(stream string) bool { return strings.HasPrefix(stream, s.opts.StreamPrefix) }

// allPosition is the position in $all of our Position p (commit and prepare
// positions are equal for every event written without an explicit
// transaction, which the gRPC protocol does not offer).
func allPosition(p uint64) esdb.AllPosition {
	if p == 0 {
		return esdb.Start{}
	}
	return esdb.Position{Commit: p, Prepare: p}
}
