package commands

import (
	"github.com/icpservice/icp/domain"
)

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
func ParseUpdate(body []byte) (domain.UpdateICP, error) {
	if err := checkObject(body); err != nil {
		return domain.UpdateICP{}, err
	}
	obj := trimValue(body)
	var slots [8][]byte
	p := newParser(len(obj))
	p.reportDups(fields(obj, updateFields, slots[:]), pathLoc(""), updateFields)

	var c domain.ICPChanges
	if v := slots[0]; v != nil {
		c.Name = domain.Some(p.name(v, "name"))
	}
	if v := slots[1]; v != nil {
		c.Description = optOf(p.description(v, "description"))
	}
	if v := slots[2]; v != nil {
		c.LeadProviderCriteria = domain.Some(p.criteria(v, "leadProviderCriteria"))
	}
	if v := slots[3]; v != nil {
		c.CustomFilterCriteria = domain.Some(p.customFilters(v, "customFilterCriteria"))
	}
	if v := slots[4]; v != nil {
		c.CRMFilters = optOf(p.crmFilters(v, "crmFilters"))
	}
	if v := slots[5]; v != nil {
		c.UserIDs = domain.Some(nonNil(p.userIDs(v, "userIds", "")))
		if kindOf(v) == kindArray && countElements(v) == 0 {
			p.add(pathLoc("userIds"), "must list at least one user: an ICP without members is in no one's list")
		}
	}
	if v := slots[6]; v != nil {
		c.LeadsPerList = domain.Some(p.leadsPerList(v, "leadsPerList"))
	}
	if v := slots[7]; v != nil {
		c.ActiveUntil = optOf(p.activeUntil(v, "activeUntil"))
	}
	if err := p.problems.err(); err != nil {
		return domain.UpdateICP{}, err
	}
	return domain.UpdateICP{Changes: c}, nil
}

// optOf turns a parsed nullable field into a set Opt: null when v is nil.
func optOf[T any](v *T) domain.Opt[T] {
	if v == nil {
		return domain.Null[T]()
	}
	return domain.Some(*v)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
