package commands

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/icpservice/icp/api/auth"
	"github.com/icpservice/icp/events"
)

var fixedNow = time.Date(2024, 1, 15, 11, 30, 0, 123456789, time.FixedZone("CET", 3600))

func principal(org, user string) auth.Principal { return auth.Principal{UserID: user, OrgID: org} }

func TestDecideCreateRecordsTheWholeICP(t *testing.T) {
	cmd := mustParse(t, valid(`"userIds":["user_b"],"leadsPerList":20`))
	ev, err := DecideCreate(nil, "a1", principal("org_1", caller), cmd, fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Tenant != "org_1" || ev.CreatedBy != caller || ev.ICP.ID != "a1" {
		t.Errorf("tenant/createdBy/id = %q/%q/%q", ev.Tenant, ev.CreatedBy, ev.ICP.ID)
	}
	if got := ev.ICP.CreatedAt.String(); got != "2024-01-15T10:30:00.123Z" || ev.ICP.UpdatedAt != ev.ICP.CreatedAt {
		t.Errorf("createdAt %s updatedAt %s, want both 2024-01-15T10:30:00.123Z", got, ev.ICP.UpdatedAt)
	}
	if !reflect.DeepEqual(ev.ICP.UserIDs, []string{"user_b", caller}) || ev.ICP.LeadsPerList != 20 {
		t.Errorf("userIds %v leadsPerList %d", ev.ICP.UserIDs, ev.ICP.LeadsPerList)
	}
	doc, _ := events.MarshalJSON(ev.ICP)
	want := `{"id":"a1","name":"N","description":null,"createdAt":"2024-01-15T10:30:00.123Z","updatedAt":"2024-01-15T10:30:00.123Z",` +
		`"leadProviderCriteria":[{"provider":"baseProvider","filters":{}}],"customFilterCriteria":[],"crmFilters":null,` +
		`"userIds":["user_b","user_caller"],"leadsPerList":20,"activeUntil":null}`
	if string(doc) != want {
		t.Errorf("ICP JSON\n got %s\nwant %s", doc, want)
	}
}

func TestDecideCreateUsesThePersonalTenantWithoutAnOrganisation(t *testing.T) {
	ev, err := DecideCreate(nil, "a1", principal("", "user_x"), CreateICP{Name: "N"}, fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Tenant != "personal:user_x" || !reflect.DeepEqual(ev.ICP.UserIDs, []string{"user_x"}) {
		t.Errorf("tenant %q userIds %v", ev.Tenant, ev.ICP.UserIDs)
	}
	if ev.ICP.LeadProviderCriteria == nil || ev.ICP.CustomFilterCriteria == nil || ev.ICP.LeadsPerList != DefaultLeadsPerList {
		t.Errorf("defaults missing: %+v", ev.ICP)
	}
}

func TestDecideCreateRefusesAnExistingICP(t *testing.T) {
	_, err := DecideCreate(&events.State{Version: 1}, "a1", principal("", "u"), CreateICP{Name: "N"}, fixedNow)
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("err = %v, want ErrConflict", err)
	}
}
