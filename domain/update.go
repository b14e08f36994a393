package domain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// UpdateICP is a validated partial update: only the fields the client sent
// are set. Null clears description, crmFilters and activeUntil; arrays replace
// the stored arrays whole.
type UpdateICP struct {
	Changes ICPChanges
}

// DecideUpdate returns the event that applies cmd to the ICP in state s on
// behalf of a at now, or no event (ok false) for an update that changes
// nothing: every member it sets already has that value (see changed); the
// event lists only the members that change. Errors: ErrNotFound,
// ErrForbidden (see Authorize), then ErrPreconditionFailed when ifMatch is
// not nil and does not list s's version.
func DecideUpdate(s *State, a Actor, cmd UpdateICP, ifMatch []uint64, now time.Time) (ev ICPUpdatedV1, ok bool, err error) {
	if err := AuthorizeState(a, s); err != nil {
		return ICPUpdatedV1{}, false, err
	}
	if err := checkIfMatch(s, ifMatch); err != nil {
		return ICPUpdatedV1{}, false, err
	}
	changes, err := changed(s.ICP, cmd.Changes)
	if err != nil {
		return ICPUpdatedV1{}, false, err
	}
	if changes.Empty() {
		return ICPUpdatedV1{}, false, nil
	}
	return ICPUpdatedV1{ID: s.ICP.ID, UpdatedAt: NewTime(now), UpdatedBy: a.UserID, Changes: changes}, true, nil
}

// DecideDelete returns the event that deletes the ICP in state s on behalf of
// a at now. Errors: ErrNotFound (also for an ICP already deleted),
// ErrForbidden, ErrPreconditionFailed as for DecideUpdate.
func DecideDelete(s *State, a Actor, ifMatch []uint64, now time.Time) (ICPDeletedV1, error) {
	if err := AuthorizeState(a, s); err != nil {
		return ICPDeletedV1{}, err
	}
	if err := checkIfMatch(s, ifMatch); err != nil {
		return ICPDeletedV1{}, err
	}
	return ICPDeletedV1{ID: s.ICP.ID, DeletedAt: NewTime(now), DeletedBy: a.UserID}, nil
}

// checkIfMatch enforces an If-Match precondition: ifMatch nil means none;
// otherwise the ICP's version must be one of the listed versions (an empty,
// non-nil list matches nothing).
func checkIfMatch(s *State, ifMatch []uint64) error {
	if ifMatch != nil && !slices.Contains(ifMatch, s.Version) {
		return ErrPreconditionFailed
	}
	return nil
}

// changed returns the members of c whose value differs from what icp holds,
// compared as the ICP would store them: each field's JSON as the event and
// the read model keep it (free-form JSON as its exact accepted text, arrays
// in their order). A member sent with the value it already has is dropped,
// so an update records only what it changes.
func changed(icp ICP, c ICPChanges) (ICPChanges, error) {
	next := ApplyChanges(icp, c)
	var err error
	same := func(a, b any) bool {
		if err != nil {
			return false
		}
		x, e1 := storedJSON(a)
		y, e2 := storedJSON(b)
		if err = errors.Join(e1, e2); err != nil {
			return false
		}
		return bytes.Equal(x, y)
	}
	if c.Name.Set && next.Name == icp.Name {
		c.Name = Opt[string]{}
	}
	if c.Description.Set && same(next.Description, icp.Description) {
		c.Description = Opt[string]{}
	}
	if c.LeadProviderCriteria.Set && same(next.LeadProviderCriteria, icp.LeadProviderCriteria) {
		c.LeadProviderCriteria = Opt[[]LeadProviderCriterion]{}
	}
	if c.CustomFilterCriteria.Set && same(next.CustomFilterCriteria, icp.CustomFilterCriteria) {
		c.CustomFilterCriteria = Opt[[]CustomFilter]{}
	}
	if c.CRMFilters.Set && same(next.CRMFilters, icp.CRMFilters) {
		c.CRMFilters = Opt[CRMFilters]{}
	}
	if c.UserIDs.Set && same(next.UserIDs, icp.UserIDs) {
		c.UserIDs = Opt[[]string]{}
	}
	if c.LeadsPerList.Set && next.LeadsPerList == icp.LeadsPerList {
		c.LeadsPerList = Opt[int]{}
	}
	if c.ActiveUntil.Set && same(next.ActiveUntil, icp.ActiveUntil) {
		c.ActiveUntil = Opt[Time]{}
	}
	if err != nil {
		return ICPChanges{}, fmt.Errorf("domain: compare update: %w", err)
	}
	return c, nil
}

// storedJSON is a field's JSON as events and the read model hold it:
// encoding/json without HTML escaping, as events.MarshalJSON encodes every
// value but a whole ICP, so that free-form JSON compares as its exact
// accepted text ("<" and "\u003c" differ).
func storedJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
