package domain

import (
	"errors"
	"testing"
)

// The one access rule, as every reader and writer applies it: other
// tenants' and deleted ICPs do not exist for the actor; in its tenant a
// member or an admin may read and change an ICP; a list shows only the ICPs
// that list the actor, admin or not.
func TestAccessRule(t *testing.T) {
	member := Actor{UserID: "user_m", Tenant: "org_1"}
	outsider := Actor{UserID: "user_o", Tenant: "org_1"}
	admin := Actor{UserID: "user_a", Tenant: "org_1", Admin: true}
	otherAdmin := Actor{UserID: "user_m", Tenant: "org_2", Admin: true}
	members := []string{"user_x", "user_m"}
	for _, tc := range []struct {
		name    string
		a       Actor
		tenant  string
		deleted bool
		want    error
		inList  bool
	}{
		{"member", member, "org_1", false, nil, true},
		{"admin, not a member", admin, "org_1", false, nil, false},
		{"not a member", outsider, "org_1", false, ErrForbidden, false},
		{"deleted, for a member", member, "org_1", true, ErrNotFound, false},
		{"deleted, for an admin", admin, "org_1", true, ErrNotFound, false},
		{"another tenant, even for an admin", otherAdmin, "org_1", false, ErrNotFound, false},
		{"another tenant, though listed", member, "org_2", false, ErrNotFound, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Authorize(tc.a, tc.tenant, tc.deleted, members); !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Errorf("Authorize = %v, want %v", err, tc.want)
			}
			if got := InList(tc.a, tc.tenant, tc.deleted, members); got != tc.inList {
				t.Errorf("InList = %v, want %v", got, tc.inList)
			}
			s := &State{ICP: ICP{ID: "a1", UserIDs: members}, Tenant: tc.tenant, Deleted: tc.deleted, Version: 1}
			if err := AuthorizeState(tc.a, s); !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Errorf("AuthorizeState = %v, want %v", err, tc.want)
			}
		})
	}
	if err := AuthorizeState(admin, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("an ICP with no events: %v, want ErrNotFound", err)
	}
}

func TestMembershipIsAnExactUserID(t *testing.T) {
	members := []string{"user_a", "user_b"}
	for user, want := range map[string]bool{"user_a": true, "user_b": true, "user_": false, "USER_A": false, "": false} {
		if got := IsMember(members, user); got != want {
			t.Errorf("IsMember(%q) = %v, want %v", user, got, want)
		}
	}
	if IsMember(nil, "user_a") {
		t.Error("a member of no one's ICP")
	}
}

func TestICPIDOfNamesTheICPOfEveryPayload(t *testing.T) {
	for _, tc := range []struct {
		payload any
		want    string
	}{
		{ICPCreatedV1{ICP: ICP{ID: "c1"}, Tenant: "org_1"}, "c1"},
		{ICPUpdatedV1{ID: "u1"}, "u1"},
		{ICPDeletedV1{ID: "d1"}, "d1"},
		{&ICPCreatedV1{ICP: ICP{ID: "c1"}}, ""},
		{"c1", ""},
		{nil, ""},
	} {
		if got := ICPIDOf(tc.payload); got != tc.want {
			t.Errorf("ICPIDOf(%T) = %q, want %q", tc.payload, got, tc.want)
		}
	}
}
