package schemas_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/schemas"
)

func TestEveryEventTypeThisReleaseWritesHasACompilingSchema(t *testing.T) {
	published := map[schemas.Key]bool{}
	for _, k := range schemas.All() {
		published[k] = true
		eventSchema(t, k.Type, k.SchemaVersion)
		var doc map[string]any
		b, _ := schemas.For(k.Type, k.SchemaVersion)
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		if want := "urn:icp-service:schema:" + events.CloudEventsType(k.Type, k.SchemaVersion); doc["$id"] != want {
			t.Errorf("%s: $id %v, want %s (named after ce-type)", schemas.FileName(k.Type, k.SchemaVersion), doc["$id"], want)
		}
	}
	for typ, v := range events.CurrentSchema {
		for n := 1; n <= v; n++ {
			if !published[schemas.Key{Type: typ, SchemaVersion: n}] {
				t.Errorf("no schema published for %s v%d", typ, n)
			}
		}
	}
	if len(published) == 0 {
		t.Fatal("no schema published")
	}
	if _, err := schemas.For(events.TypeICPCreated, 99); err == nil {
		t.Error("For accepted a version that is not published")
	}
	compile(t, schemas.Metadata())
}

// Each schema file stands alone (no cross-file references, so that any
// validator can load one file); the definitions they share must not drift
// apart.
func TestSharedDefinitionsAreTheSameInEveryFile(t *testing.T) {
	seen := map[string]any{}
	from := map[string]string{}
	for _, k := range schemas.All() {
		b, _ := schemas.For(k.Type, k.SchemaVersion)
		var doc struct {
			Defs map[string]any `json:"$defs"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		file := schemas.FileName(k.Type, k.SchemaVersion)
		for name, def := range doc.Defs {
			if prev, ok := seen[name]; ok && !reflect.DeepEqual(prev, def) {
				t.Errorf("$defs/%s differs between %s and %s", name, from[name], file)
			}
			seen[name], from[name] = def, file
		}
	}
}

// The schemas accept every shape the Go types can produce, including the
// optional and nullable fields the HTTP test may not reach.
func TestSchemasAcceptEveryShapeThePayloadTypesEncode(t *testing.T) {
	id := uuid.NewString()
	now := domain.NewTime(time.Now())
	desc := "Technology leaders"
	full := domain.ICP{
		ID: id, Name: "DACH", Description: &desc, CreatedAt: now, UpdatedAt: now,
		LeadProviderCriteria: []domain.LeadProviderCriterion{
			{Provider: "baseProvider", Type: domain.Some("company"), Filters: json.RawMessage(`{"a.b":[1],"$n":12345678901234567890}`)},
			{Provider: "baseProvider", Filters: json.RawMessage(`{}`)},
		},
		CustomFilterCriteria: []domain.CustomFilter{{Type: "maxPeoplePerCompany", Value: json.RawMessage(`2`)}},
		CRMFilters: &domain.CRMFilters{
			Provider: domain.Some("bullhorn"), TextSearch: domain.Null[string](), Query: json.RawMessage(`{"x":[null]}`),
			Filters: domain.Some([]domain.CRMFilter{{Path: "a", Mode: "eq", Value: json.RawMessage(`"v"`), Exclude: domain.Some(true)}}),
		},
		UserIDs: []string{"user_1", "user_2"}, LeadsPerList: 10, ActiveUntil: &now,
	}
	minimal := domain.ICP{ID: id, Name: "n", CreatedAt: now, UpdatedAt: now,
		LeadProviderCriteria: []domain.LeadProviderCriterion{}, CustomFilterCriteria: []domain.CustomFilter{},
		CRMFilters: &domain.CRMFilters{}, UserIDs: []string{"user_1"}, LeadsPerList: 1}
	cases := []any{
		domain.ICPCreatedV1{ICP: full, Tenant: "org_1", CreatedBy: "user_1"},
		domain.ICPCreatedV1{ICP: minimal, Tenant: "personal:user_1", CreatedBy: "user_1"},
		domain.ICPUpdatedV1{ID: id, UpdatedAt: now, UpdatedBy: "user_1", Changes: domain.ICPChanges{
			Name: domain.Some("x"), Description: domain.Some("d"), LeadProviderCriteria: domain.Some(full.LeadProviderCriteria),
			CustomFilterCriteria: domain.Some([]domain.CustomFilter{}), CRMFilters: domain.Some(*full.CRMFilters),
			UserIDs: domain.Some([]string{"user_2"}), LeadsPerList: domain.Some(5), ActiveUntil: domain.Some(now),
		}},
		domain.ICPUpdatedV1{ID: id, UpdatedAt: now, UpdatedBy: "user_1", Changes: domain.ICPChanges{
			Description: domain.Null[string](), CRMFilters: domain.Null[domain.CRMFilters](), ActiveUntil: domain.Null[domain.Time](),
		}},
		domain.ICPDeletedV1{ID: id, DeletedAt: now, DeletedBy: "user_1"},
	}
	for i, c := range cases {
		p, err := events.Encode(uuid.NewString(), c, events.Metadata{Tenant: "org_1", UserID: "user_1"})
		if err != nil {
			t.Fatal(err)
		}
		if why := validate(eventSchema(t, p.Type, p.SchemaVersion), p.Data); why != "" {
			t.Errorf("case %d (%s): %s\n%s", i, p.Type, why, p.Data)
		}
	}
}

// The schemas are not vacuous: bodies that break the contract are refused.
func TestSchemasRefuseBodiesThatBreakTheContract(t *testing.T) {
	id := uuid.NewString()
	icp := func(mod func(m map[string]any)) map[string]any {
		m := map[string]any{"id": id, "name": "n", "description": nil, "createdAt": "2024-01-15T10:30:00.000Z",
			"updatedAt": "2024-01-15T10:30:00.000Z", "leadProviderCriteria": []any{}, "customFilterCriteria": []any{},
			"crmFilters": nil, "userIds": []any{"user_1"}, "leadsPerList": 10, "activeUntil": nil}
		mod(m)
		return m
	}
	created := eventSchema(t, events.TypeICPCreated, 1)
	ok := map[string]any{"icp": icp(func(map[string]any) {}), "tenant": "org_1", "createdBy": "user_1"}
	if why := validate(created, mustJSON(t, ok)); why != "" {
		t.Fatalf("a valid body was refused: %s", why)
	}
	bad := map[string]map[string]any{
		"no tenant":           {"icp": icp(func(map[string]any) {}), "createdBy": "user_1"},
		"upper-case id":       {"icp": icp(func(m map[string]any) { m["id"] = "ABC" }), "tenant": "t", "createdBy": "u"},
		"time without millis": {"icp": icp(func(m map[string]any) { m["createdAt"] = "2024-01-15T10:30:00Z" }), "tenant": "t", "createdBy": "u"},
		"leadsPerList 0":      {"icp": icp(func(m map[string]any) { m["leadsPerList"] = 0 }), "tenant": "t", "createdBy": "u"},
		"missing userIds":     {"icp": icp(func(m map[string]any) { delete(m, "userIds") }), "tenant": "t", "createdBy": "u"},
		"string custom value": {"icp": icp(func(m map[string]any) {
			m["customFilterCriteria"] = []any{map[string]any{"type": "x", "value": "2"}}
		}), "tenant": "t", "createdBy": "u"},
		"unknown criterion type": {"icp": icp(func(m map[string]any) {
			m["leadProviderCriteria"] = []any{map[string]any{"provider": "p", "type": "robot", "filters": map[string]any{}}}
		}), "tenant": "t", "createdBy": "u"},
		"undocumented field": {"icp": icp(func(m map[string]any) { m["extra"] = 1 }), "tenant": "t", "createdBy": "u"},
	}
	for name, body := range bad {
		if validate(created, mustJSON(t, body)) == "" {
			t.Errorf("ICPCreated v1 accepted a body with %s", name)
		}
	}
	updated := eventSchema(t, events.TypeICPUpdated, 1)
	for name, body := range map[string]map[string]any{
		"no changes":  {"id": id, "updatedAt": "2024-01-15T10:30:00.000Z", "updatedBy": "u", "changes": map[string]any{}},
		"null name":   {"id": id, "updatedAt": "2024-01-15T10:30:00.000Z", "updatedBy": "u", "changes": map[string]any{"name": nil}},
		"no updater":  {"id": id, "updatedAt": "2024-01-15T10:30:00.000Z", "changes": map[string]any{"name": "x"}},
		"empty users": {"id": id, "updatedAt": "2024-01-15T10:30:00.000Z", "updatedBy": "u", "changes": map[string]any{"userIds": []any{}}},
	} {
		if validate(updated, mustJSON(t, body)) == "" {
			t.Errorf("ICPUpdated v1 accepted a body with %s", name)
		}
	}
	deleted := eventSchema(t, events.TypeICPDeleted, 1)
	if validate(deleted, mustJSON(t, map[string]any{"id": id, "deletedAt": "2024-01-15T10:30:00.000Z"})) == "" {
		t.Error("ICPDeleted v1 accepted a body without deletedBy")
	}
}
