package esdbstore

import (
	"context"
	"fmt"
	"regexp"
	"strconv"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/icpservice/icp/events"
)

// Append appends evs to stream if the stream is at version expected
// (events.NoStream: does not exist), as one atomic write.
//
// Idempotency is the server's: the same event ids at the same expected
// version are a retry, answered with the original result. A version
// mismatch that is not a retry returns a *events.ConflictError whose Actual
// is the stream's version the server reported. An unreachable or slow
// server returns an error wrapping events.ErrUnavailable: the append may or
// may not have been recorded, and retrying the same call is safe.
//
// The positions of the appended events are read back from the stream after
// the write (one more round trip): the append's answer carries one position
// for the whole write, none at all for a retry, and which event it names
// differs between server versions.
func (s *Store) Append(ctx context.Context, stream string, expected uint64, evs []events.Proposed) (events.AppendResult, error) {
	res, _, err := s.appendEvents(ctx, stream, expected, evs)
	return res, err
}

// appendEvents is Append; fresh also reports whether a snapshot of the
// append's last version may be kept: false when the server answered the
// append as a retry without a position, or the stream already holds events
// after the appended ones.
func (s *Store) appendEvents(ctx context.Context, stream string, expected uint64, evs []events.Proposed) (res events.AppendResult, fresh bool, err error) {
	batch, err := encodeAppend(stream, evs)
	if err != nil {
		return events.AppendResult{}, false, err
	}
	var rev esdb.ExpectedRevision = esdb.NoStream{}
	if expected != events.NoStream {
		rev = esdb.Revision(expected - 1)
	}
	var wr *esdb.WriteResult
	err = s.do(ctx, func(c *esdb.Client) error {
		var err error
		wr, err = c.AppendToStream(ctx, stream, esdb.AppendToStreamOptions{ExpectedRevision: rev}, batch...)
		return err
	})
	if isWrongExpectedVersion(err) {
		actual, ok := reportedActual(err)
		if !ok {
			if actual, err = s.streamVersion(ctx, stream); err != nil {
				return events.AppendResult{}, false, s.failed(ctx, fmt.Sprintf("append to %s refused for its expected version %d; reading the stream's version", stream, expected), err)
			}
		}
		return events.AppendResult{}, false, &events.ConflictError{Stream: stream, Expected: expected, Actual: actual}
	}
	if err != nil {
		return events.AppendResult{}, false, s.failed(ctx, "append to "+stream, err)
	}
	version := wr.NextExpectedVersion + 1
	if want := expected + uint64(len(evs)); version != want {
		return events.AppendResult{}, false, fmt.Errorf("esdbstore: append to %s at version %d answered version %d, want %d", stream, expected, version, want)
	}
	positions, atTail, err := s.positions(ctx, stream, expected, batch)
	if err != nil {
		return events.AppendResult{}, false, s.failed(ctx, fmt.Sprintf("append to %s succeeded; reading back its positions", stream), err)
	}
	// A retry is answered without a position by servers that do not look
	// the original one up.
	fresh = atTail && wr.CommitPosition != 0
	return events.AppendResult{Version: version, Positions: positions}, fresh, nil
}

// The client reports a wrong expected version only as text, with the
// stream's current revision or "no_stream":
// "wrong expected version: expecting '<expected>' but got '<current>'".
var currentRevisionRE = regexp.MustCompile(`but got '([^']*)'`)

// reportedActual extracts the stream's version from a wrong expected version
// error, and false when the text is not the known one.
func reportedActual(err error) (uint64, bool) {
	m := currentRevisionRE.FindStringSubmatch(err.Error())
	if m == nil {
		return 0, false
	}
	if m[1] == "no_stream" {
		return 0, true
	}
	rev, perr := strconv.ParseUint(m[1], 10, 64)
	if perr != nil {
		return 0, false
	}
	return rev + 1, true
}

// streamVersion reads the version of stream's last event (0: no stream).
func (s *Store) streamVersion(ctx context.Context, stream string) (uint64, error) {
	var version uint64
	err := s.do(ctx, func(c *esdb.Client) error {
		rs, err := c.ReadStream(ctx, stream, esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}}, 1)
		if err != nil {
			return err
		}
		defer rs.Close()
		ev, err := rs.Recv()
		switch {
		case isNotFound(err), isStreamDeleted(err), isEOF(err):
			version = 0
			return nil
		case err != nil:
			return err
		}
		version = ev.OriginalEvent().EventNumber + 1
		return nil
	})
	if err != nil {
		return 0, err // version may still be written by an abandoned call
	}
	return version, nil
}

// positions reads the positions of the events just appended at versions
// expected+1.. and checks that they are those events. It also reports
// whether they were the stream's last events when read (it asks for one
// event more to find out).
func (s *Store) positions(ctx context.Context, stream string, expected uint64, batch []esdb.EventData) ([]uint64, bool, error) {
	positions := make([]uint64, 0, len(batch))
	atTail := true
	err := s.do(ctx, func(c *esdb.Client) error {
		positions, atTail = positions[:0], true
		rs, err := c.ReadStream(ctx, stream, esdb.ReadStreamOptions{From: esdb.Revision(expected)}, uint64(len(batch))+1)
		if err != nil {
			return err
		}
		defer rs.Close()
		for i := 0; ; i++ {
			ev, err := rs.Recv()
			if isEOF(err) {
				if i < len(batch) {
					return fmt.Errorf("read %d of the %d events appended", i, len(batch))
				}
				return nil
			}
			if err != nil {
				return err
			}
			e := ev.OriginalEvent()
			if i == len(batch) {
				atTail = false
				return nil
			}
			if e.EventID != batch[i].EventID || e.EventNumber != expected+uint64(i) {
				return fmt.Errorf("revision %d holds event %s, not the appended one", e.EventNumber, e.EventID)
			}
			positions = append(positions, e.Position.Commit)
		}
	})
	if err != nil {
		return nil, false, err // positions and atTail may still be written by an abandoned call
	}
	return positions, atTail, nil
}
