package domain

import (
	"errors"
	"reflect"
	"testing"
)

// Evolve folds each event onto the state at the version before it and
// leaves the state it was given as it was: a decision that folds its own
// event to answer never changes the state it loaded.
func TestEvolveFoldsInOrderAndLeavesItsInputAlone(t *testing.T) {
	created := ICPCreatedV1{ICP: ICP{ID: "a1", Name: "N", UserIDs: []string{"user_a"}, LeadsPerList: 10}, Tenant: "org_1", CreatedBy: "user_a"}
	s1, err := Evolve(nil, created, 1, 7)
	if err != nil || s1.Version != 1 || s1.CreatedPosition != 7 || s1.Tenant != "org_1" || s1.ICP.Name != "N" {
		t.Fatalf("create: %+v %v", s1, err)
	}
	before := *s1
	up := ICPUpdatedV1{ID: "a1", UpdatedAt: NewTime(fixedNow), Changes: ICPChanges{Name: Some("M"), UserIDs: Some([]string{"user_b"})}}
	s2, err := Evolve(s1, up, 2, 9)
	if err != nil || s2.Version != 2 || s2.CreatedPosition != 7 || s2.ICP.Name != "M" || !reflect.DeepEqual(s2.ICP.UserIDs, []string{"user_b"}) || s2.ICP.UpdatedAt != NewTime(fixedNow) {
		t.Fatalf("update: %+v %v", s2, err)
	}
	if !reflect.DeepEqual(*s1, before) {
		t.Fatalf("the state folded onto changed: %+v, was %+v", *s1, before)
	}
	s3, err := Evolve(s2, ICPDeletedV1{ID: "a1", DeletedAt: NewTime(fixedNow)}, 3, 11)
	if err != nil || !s3.Deleted || s3.Version != 3 || s2.Deleted {
		t.Fatalf("delete: %+v %v", s3, err)
	}
	for name, try := range map[string]func() (*State, error){
		"a gap":                  func() (*State, error) { return Evolve(s1, up, 3, 9) },
		"a create onto an ICP":   func() (*State, error) { return Evolve(s1, created, 2, 9) },
		"an update onto nothing": func() (*State, error) { return Evolve(nil, up, 1, 9) },
		"an update onto deleted": func() (*State, error) { return Evolve(s3, up, 4, 13) },
		"a delete onto deleted":  func() (*State, error) { return Evolve(s3, ICPDeletedV1{ID: "a1"}, 4, 13) },
	} {
		if s, err := try(); !errors.Is(err, ErrOutOfOrder) || s != nil {
			t.Errorf("%s: %+v %v, want ErrOutOfOrder", name, s, err)
		}
	}
	if _, err := Evolve(nil, "not a payload", 1, 1); err == nil || errors.Is(err, ErrOutOfOrder) {
		t.Errorf("an unknown payload: %v, want an error other than out of order", err)
	}
}
