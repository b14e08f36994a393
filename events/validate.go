package events

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// ErrInvalidAppend is wrapped by the error of an Append refused before
// anything was written because its arguments are malformed, by the port's
// rules (AppendProblems) or by the adapter's engine. Retrying the same
// arguments cannot succeed. It is neither ErrConflict nor ErrUnavailable.
var ErrInvalidAppend = errors.New("invalid append")

// AppendProblems returns what is wrong with an append's arguments by the
// rules of the Store port, which every adapter enforces alike (the
// conformance suite in events/storetest checks them): a stream name that is
// empty or not UTF-8; no events; an event whose id is not a lowercase UUID
// (a retry is recognised by its ids, so they must compare as written), whose
// type is empty, or whose schema version is below 1. Adapters add their
// engine's own limits to the list and report it with InvalidAppend.
func AppendProblems(stream string, evs []Proposed) []error {
	var errs []error
	switch {
	case stream == "":
		errs = append(errs, errors.New("empty stream name"))
	case !utf8.ValidString(stream):
		errs = append(errs, errors.New("stream name is not valid UTF-8"))
	}
	if len(evs) == 0 {
		errs = append(errs, errors.New("no events"))
	}
	for i, e := range evs {
		if !isLowerUUID(e.ID) {
			errs = append(errs, fmt.Errorf("event %d: id %q is not a lowercase UUID", i, shorten(e.ID)))
		}
		if e.Type == "" {
			errs = append(errs, fmt.Errorf("event %d: empty type", i))
		}
		if e.SchemaVersion < 1 {
			errs = append(errs, fmt.Errorf("event %d: schema version %d, want >= 1", i, e.SchemaVersion))
		}
	}
	return errs
}

// isLowerUUID reports whether id is a UUID as uuid.UUID.String writes it:
// 8-4-4-4-12 lowercase hex digits. It is what uuid.Parse(id) succeeding
// and its String() giving id back mean (TestIsLowerUUID), without the
// string that String allocates for every event appended.
func isLowerUUID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// InvalidAppend is the error of an append to stream refused for problems,
// wrapping ErrInvalidAppend and naming the adapter (nil when there are
// none).
func InvalidAppend(adapter, stream string, problems []error) error {
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %w to %q: %w", adapter, ErrInvalidAppend, shorten(stream), errors.Join(problems...))
}

// shorten keeps an error message readable when a name taken from the input
// is absurdly long: at most 80 bytes of it, cut at a character boundary.
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
