package commands

import (
	"fmt"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
)

// ErrBusLimitUnknown: the largest message the bus carries is not known yet
// (the process has not reached NATS since it started), so the handler cannot
// tell whether an event could ever be published, and records nothing. It
// wraps events.ErrUnavailable: retry later.
var ErrBusLimitUnknown = fmt.Errorf("commands: the bus's largest message size is not known yet: %w", events.ErrUnavailable)

// TooLargeError means the event a command would record is larger than the
// bus can carry (Size and Limit in bytes, as events.BusSize counts them plus
// events.BusHeaderRoom). Nothing was recorded: such an event could never be
// published, and the relay would be stuck on it.
type TooLargeError struct {
	Size, Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("the change would be recorded as an event of %d bytes; the bus carries at most %d", e.Size, e.Limit)
}

// WithBusLimit makes the handler refuse, before recording anything, an
// event the bus could not carry: maxPayload returns the bus's largest message
// (NATS max_payload, as the server announced it), or 0 while it is not known,
// when every command that would record fails with ErrBusLimitUnknown. An
// event fits when events.BusSize + events.BusHeaderRoom is at most that.
// Without this option the handler records events of any size.
func WithBusLimit(maxPayload func() int64) Option {
	return func(h *Handler) { h.busLimit = maxPayload }
}

// WithMaxDocBytes makes the handler refuse, with a *ValidationError and
// before recording anything, a create or update after which the ICP's JSON
// document would be longer than n bytes: the read model's limit (see
// projections.ReadModel.MaxDocBytes), which would otherwise refuse the view
// after the event was recorded. n <= 0: no limit.
func WithMaxDocBytes(n int) Option {
	return func(h *Handler) { h.maxDoc = n }
}

// MaxEventData returns the largest event data the bus could carry, less the
// room for headers (0: no bound, or not known yet). A request body larger
// than this cannot become an event that fits, since an event holds all of
// its body's content; the API refuses such a body before reading it all.
func (h *Handler) MaxEventData() int64 {
	if h.busLimit == nil {
		return 0
	}
	limit := h.busLimit()
	if limit <= 0 {
		return 0 // not known yet: a command answers ErrBusLimitUnknown
	}
	return max(limit-events.BusHeaderRoom, 1)
}

// checkLimits refuses proposed (to be appended to stream after version
// expected) when the bus could not carry one of its events, or when the ICP's
// document after it would exceed the read model's limit. That document is
// doc when not nil (a create's, already encoded), else the one of next, the
// fold after proposed (nil or deleted: no document).
func (h *Handler) checkLimits(stream string, expected uint64, proposed []events.Proposed, next *domain.State, doc []byte) error {
	if h.busLimit != nil {
		limit := h.busLimit()
		if limit <= 0 {
			return ErrBusLimitUnknown
		}
		for i, p := range proposed {
			if n := int64(events.BusSize(stream, expected+uint64(i)+1, p) + events.BusHeaderRoom); n > limit {
				return &TooLargeError{Size: n, Limit: limit}
			}
		}
	}
	if h.maxDoc > 0 && (doc != nil || next != nil && !next.Deleted) {
		n := len(doc)
		if doc == nil {
			b, err := events.MarshalJSON(next.ICP)
			if err != nil {
				return err
			}
			n = len(b)
		}
		if n > h.maxDoc {
			return &ValidationError{Message: "the ICP is too large to be stored", Details: []Detail{{
				Path:    "",
				Message: fmt.Sprintf("the ICP would take %d bytes as JSON; at most %d can be stored", n, h.maxDoc),
			}}}
		}
	}
	return nil
}
