package events_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
)

func sampleICP() domain.ICP {
	desc := "d"
	t0 := domain.NewTime(time.Date(2024, 1, 15, 10, 30, 0, 123456789, time.UTC))
	return domain.ICP{
		ID: "550e8400-e29b-41d4-a716-446655440000", Name: "DACH", Description: &desc,
		CreatedAt: t0, UpdatedAt: t0,
		LeadProviderCriteria: []domain.LeadProviderCriterion{{Provider: "baseProvider", Filters: json.RawMessage(`{"a.b":{"$gt":12345678901234567890}}`)}},
		CustomFilterCriteria: []domain.CustomFilter{{Type: "maxPeoplePerCompany", Value: json.RawMessage(`2`)}},
		UserIDs:              []string{"user_a"}, LeadsPerList: 10,
	}
}

func created(t *testing.T) events.Recorded {
	t.Helper()
	p, err := events.Encode("0b0e6a52-34b8-4a8e-8a3a-9d3f4f7c1a11", domain.ICPCreatedV1{ICP: sampleICP(), Tenant: "org_1", CreatedBy: "user_a"}, events.Metadata{Tenant: "org_1", UserID: "user_a"})
	if err != nil {
		t.Fatal(err)
	}
	return events.Recorded{ID: p.ID, Type: p.Type, SchemaVersion: p.SchemaVersion, Data: p.Data, Metadata: p.Metadata,
		StreamID: events.StreamID(sampleICP().ID), Version: 1, Position: 7, Time: time.Now()}
}

func TestEncodeDecodeKeepsFreeFormJSONExactly(t *testing.T) {
	r := created(t)
	p, err := events.DecodeRecorded(r)
	if err != nil {
		t.Fatal(err)
	}
	c := p.(domain.ICPCreatedV1)
	if got := string(c.ICP.LeadProviderCriteria[0].Filters); got != `{"a.b":{"$gt":12345678901234567890}}` {
		t.Fatalf("filters changed: %s", got)
	}
	if !strings.Contains(string(r.Data), `"createdAt":"2024-01-15T10:30:00.123Z"`) {
		t.Fatalf("time not in the contract's form: %s", r.Data)
	}
	if strings.Contains(string(r.Data), `\u003c`) {
		t.Fatal("HTML escaping must be off")
	}
}

