package domain

import (
	"errors"
	"fmt"
)

// FoldVersion names the fold this code computes: Evolve, the State it
// builds and State's snapshot encoding (events.EncodeState). Change it with
// any of them, so that snapshots of the old fold are ignored and rebuilt
// from the events.
const FoldVersion = 1

// State is an ICP as the fold of its stream: the ICP's fields plus what the
// service needs to decide and to serve (tenant, version, deletion).
//
// Contract: a State is only ever made by Evolve (or decoded from a snapshot
// or a read model view of one), so Version > 0 and ICP.ID is set; Tenant and
// CreatedBy never change after the create; once Deleted, no event folds
// onto it. A nil *State is an ICP with no events.
type State struct {
	ICP       ICP    `json:"icp"`
	Tenant    string `json:"tenant"`
	CreatedBy string `json:"createdBy"`
	// Version is the version of the last event folded in (0: no events).
	Version uint64 `json:"version"`
	// CreatedPosition is the global position of the ICPCreated event: the
	// order of lists.
	CreatedPosition uint64 `json:"createdPosition"`
	Deleted         bool   `json:"deleted"`
}

// ErrOutOfOrder means an event was folded onto a state whose version is not
// the event's version minus one.
var ErrOutOfOrder = errors.New("event out of order")

// Evolve folds one decoded event (payload from events.Decode, with its
// version and position) onto s and returns the new state; s may be nil for a
// stream with no events yet. It never changes s. The event's version must be
// s.Version+1: an ICPCreatedV1 folds only onto nil, an ICPUpdatedV1 or
// ICPDeletedV1 only onto a live ICP; anything else is an error wrapping
// ErrOutOfOrder. A payload of another type is an error.
func Evolve(s *State, payload any, version, position uint64) (*State, error) {
	var cur uint64
	if s != nil {
		cur = s.Version
	}
	if version != cur+1 {
		return nil, fmt.Errorf("%w: version %d onto %d", ErrOutOfOrder, version, cur)
	}
	switch p := payload.(type) {
	case ICPCreatedV1:
		if s != nil {
			return nil, fmt.Errorf("%w: ICPCreated onto an existing ICP", ErrOutOfOrder)
		}
		icp := p.ICP
		return &State{ICP: icp, Tenant: p.Tenant, CreatedBy: p.CreatedBy, Version: version, CreatedPosition: position}, nil
	case ICPUpdatedV1:
		if s == nil || s.Deleted {
			return nil, fmt.Errorf("%w: ICPUpdated onto a missing or deleted ICP", ErrOutOfOrder)
		}
		n := *s
		n.Version = version
		n.ICP = ApplyChanges(s.ICP, p.Changes)
		n.ICP.UpdatedAt = p.UpdatedAt
		return &n, nil
	case ICPDeletedV1:
		if s == nil || s.Deleted {
			return nil, fmt.Errorf("%w: ICPDeleted onto a missing or deleted ICP", ErrOutOfOrder)
		}
		n := *s
		n.Version = version
		n.Deleted = true
		return &n, nil
	default:
		return nil, fmt.Errorf("domain: cannot fold %T", payload)
	}
}

// ApplyChanges returns icp with the changes applied; arrays replace whole.
func ApplyChanges(icp ICP, c ICPChanges) ICP {
	if c.Name.Set {
		icp.Name = c.Name.V
	}
	if c.Description.Set {
		icp.Description = c.Description.Ptr()
	}
	if c.LeadProviderCriteria.Set {
		icp.LeadProviderCriteria = c.LeadProviderCriteria.V
	}
	if c.CustomFilterCriteria.Set {
		icp.CustomFilterCriteria = c.CustomFilterCriteria.V
	}
	if c.CRMFilters.Set {
		icp.CRMFilters = c.CRMFilters.Ptr()
	}
	if c.UserIDs.Set {
		icp.UserIDs = c.UserIDs.V
	}
	if c.LeadsPerList.Set {
		icp.LeadsPerList = c.LeadsPerList.V
	}
	if c.ActiveUntil.Set {
		icp.ActiveUntil = c.ActiveUntil.Ptr()
	}
	return icp
}
