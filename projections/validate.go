package projections

import (
	"errors"
	"math"

	"github.com/icpservice/icp/platform/jsonvalid"
)

// ErrClosed is wrapped, together with ErrUnavailable, by the error of every
// call on a ReadModel after its Close.
var ErrClosed = errors.New("read model closed")

// ValidateView checks a view by the rules of the ReadModel port, which every
// adapter enforces alike before the view reaches a write shared with other
// callers: a view no event fold can produce (no id or tenant, version 0, a
// version or position beyond a signed 64-bit integer, a live view without a
// JSON document or with an empty member id) is refused. Adapters add their
// engine's own limits (document size, string encoding) and report a failed
// check as a *RefusedError naming the view.
func ValidateView(v View) error {
	switch {
	case v.ID == "":
		return errors.New("empty id")
	case v.Tenant == "":
		return errors.New("empty tenant")
	case v.Version == 0:
		return errors.New("version must be >= 1")
	case v.Version > math.MaxInt64 || v.Position > math.MaxInt64:
		return errors.New("version and position must fit in a signed 64-bit integer")
	}
	if v.Deleted {
		return nil
	}
	if len(v.Doc) == 0 || !jsonvalid.Valid(v.Doc) {
		return errors.New("a live view needs a valid JSON doc")
	}
	for _, u := range v.UserIDs {
		if u == "" {
			return errors.New("empty member id")
		}
	}
	return nil
}
