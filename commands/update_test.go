package commands

import (
	"errors"
	"strings"
	"testing"

	"github.com/icpservice/icp/api/auth"
	"github.com/icpservice/icp/events"
)

func mustParseUpdate(t *testing.T, body string) UpdateICP {
	t.Helper()
	u, err := ParseUpdate([]byte(body))
	if err != nil {
		t.Fatalf("ParseUpdate(%s): %v", body, err)
	}
	return u
}

func TestParseUpdateTakesOnlyWhatWasSent(t *testing.T) {
	if u := mustParseUpdate(t, `{"unknown":1}`); !u.Changes.Empty() {
		t.Fatalf("changes from an empty patch: %+v", u.Changes)
	}
	u := mustParseUpdate(t, `{"name":" New ","description":null,"crmFilters":null,"activeUntil":null,"userIds":["user_x","user_x"],"leadsPerList":5}`)
	c := u.Changes
	if c.Name.V != "New" || !c.Description.Null || !c.CRMFilters.Null || !c.ActiveUntil.Null || !c.LeadsPerList.Set || c.LeadsPerList.V != 5 {
		t.Fatalf("changes %+v", c)
	}
	if !c.UserIDs.Set || len(c.UserIDs.V) != 1 || c.UserIDs.V[0] != "user_x" {
		t.Fatalf("userIds %+v, want exactly [user_x] (duplicates dropped, the caller not added on update)", c.UserIDs)
	}
	if c.LeadProviderCriteria.Set || c.CustomFilterCriteria.Set {
		t.Fatalf("fields not sent are set: %+v", c)
	}
	u = mustParseUpdate(t, `{"description":"d","crmFilters":{"provider":"bullhorn"},"activeUntil":"2030-01-01T00:00:00Z","leadProviderCriteria":[{"provider":"baseProvider","filters":{"a.b":1}}]}`)
	c = u.Changes
	if c.Description.V != "d" || c.CRMFilters.V.Provider.V != "bullhorn" || c.ActiveUntil.V.String() != "2030-01-01T00:00:00.000Z" || string(c.LeadProviderCriteria.V[0].Filters) != `{"a.b":1}` {
		t.Fatalf("changes %+v", c)
	}
}

func TestParseUpdateRefusesNullWhereItCannotClear(t *testing.T) {
	_, err := ParseUpdate([]byte(`{"name":null,"leadProviderCriteria":null,"customFilterCriteria":null,"userIds":null,"leadsPerList":null,"description":null}`))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v", err)
	}
	want := []string{"name", "leadProviderCriteria", "customFilterCriteria", "userIds", "leadsPerList"}
	if len(ve.Details) != len(want) {
		t.Fatalf("details %+v, want paths %v", ve.Details, want)
	}
	for i, p := range want {
		if ve.Details[i].Path != p || !strings.Contains(ve.Details[i].Message, "not null") {
			t.Errorf("detail %d = %+v, want %s refused as null", i, ve.Details[i], p)
		}
	}
}

func TestParseUpdateAppliesTheCreateLimits(t *testing.T) {
	_, err := ParseUpdate([]byte(`{"name":"","leadsPerList":1001,"userIds":[` + userList(101) + `],"customFilterCriteria":[{"type":"x","value":1}]} `))
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Details) != 4 {
		t.Fatalf("err = %v", err)
	}
	if _, err := ParseUpdate([]byte(`{} []`)); !errors.As(err, &ve) || len(ve.Details) != 0 {
		t.Fatalf("trailing data: %v", err)
	}
}

func TestParseUpdateRefusesAnICPWithoutMembers(t *testing.T) {
	_, err := ParseUpdate([]byte(`{"userIds":[]}`))
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Details) != 1 || ve.Details[0].Path != "userIds" || !strings.Contains(ve.Details[0].Message, "at least one") {
		t.Fatalf("err = %v, want one detail on userIds", err)
	}
	// Invalid entries are reported once each, not also as "no members".
	_, err = ParseUpdate([]byte(`{"userIds":[""]}`))
	if !errors.As(err, &ve) || len(ve.Details) != 1 || ve.Details[0].Path != "userIds[0]" {
		t.Fatalf("err = %v, want one detail on userIds[0]", err)
	}
}

func live(tenant string, members ...string) *events.State {
	return &events.State{ICP: events.ICP{ID: "a1", UserIDs: members}, Tenant: tenant, Version: 3}
}

func TestDecideUpdateAndDeleteCheckAccessThenPrecondition(t *testing.T) {
	member := auth.Principal{UserID: "user_m", OrgID: "org_1"}
	outsider := auth.Principal{UserID: "user_o", OrgID: "org_1"}
	admin := auth.Principal{UserID: "user_a", OrgID: "org_1", Admin: true}
	otherAdmin := auth.Principal{UserID: "user_m", OrgID: "org_2", Admin: true}
	deleted := live("org_1", "user_m")
	deleted.Deleted = true
	change := UpdateICP{Changes: events.ICPChanges{Name: events.Some("x")}}
	for _, tc := range []struct {
		name    string
		s       *events.State
		p       auth.Principal
		ifMatch []uint64
		want    error
	}{
		{"never created", nil, member, nil, ErrNotFound},
		{"deleted", deleted, member, nil, ErrNotFound},
		{"another tenant, even for its admin", live("org_1", "user_m"), otherAdmin, nil, ErrNotFound},
		{"not a member", live("org_1", "user_m"), outsider, nil, ErrForbidden},
		{"not a member, stale If-Match", live("org_1", "user_m"), outsider, []uint64{1}, ErrForbidden},
		{"member", live("org_1", "user_m"), member, nil, nil},
		{"admin", live("org_1", "user_m"), admin, nil, nil},
		{"If-Match current", live("org_1", "user_m"), member, []uint64{3}, nil},
		{"If-Match one of", live("org_1", "user_m"), member, []uint64{2, 3}, nil},
		{"If-Match stale", live("org_1", "user_m"), member, []uint64{2}, ErrPreconditionFailed},
		{"If-Match matching nothing", live("org_1", "user_m"), member, []uint64{}, ErrPreconditionFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, ok, err := DecideUpdate(tc.s, tc.p, change, tc.ifMatch, fixedNow)
			if !errors.Is(err, tc.want) || (err == nil) != ok {
				t.Fatalf("update: ok %v err %v, want %v", ok, err, tc.want)
			}
			if err == nil && (ev.ID != "a1" || ev.UpdatedBy != tc.p.UserID || ev.UpdatedAt.String() != "2024-01-15T10:30:00.123Z" || ev.Changes.Name.V != "x") {
				t.Errorf("event %+v", ev)
			}
			del, err := DecideDelete(tc.s, tc.p, tc.ifMatch, fixedNow)
			if !errors.Is(err, tc.want) {
				t.Fatalf("delete: err %v, want %v", err, tc.want)
			}
			if err == nil && (del.ID != "a1" || del.DeletedBy != tc.p.UserID) {
				t.Errorf("event %+v", del)
			}
		})
	}
}

func TestDecideUpdateWithNothingToChangeRecordsNothing(t *testing.T) {
	_, ok, err := DecideUpdate(live("org_1", "user_m"), auth.Principal{UserID: "user_m", OrgID: "org_1"}, UpdateICP{}, nil, fixedNow)
	if err != nil || ok {
		t.Fatalf("ok %v err %v, want no event and no error", ok, err)
	}
}
