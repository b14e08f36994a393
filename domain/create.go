package domain

import (
	"errors"
	"time"
)

// DefaultLeadsPerList is the leadsPerList of an ICP created without one.
const DefaultLeadsPerList = 10

// CreateICP is a validated create command: the ICP's fields as the client
// sent them, normalised (name trimmed, defaults applied, duplicates dropped
// from userIds and the caller added, free-form JSON without insignificant
// whitespace but otherwise the exact accepted text). Its slices are never nil.
//
// Its JSON form is the canonical command whose hash an Idempotency-Key
// create keeps (commands.HashCreate): renaming a field or a tag changes the
// hash of every command, so that a retry across the change is refused.
type CreateICP struct {
	Name                 string                  `json:"name"`
	Description          *string                 `json:"description"`
	LeadProviderCriteria []LeadProviderCriterion `json:"leadProviderCriteria"`
	CustomFilterCriteria []CustomFilter          `json:"customFilterCriteria"`
	CRMFilters           *CRMFilters             `json:"crmFilters"`
	UserIDs              []string                `json:"userIds"`
	LeadsPerList         int                     `json:"leadsPerList"`
	ActiveUntil          *Time                   `json:"activeUntil"`
}

// DecideCreate returns the event that creates ICP id from cmd on behalf of
// a, at now. s is the ICP's current state: an ICP is created only once, so a
// non-nil s is ErrConflict. The ICP belongs to a's tenant; a is added to
// userIds if cmd lacks it. It needs an id and an actor with a user id.
func DecideCreate(s *State, id string, a Actor, cmd CreateICP, now time.Time) (ICPCreatedV1, error) {
	if s != nil {
		return ICPCreatedV1{}, ErrConflict
	}
	if id == "" || a.UserID == "" {
		return ICPCreatedV1{}, errors.New("domain: create needs an id and a caller")
	}
	ts := NewTime(now)
	icp := ICP{
		ID:                   id,
		Name:                 cmd.Name,
		Description:          cmd.Description,
		CreatedAt:            ts,
		UpdatedAt:            ts,
		LeadProviderCriteria: nonNil(cmd.LeadProviderCriteria),
		CustomFilterCriteria: nonNil(cmd.CustomFilterCriteria),
		CRMFilters:           cmd.CRMFilters,
		UserIDs:              withMember(append([]string(nil), cmd.UserIDs...), a.UserID),
		LeadsPerList:         cmd.LeadsPerList,
		ActiveUntil:          cmd.ActiveUntil,
	}
	if icp.LeadsPerList == 0 {
		icp.LeadsPerList = DefaultLeadsPerList
	}
	return ICPCreatedV1{ICP: icp, Tenant: a.Tenant, CreatedBy: a.UserID}, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// withMember returns ids with user appended when it is not a member yet.
func withMember(ids []string, user string) []string {
	if IsMember(ids, user) {
		return ids
	}
	return append(ids, user)
}