func TestDecodeTellsUnknownVersionFromCorrupt(t *testing.T) {
	for _, tc := range []struct {
		name    string
		typ     string
		version int
		data    string
		want    error
	}{
		{"newer schema", events.TypeICPCreated, 2, `{}`, events.ErrUnknownVersion},
		{"unknown type", "ICPArchived", 1, `{}`, events.ErrUnknownVersion},
		{"not JSON", events.TypeICPCreated, 1, `{"icp":`, events.ErrCorrupt},
		{"trailing data", events.TypeICPDeleted, 1, `{"id":"x","deletedAt":"2024-01-01T00:00:00Z"} {}`, events.ErrCorrupt},
		{"missing tenant", events.TypeICPCreated, 1, `{"icp":{"id":"x","createdAt":"2024-01-01T00:00:00Z"}}`, events.ErrCorrupt},
		{"schema zero", events.TypeICPCreated, 0, `{}`, events.ErrCorrupt},
		{"update clears name", events.TypeICPUpdated, 1, `{"id":"x","updatedAt":"2024-01-01T00:00:00Z","changes":{"name":null}}`, events.ErrCorrupt},
		{"update clears userIds", events.TypeICPUpdated, 1, `{"id":"x","updatedAt":"2024-01-01T00:00:00Z","changes":{"userIds":null}}`, events.ErrCorrupt},
		{"update without updatedAt", events.TypeICPUpdated, 1, `{"id":"x","changes":{}}`, events.ErrCorrupt},
		{"delete without deletedAt", events.TypeICPDeleted, 1, `{"id":"x"}`, events.ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := events.Decode(tc.typ, tc.version, []byte(tc.data))
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := events.Decode(events.TypeICPUpdated, 1, []byte(`{"id":"x","updatedAt":"2024-01-01T00:00:00Z","changes":{"description":null,"crmFilters":null,"activeUntil":null}}`)); err != nil {
		t.Fatalf("clearing a nullable field is valid: %v", err)
	}
}

func TestFoldAppliesUpdatesAndDeletesInOrder(t *testing.T) {
	r1 := created(t)
	up, err := events.Encode("5b1c3c1e-0000-4000-8000-000000000002", domain.ICPUpdatedV1{
		ID: sampleICP().ID, UpdatedAt: domain.NewTime(time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)), UpdatedBy: "user_a",
		Changes: domain.ICPChanges{Name: domain.Some("Renamed"), Description: domain.Null[string](), UserIDs: domain.Some([]string{"user_b"})},
	}, events.Metadata{})
	if err != nil {
		t.Fatal(err)
	}
	r2 := events.Recorded{ID: up.ID, Type: up.Type, SchemaVersion: 1, Data: up.Data, StreamID: r1.StreamID, Version: 2, Position: 9}
	if !strings.Contains(string(up.Data), `"description":null`) || strings.Contains(string(up.Data), `"leadsPerList"`) {
		t.Fatalf("update must carry explicit clears and only changed fields: %s", up.Data)
	}
	s, err := events.Fold([]events.Recorded{r1, r2})
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != 2 || s.CreatedPosition != 7 || s.ICP.Name != "Renamed" || s.ICP.Description != nil || s.ICP.UserIDs[0] != "user_b" || s.ICP.LeadsPerList != 10 || s.ICP.UpdatedAt.String() != "2024-02-01T00:00:00.000Z" {
		t.Fatalf("fold: %+v", s)
	}
	if _, err := events.Fold([]events.Recorded{r2}); !errors.Is(err, domain.ErrOutOfOrder) {
		t.Fatalf("an update without its create must be out of order, got %v", err)
	}
	del, _ := events.Encode("5b1c3c1e-0000-4000-8000-000000000003", domain.ICPDeletedV1{ID: sampleICP().ID, DeletedAt: domain.NewTime(time.Now()), DeletedBy: "user_a"}, events.Metadata{})
	r3 := events.Recorded{ID: del.ID, Type: del.Type, SchemaVersion: 1, Data: del.Data, StreamID: r1.StreamID, Version: 3, Position: 11}
	s, err = events.Fold([]events.Recorded{r1, r2, r3})
	if err != nil || !s.Deleted || s.Version != 3 {
		t.Fatalf("delete: %+v %v", s, err)
	}
	r4 := r2
	r4.Version = 4
	if _, err := events.Fold([]events.Recorded{r1, r2, r3, r4}); !errors.Is(err, domain.ErrOutOfOrder) {
		t.Fatalf("nothing folds onto a deleted ICP, got %v", err)
	}
}

func TestBusHeadersRoundTrip(t *testing.T) {
	r := created(t)
	h := events.Headers(r)
	for k, want := range map[string]string{
		"ce-specversion": "1.0", "ce-id": r.ID, "ce-type": "icp.ICPCreated.v1", "ce-source": "/icp-service",
		"ce-subject": sampleICP().ID, "ce-icpversion": "1", "ce-icpposition": "7",
	} {
		if h[k] != want {
			t.Errorf("header %s = %q, want %q", k, h[k], want)
		}
	}
	back, err := events.FromHeaders(func(k string) string { return h[k] }, r.Data)
	if err != nil {
		t.Fatal(err)
	}
	if back.ID != r.ID || back.Type != r.Type || back.SchemaVersion != 1 || back.Version != 1 || back.Position != 7 || back.StreamID != r.StreamID || string(back.Metadata) != string(r.Metadata) {
		t.Fatalf("round trip: %+v", back)
	}
	for _, bad := range []string{"", "ICPCreated.v1", "icp.ICPCreated", "icp.ICPCreated.v0", "icp..v1", "icp.ICPCreated.vx"} {
		h2 := map[string]string{}
		for k, v := range h {
			h2[k] = v
		}
		h2["ce-type"] = bad
		if _, err := events.FromHeaders(func(k string) string { return h2[k] }, r.Data); !errors.Is(err, events.ErrCorrupt) {
			t.Errorf("ce-type %q accepted: %v", bad, err)
		}
	}
}

func TestICPIDFromStreamTakesOnlyICPStreams(t *testing.T) {
	if id, ok := events.ICPIDFromStream("icp-abc"); !ok || id != "abc" {
		t.Fatal("ICPIDFromStream")
	}
	if _, ok := events.ICPIDFromStream("icp-"); ok {
		t.Fatal("empty id accepted")
	}
}
