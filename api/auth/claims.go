package auth

import (
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// sessionClaims are the claims of a Clerk session token that matter here,
// in both of Clerk's shapes: v1 tokens carry the organisation as org_id and
// org_role ("org:admin"); v2 tokens (v = 2) carry it as the object o with id
// and rol ("admin"). Development tokens use the v2 shape.
type sessionClaims struct {
	jwt.RegisteredClaims
	AuthorizedParty string    `json:"azp,omitempty"`
	Version         int       `json:"v,omitempty"`
	OrgID           string    `json:"org_id,omitempty"`
	OrgRole         string    `json:"org_role,omitempty"`
	Org             *orgClaim `json:"o,omitempty"`
}

// orgClaim is the o object of a v2 session token.
type orgClaim struct {
	ID   string `json:"id"`
	Role string `json:"rol,omitempty"`
	Slug string `json:"slg,omitempty"`
}

// MaxIDLength bounds the user and organisation ids a token may carry: the
// user id ends up in an ICP's userIds, whose entries the API caps at 128
// characters.
const MaxIDLength = 128

// DefaultAdminRoles are the organisation roles that make a caller an admin
// when none are configured: Clerk's v1 ("org:admin") and v2 ("admin") names
// of the built-in admin role.
var DefaultAdminRoles = []string{"org:admin", "admin"}

// policy turns verified claims into a Principal. Clerk and development
// tokens share it, so both modes grant the same rights for the same claims.
type policy struct {
	authorizedParties []string
	adminRoles        []string
	adminUsers        []string
}

// newPolicy copies its arguments. Origins are compared without a trailing
// slash. Empty admin roles and users are dropped:
// an empty role would make every member of an organisation whose token
// states no role an admin.
func newPolicy(authorizedParties, adminRoles, adminUsers []string) policy {
	isEmpty := func(s string) bool { return s == "" }
	adminRoles = slices.DeleteFunc(slices.Clone(adminRoles), isEmpty)
	if len(adminRoles) == 0 {
		adminRoles = slices.Clone(DefaultAdminRoles)
	}
	parties := make([]string, 0, len(authorizedParties))
	for _, o := range authorizedParties {
		parties = append(parties, strings.TrimSuffix(o, "/"))
	}
	return policy{
		authorizedParties: parties,
		adminRoles:        adminRoles,
		adminUsers:        slices.DeleteFunc(slices.Clone(adminUsers), isEmpty),
	}
}

// principal checks the claims jwt's validator does not know (azp, sub, the
// organisation) and builds the caller's Principal. The organisation comes
// from o when present, else from org_id; a role without an organisation is
// ignored. Admin holds when the caller's role in its organisation is one of
// the admin roles, or the caller is in the admin user list.
func (p policy) principal(c *sessionClaims) (Principal, error) {
	if len(p.authorizedParties) > 0 &&
		(c.AuthorizedParty == "" || !slices.Contains(p.authorizedParties, strings.TrimSuffix(c.AuthorizedParty, "/"))) {
		return Principal{}, refused(ReasonAuthorizedParty)
	}
	if !validID(c.Subject) {
		return Principal{}, refused(ReasonSubject)
	}
	pr := Principal{UserID: c.Subject}
	switch {
	case c.Org != nil && c.Org.ID != "":
		pr.OrgID, pr.OrgRole = c.Org.ID, c.Org.Role
	case c.Org != nil && c.Org.Role != "":
		return Principal{}, refused(ReasonOrganisation)
	default:
		pr.OrgID, pr.OrgRole = c.OrgID, c.OrgRole
	}
	if pr.OrgID == "" {
		pr.OrgRole = ""
	} else if !validOrgID(pr.OrgID) || len(pr.OrgRole) > MaxIDLength {
		return Principal{}, refused(ReasonOrganisation)
	}
	pr.Admin = (pr.OrgID != "" && slices.Contains(p.adminRoles, pr.OrgRole)) ||
		slices.Contains(p.adminUsers, pr.UserID)
	return pr, nil
}

// validID accepts what a Clerk id looks like, and more: 1 to MaxIDLength
// printable ASCII characters without spaces.
func validID(s string) bool {
	if s == "" || len(s) > MaxIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// validOrgID is validID, and refuses ids that could pass for a personal
// tenant (Principal.Tenant), so no organisation can share a user's scope.
func validOrgID(s string) bool {
	return validID(s) && !strings.HasPrefix(s, personalPrefix)
}
