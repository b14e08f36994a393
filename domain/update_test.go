package domain

import (
	"errors"
	"testing"
)

func live(tenant string, members ...string) *State {
	return &State{ICP: ICP{ID: "a1", UserIDs: members}, Tenant: tenant, Version: 3}
}

func TestDecideUpdateAndDeleteCheckAccessThenPrecondition(t *testing.T) {
	member := Actor{UserID: "user_m", Tenant: "org_1"}
	outsider := Actor{UserID: "user_o", Tenant: "org_1"}
	admin := Actor{UserID: "user_a", Tenant: "org_1", Admin: true}
	otherAdmin := Actor{UserID: "user_m", Tenant: "org_2", Admin: true}
	deleted := live("org_1", "user_m")
	deleted.Deleted = true
	change := UpdateICP{Changes: ICPChanges{Name: Some("x")}}
	for _, tc := range []struct {
		name    string
		s       *State
		p       Actor
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
	_, ok, err := DecideUpdate(live("org_1", "user_m"), Actor{UserID: "user_m", Tenant: "org_1"}, UpdateICP{}, nil, fixedNow)
	if err != nil || ok {
		t.Fatalf("ok %v err %v, want no event and no error", ok, err)
	}
}

// Free-form JSON compares as the exact text accepted: the same filter sent
// again records nothing, and one that differs only in how a character is
// escaped is a change, since events and reads keep the text as sent.
func TestDecideUpdateComparesFreeFormJSONAsStored(t *testing.T) {
	s := live("org_1", "user_m")
	s.ICP.LeadProviderCriteria = []LeadProviderCriterion{{Provider: "baseProvider", Filters: []byte(`{"q":"<b>"}`)}}
	m := Actor{UserID: "user_m", Tenant: "org_1"}
	same := UpdateICP{Changes: ICPChanges{LeadProviderCriteria: Some([]LeadProviderCriterion{{Provider: "baseProvider", Filters: []byte(`{"q":"<b>"}`)}})}}
	if _, ok, err := DecideUpdate(s, m, same, nil, fixedNow); err != nil || ok {
		t.Fatalf("the same filters: ok %v err %v, want no event", ok, err)
	}
	escaped := UpdateICP{Changes: ICPChanges{LeadProviderCriteria: Some([]LeadProviderCriterion{{Provider: "baseProvider", Filters: []byte(`{"q":"\u003cb>"}`)}})}}
	ev, ok, err := DecideUpdate(s, m, escaped, nil, fixedNow)
	if err != nil || !ok || !ev.Changes.LeadProviderCriteria.Set {
		t.Fatalf("filters written otherwise: ok %v err %v changes %+v, want a change", ok, err, ev.Changes)
	}
	if s.ICP.LeadProviderCriteria[0].Provider != "baseProvider" || s.Version != 3 {
		t.Fatal("the decision changed the state it decided on")
	}
}
