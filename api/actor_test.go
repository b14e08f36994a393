package api

import (
	"testing"

	"github.com/icpservice/icp/api/auth"
	"github.com/icpservice/icp/domain"
)

// A verified token becomes the domain's actor: its user, its active
// organisation as the tenant (else the user's personal scope, which no
// organisation id can name), and its admin flag.
func TestActorOfAVerifiedToken(t *testing.T) {
	for _, tc := range []struct {
		p    auth.Principal
		want domain.Actor
	}{
		{auth.Principal{UserID: "user_x"}, domain.Actor{UserID: "user_x", Tenant: "personal:user_x"}},
		{auth.Principal{UserID: "user_x", OrgID: "org_1", OrgRole: "org:member"}, domain.Actor{UserID: "user_x", Tenant: "org_1"}},
		{auth.Principal{UserID: "user_a", OrgID: "org_1", OrgRole: "org:admin", Admin: true}, domain.Actor{UserID: "user_a", Tenant: "org_1", Admin: true}},
	} {
		if got := actorOf(tc.p); got != tc.want {
			t.Errorf("actorOf(%+v) = %+v, want %+v", tc.p, got, tc.want)
		}
	}
}
