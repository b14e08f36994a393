package sqlitestore

import (
	"fmt"

	"github.com/icpservice/icp/events"
)

// Limits on what an append may carry, beyond the port's rules
// (events.AppendProblems). They keep one caller's bad input from failing a
// whole group-commit batch inside SQLite.
const (
	maxStreamLen  = 1024     // bytes
	maxTypeLen    = 256      // bytes
	maxEventBytes = 16 << 20 // data + metadata of one event
	maxAppendLen  = 10_000   // events in one append
)

// ErrInvalidAppend is events.ErrInvalidAppend, which the error of an Append
// refused before anything was written wraps. Retrying the same arguments
// cannot succeed.
var ErrInvalidAppend = events.ErrInvalidAppend

// validateAppend checks an append's arguments by the port's rules and this
// store's limits, and reports every problem it finds.
func validateAppend(stream string, evs []events.Proposed) error {
	errs := events.AppendProblems(stream, evs)
	if len(stream) > maxStreamLen {
		errs = append(errs, fmt.Errorf("stream name longer than %d bytes", maxStreamLen))
	}
	if len(evs) > maxAppendLen {
		errs = append(errs, fmt.Errorf("%d events in one append, at most %d", len(evs), maxAppendLen))
	}
	for i, e := range evs {
		if len(e.Type) > maxTypeLen {
			errs = append(errs, fmt.Errorf("event %d: type longer than %d bytes", i, maxTypeLen))
		}
		if len(e.Data)+len(e.Metadata) > maxEventBytes {
			errs = append(errs, fmt.Errorf("event %d: data and metadata larger than %d bytes", i, maxEventBytes))
		}
	}
	return events.InvalidAppend("sqlitestore", stream, errs)
}
