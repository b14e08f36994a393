package sqlitestore

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/icpservice/icp/events"
)

// Limits on what an append may carry. They keep one caller's bad input from
// failing a whole group-commit batch inside SQLite.
const (
	maxStreamLen  = 1024     // bytes
	maxTypeLen    = 256      // bytes
	maxEventBytes = 16 << 20 // data + metadata of one event
	maxAppendLen  = 10_000   // events in one append
)

// ErrInvalidAppend is wrapped by the error of an Append refused before
// anything was written because its arguments are malformed. Retrying the same
// arguments cannot succeed.
var ErrInvalidAppend = errors.New("sqlitestore: invalid append")

// validateAppend checks an append's arguments and reports every problem it
// finds.
func validateAppend(stream string, evs []events.Proposed) error {
	var errs []error
	switch {
	case stream == "":
		errs = append(errs, errors.New("empty stream name"))
	case len(stream) > maxStreamLen:
		errs = append(errs, fmt.Errorf("stream name longer than %d bytes", maxStreamLen))
	case !utf8.ValidString(stream):
		errs = append(errs, errors.New("stream name is not valid UTF-8"))
	}
	switch {
	case len(evs) == 0:
		errs = append(errs, errors.New("no events"))
	case len(evs) > maxAppendLen:
		errs = append(errs, fmt.Errorf("%d events in one append, at most %d", len(evs), maxAppendLen))
	}
	for i, e := range evs {
		if u, err := uuid.Parse(e.ID); err != nil || u.String() != e.ID {
			errs = append(errs, fmt.Errorf("event %d: id %q is not a lowercase UUID", i, shorten(e.ID)))
		}
		switch {
		case e.Type == "":
			errs = append(errs, fmt.Errorf("event %d: empty type", i))
		case len(e.Type) > maxTypeLen:
			errs = append(errs, fmt.Errorf("event %d: type longer than %d bytes", i, maxTypeLen))
		}
		if e.SchemaVersion < 1 {
			errs = append(errs, fmt.Errorf("event %d: schema version %d, want >= 1", i, e.SchemaVersion))
		}
		if len(e.Data)+len(e.Metadata) > maxEventBytes {
			errs = append(errs, fmt.Errorf("event %d: data and metadata larger than %d bytes", i, maxEventBytes))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w to %q: %w", ErrInvalidAppend, shorten(stream), errors.Join(errs...))
	}
	return nil
}

// shorten keeps error messages readable when a name is absurdly long.
func shorten(s string) string {
	const keep = 80
	if len(s) <= keep {
		return s
	}
	i := keep
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}
