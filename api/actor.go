package api

import (
	"github.com/icpservice/icp/api/auth"
	"github.com/icpservice/icp/domain"
)

// actorOf is the domain's actor for a verified token: its user, the tenant
// its ICPs belong to (the active organisation, else the user's personal
// scope) and whether it administers that tenant. It is the one place where
// how a caller proved who they are meets the domain's rules.
func actorOf(p auth.Principal) domain.Actor {
	return domain.Actor{UserID: p.UserID, Tenant: p.Tenant(), Admin: p.Admin}
}
