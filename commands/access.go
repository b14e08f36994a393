package commands

import (
	"slices"

	"github.com/icpservice/icp/api/auth"
	"github.com/icpservice/icp/events"
)

// authorize decides whether p may read or change the ICP in state s:
// ErrNotFound when there is no live ICP in p's tenant (never created, deleted,
// or another tenant's: other tenants' ICPs are invisible, never forbidden);
// ErrForbidden when p is neither a member nor an admin; else nil.
func authorize(s *events.State, p auth.Principal) error {
	if s == nil || s.Deleted || s.Tenant != p.Tenant() {
		return ErrNotFound
	}
	if !p.Admin && !s.ICP.HasMember(p.UserID) {
		return ErrForbidden
	}
	return nil
}

// checkIfMatch enforces an If-Match precondition: ifMatch nil means none;
// otherwise the ICP's version must be one of the listed versions (an empty,
// non-nil list matches nothing).
func checkIfMatch(s *events.State, ifMatch []uint64) error {
	if ifMatch != nil && !slices.Contains(ifMatch, s.Version) {
		return ErrPreconditionFailed
	}
	return nil
}
