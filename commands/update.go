package commands

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/icpservice/icp/api/auth"
	"github.com/icpservice/icp/events"
)

// UpdateICP is a validated partial update: only the fields the client sent
// are set. Null clears description, crmFilters and activeUntil; arrays replace
// the stored arrays whole.
type UpdateICP struct {
	Changes events.ICPChanges
}

var updateFields = createFields

// ParseUpdate reads a PATCH body: exactly one JSON object whose members are
// validated with the same rules and limits as a create. null is accepted only
// for description, crmFilters and activeUntil. Every problem is reported at
// once in a *ValidationError. The result does not alias body.
//
// userIds replaces the members as given: unlike a create, the caller is not
// added, so a member may leave an ICP or hand it over to others (an admin of
// the organisation keeps access without being listed). What an update cannot
// do is leave an ICP without members: an empty userIds is refused, because
// such an ICP would be in no one's list and reachable only by an admin who
// knows its id.
func ParseUpdate(body []byte) (UpdateICP, error) {
	if err := checkObject(body); err != nil {
		return UpdateICP{}, err
	}
	obj := trimValue(body)
	var slots [8][]byte
	p := newParser(len(obj))
	p.reportDups(fields(obj, updateFields, slots[:]), pathLoc(""), updateFields)

	var c events.ICPChanges
	if v := slots[0]; v != nil {
		c.Name = events.Some(p.name(v, "name"))
	}
	if v := slots[1]; v != nil {
		c.Description = optOf(p.description(v, "description"))
	}
	if v := slots[2]; v != nil {
		c.LeadProviderCriteria = events.Some(p.criteria(v, "leadProviderCriteria"))
	}
	if v := slots[3]; v != nil {
		c.CustomFilterCriteria = events.Some(p.customFilters(v, "customFilterCriteria"))
	}
	if v := slots[4]; v != nil {
		c.CRMFilters = optOf(p.crmFilters(v, "crmFilters"))
	}
	if v := slots[5]; v != nil {
		c.UserIDs = events.Some(nonNil(p.userIDs(v, "userIds", "")))
		if kindOf(v) == kindArray && countElements(v) == 0 {
			p.add(pathLoc("userIds"), "must list at least one user: an ICP without members is in no one's list")
		}
	}
	if v := slots[6]; v != nil {
		c.LeadsPerList = events.Some(p.leadsPerList(v, "leadsPerList"))
	}
	if v := slots[7]; v != nil {
		c.ActiveUntil = optOf(p.activeUntil(v, "activeUntil"))
	}
	if err := p.problems.err(); err != nil {
		return UpdateICP{}, err
	}
	return UpdateICP{Changes: c}, nil
}

// optOf turns a parsed nullable field into a set Opt: null when v is nil.
func optOf[T any](v *T) events.Opt[T] {
	if v == nil {
		return events.Null[T]()
	}
	return events.Some(*v)
}

// DecideUpdate returns the event that applies cmd to the ICP in state s on
// behalf of p at now, or no event (ok false) for an update that changes
// nothing: every member it sets already has that value (see changed); the
// event lists only the members that change. Errors: ErrNotFound,
// ErrForbidden (see authorize), then ErrPreconditionFailed when ifMatch is not nil and does not list s's
// version.
func DecideUpdate(s *events.State, p auth.Principal, cmd UpdateICP, ifMatch []uint64, now time.Time) (ev events.ICPUpdatedV1, ok bool, err error) {
	if err := authorize(s, p); err != nil {
		return events.ICPUpdatedV1{}, false, err
	}
	if err := checkIfMatch(s, ifMatch); err != nil {
		return events.ICPUpdatedV1{}, false, err
	}
	changes, err := changed(s.ICP, cmd.Changes)
	if err != nil {
		return events.ICPUpdatedV1{}, false, err
	}
	if changes.Empty() {
		return events.ICPUpdatedV1{}, false, nil
	}
	return events.ICPUpdatedV1{ID: s.ICP.ID, UpdatedAt: events.NewTime(now), UpdatedBy: p.UserID, Changes: changes}, true, nil
}

// changed returns the members of c whose value differs from what icp holds,
// compared as the ICP would store them: each field's JSON as the event and
// the read model keep it (free-form JSON as its exact accepted text, arrays
// in their order). A member sent with the value it already has is dropped,
// so an update records only what it changes.
func changed(icp events.ICP, c events.ICPChanges) (events.ICPChanges, error) {
	next := events.ApplyChanges(icp, c)
	var err error
	same := func(a, b any) bool {
		if err != nil {
			return false
		}
		x, e1 := events.MarshalJSON(a)
		y, e2 := events.MarshalJSON(b)
		if err = errors.Join(e1, e2); err != nil {
			return false
		}
		return bytes.Equal(x, y)
	}
	if c.Name.Set && next.Name == icp.Name {
		c.Name = events.Opt[string]{}
	}
	if c.Description.Set && same(next.Description, icp.Description) {
		c.Description = events.Opt[string]{}
	}
	if c.LeadProviderCriteria.Set && same(next.LeadProviderCriteria, icp.LeadProviderCriteria) {
		c.LeadProviderCriteria = events.Opt[[]events.LeadProviderCriterion]{}
	}
	if c.CustomFilterCriteria.Set && same(next.CustomFilterCriteria, icp.CustomFilterCriteria) {
		c.CustomFilterCriteria = events.Opt[[]events.CustomFilter]{}
	}
	if c.CRMFilters.Set && same(next.CRMFilters, icp.CRMFilters) {
		c.CRMFilters = events.Opt[events.CRMFilters]{}
	}
	if c.UserIDs.Set && same(next.UserIDs, icp.UserIDs) {
		c.UserIDs = events.Opt[[]string]{}
	}
	if c.LeadsPerList.Set && next.LeadsPerList == icp.LeadsPerList {
		c.LeadsPerList = events.Opt[int]{}
	}
	if c.ActiveUntil.Set && same(next.ActiveUntil, icp.ActiveUntil) {
		c.ActiveUntil = events.Opt[events.Time]{}
	}
	if err != nil {
		return events.ICPChanges{}, fmt.Errorf("commands: compare update: %w", err)
	}
	return c, nil
}

// DecideDelete returns the event that deletes the ICP in state s on behalf of
// p at now. Errors: ErrNotFound (also for an ICP already deleted),
// ErrForbidden, ErrPreconditionFailed as for DecideUpdate.
func DecideDelete(s *events.State, p auth.Principal, ifMatch []uint64, now time.Time) (events.ICPDeletedV1, error) {
	if err := authorize(s, p); err != nil {
		return events.ICPDeletedV1{}, err
	}
	if err := checkIfMatch(s, ifMatch); err != nil {
		return events.ICPDeletedV1{}, err
	}
	return events.ICPDeletedV1{ID: s.ICP.ID, DeletedAt: events.NewTime(now), DeletedBy: p.UserID}, nil
}
