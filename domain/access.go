package domain

import "slices"

// Actor is who asks: the user a command or a read is made for, the tenant
// their ICPs belong to, and whether they administer that tenant. The API
// builds it from a verified token; the domain keeps a type of its own so
// that its rules depend only on what they read, never on how a caller
// proved who they are, and no layer below the API imports it.
type Actor struct {
	// UserID is the user (a Clerk user id, "user_..."); never empty for an
	// actor the API admitted.
	UserID string
	// Tenant is the scope of the actor's ICPs: an organisation, or the
	// user's personal scope.
	Tenant string
	// Admin: the actor administers Tenant and may read and change every
	// ICP of it, member or not.
	Admin bool
}

// IsMember is the membership rule: userID is a member of an ICP whose
// userIds are members.
func IsMember(members []string, userID string) bool {
	return slices.Contains(members, userID)
}

// Authorize is the access rule: whether a may read or change an ICP of
// tenant whose members are members, deleted or not. ErrNotFound when the
// ICP is deleted or of another tenant (other tenants' ICPs are invisible,
// never forbidden, even to their admins); ErrForbidden when a is neither a
// member nor an admin; else nil.
func Authorize(a Actor, tenant string, deleted bool, members []string) error {
	if deleted || tenant != a.Tenant {
		return ErrNotFound
	}
	if !a.Admin && !IsMember(members, a.UserID) {
		return ErrForbidden
	}
	return nil
}

// AuthorizeState is Authorize for the ICP in state s; a nil s (an ICP with
// no events) is ErrNotFound.
func AuthorizeState(a Actor, s *State) error {
	if s == nil {
		return ErrNotFound
	}
	return Authorize(a, s.Tenant, s.Deleted, s.ICP.UserIDs)
}

// InList reports whether an ICP of tenant whose members are members belongs
// in a's list: live, in a's tenant, and listing a as a member. An admin's
// list holds the ICPs they are a member of, like anyone's; Authorize lets
// them read the others by id.
func InList(a Actor, tenant string, deleted bool, members []string) bool {
	return !deleted && tenant == a.Tenant && IsMember(members, a.UserID)
}
