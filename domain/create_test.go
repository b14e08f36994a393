package domain

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
)

var fixedNow = time.Date(2024, 1, 15, 11, 30, 0, 123456789, time.FixedZone("CET", 3600))

const caller = "user_caller"

func actor(tenant, user string) Actor { return Actor{UserID: user, Tenant: tenant} }

// encode is the ICP's JSON as encoding/json writes it without HTML
// escaping: byte for byte what events.MarshalJSON writes for an ICP.
func encode(t *testing.T, v any) string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
}

func TestDecideCreateRecordsTheWholeICP(t *testing.T) {
	cmd := CreateICP{
		Name:                 "N",
		LeadProviderCriteria: []LeadProviderCriterion{{Provider: "baseProvider", Filters: json.RawMessage(`{}`)}},
		CustomFilterCriteria: []CustomFilter{},
		UserIDs:              []string{"user_b"},
		LeadsPerList:         20,
	}
	ev, err := DecideCreate(nil, "a1", actor("org_1", caller), cmd, fixedNow)
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
		t.Errorf("userIds %v leadsPerList %d, want the caller added", ev.ICP.UserIDs, ev.ICP.LeadsPerList)
	}
	if !reflect.DeepEqual(cmd.UserIDs, []string{"user_b"}) {
		t.Errorf("the command's userIds became %v: the decision must not change its input", cmd.UserIDs)
	}
	want := `{"id":"a1","name":"N","description":null,"createdAt":"2024-01-15T10:30:00.123Z","updatedAt":"2024-01-15T10:30:00.123Z",` +
		`"leadProviderCriteria":[{"provider":"baseProvider","filters":{}}],"customFilterCriteria":[],"crmFilters":null,` +
		`"userIds":["user_b","user_caller"],"leadsPerList":20,"activeUntil":null}`
	if doc := encode(t, ev.ICP); doc != want {
		t.Errorf("ICP JSON\n got %s\nwant %s", doc, want)
	}
}

func TestDecideCreateUsesTheActorsTenantAndDefaults(t *testing.T) {
	ev, err := DecideCreate(nil, "a1", actor("personal:user_x", "user_x"), CreateICP{Name: "N"}, fixedNow)
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
	_, err := DecideCreate(&State{Version: 1}, "a1", actor("personal:u", "u"), CreateICP{Name: "N"}, fixedNow)
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("err = %v, want ErrConflict", err)
	}
	if _, err := DecideCreate(nil, "a1", Actor{Tenant: "org_1"}, CreateICP{Name: "N"}, fixedNow); err == nil {
		t.Fatal("a create without a caller was decided")
	}
}
