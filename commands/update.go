package commands

import (
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
// nothing. Errors: ErrNotFound, ErrForbidden (see authorize), then
// ErrPreconditionFailed when ifMatch is not nil and does not list s's
// version.
func DecideUpdate(s *events.State, p auth.Principal, cmd UpdateICP, ifMatch []uint64, now time.Time) (ev events.ICPUpdatedV1, ok bool, err error) {
	if err := authorize(s, p); err != nil {
		return events.ICPUpdatedV1{}, false, err
	}
	if err := checkIfMatch(s, ifMatch); err != nil {
		return events.ICPUpdatedV1{}, false, err
	}
	if cmd.Changes.Empty() {
		return events.ICPUpdatedV1{}, false, nil
	}
	return events.ICPUpdatedV1{ID: s.ICP.ID, UpdatedAt: events.NewTime(now), UpdatedBy: p.UserID, Changes: cmd.Changes}, true, nil
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
