package commands

import (
	"errors"
	"strings"
	"testing"

	"github.com/icpservice/icp/domain"
)

func mustParseUpdate(t *testing.T, body string) domain.UpdateICP {
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
