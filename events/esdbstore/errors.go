package esdbstore

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/icpservice/icp/events"
)

// ErrClosed is returned by every method of a closed Store. It wraps
// events.ErrClosed (and so events.ErrUnavailable).
var ErrClosed = fmt.Errorf("esdbstore: %w", events.ErrClosed)

// ErrInvalidAppend is events.ErrInvalidAppend, which the error of an Append
// refused before anything was sent wraps. Retrying the same arguments
// cannot succeed.
var ErrInvalidAppend = events.ErrInvalidAppend

// The client's errors are classified with errors.As and status.Code, which
// see through wrapping; esdb.FromError does neither (a plain type assertion)
// and answers ok for a nil error.

func esdbCode(err error) (esdb.ErrorCode, bool) {
	var e *esdb.Error
	if errors.As(err, &e) {
		return e.Code(), true
	}
	return 0, false
}

// transient reports whether err means the server could not be reached or
// did not answer in time, so that the same call may succeed later.
// Subscriptions drop with the raw gRPC error, hence the status codes. An
// io.EOF that reaches failed is a stream the server ended while the call
// was still sending (gRPC reports the real status only to a receive, which
// the client does not make then): the connection broke mid-call. Reads
// handle the EOF that ends a stream before their errors get here.
func transient(err error) bool {
	if isEOF(err) {
		return true
	}
	if code, ok := esdbCode(err); ok {
		switch code {
		case esdb.ErrorUnavailable, esdb.ErrorCodeConnectionClosed, esdb.ErrorCodeDeadlineExceeded,
			esdb.ErrorCodeNotLeader, esdb.ErrorAborted:
			return true
		}
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.ResourceExhausted:
		return true
	}
	return false
}

// breaksClient reports whether err shows the client's connection gone: the
// client must not be used again (see conn.go).
func breaksClient(err error) bool {
	if code, ok := esdbCode(err); ok && (code == esdb.ErrorUnavailable || code == esdb.ErrorCodeConnectionClosed) {
		return true
	}
	return status.Code(err) == codes.Unavailable
}

func isWrongExpectedVersion(err error) bool {
	code, ok := esdbCode(err)
	return ok && code == esdb.ErrorCodeWrongExpectedVersion
}

func isNotFound(err error) bool {
	code, ok := esdbCode(err)
	return ok && code == esdb.ErrorCodeResourceNotFound
}

// isStreamDeleted reports the server's answer to a read of, or an append
// to, a hard-deleted stream.
func isStreamDeleted(err error) bool {
	code, ok := esdbCode(err)
	return ok && code == esdb.ErrorCodeStreamDeleted
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }

// failed turns the error of operation op into the port's terms: an error
// wrapping events.ErrUnavailable when the server was unreachable, too slow,
// or ctx ended (the operation may or may not have taken effect), else the
// error as it is. A nil err stays nil.
func (s *Store) failed(ctx context.Context, op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, events.ErrUnavailable):
		return fmt.Errorf("esdbstore: %s: %w", op, err)
	case ctx.Err() != nil:
		return fmt.Errorf("esdbstore: %s: %w: %w", op, events.ErrUnavailable, ctx.Err())
	case transient(err):
		return fmt.Errorf("esdbstore: %s: %w: %w", op, events.ErrUnavailable, err)
	default:
		return fmt.Errorf("esdbstore: %s: %w", op, err)
	}
}
