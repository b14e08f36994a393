package projections

import (
	"encoding/json"
	"fmt"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
)

// ViewOf is the read model row for an ICP state.
func ViewOf(s *domain.State) (View, error) {
	v := View{
		ID:        s.ICP.ID,
		Tenant:    s.Tenant,
		Version:   s.Version,
		Position:  s.CreatedPosition,
		Deleted:   s.Deleted,
		CreatedBy: s.CreatedBy,
	}
	if s.Deleted {
		return v, nil
	}
	doc, err := events.MarshalJSON(s.ICP)
	if err != nil {
		return View{}, err
	}
	v.Doc = doc
	v.UserIDs = append([]string(nil), s.ICP.UserIDs...)
	return v, nil
}

// ViewOfDoc is ViewOf(s) with the document given: doc must be the JSON of
// s.ICP as events.MarshalJSON writes it (see events.DecodeRecordedDoc), and
// is used as it is instead of being encoded again. A nil doc, or a deleted
// s, is ViewOf(s).
func ViewOfDoc(s *domain.State, doc []byte) (View, error) {
	if doc == nil || s.Deleted {
		return ViewOf(s)
	}
	return View{
		ID:        s.ICP.ID,
		Tenant:    s.Tenant,
		Version:   s.Version,
		Position:  s.CreatedPosition,
		CreatedBy: s.CreatedBy,
		Doc:       doc,
		UserIDs:   append([]string(nil), s.ICP.UserIDs...),
	}, nil
}

// StateOf rebuilds the ICP state a view was made from. A tombstone comes back
// with Deleted set and an ICP holding only its id.
func StateOf(v View) (*domain.State, error) {
	s := &domain.State{
		Tenant:          v.Tenant,
		CreatedBy:       v.CreatedBy,
		Version:         v.Version,
		CreatedPosition: v.Position,
		Deleted:         v.Deleted,
	}
	s.ICP.ID = v.ID
	if v.Deleted {
		return s, nil
	}
	if err := json.Unmarshal(v.Doc, &s.ICP); err != nil {
		return nil, fmt.Errorf("read model doc of %s: %w", v.ID, err)
	}
	return s, nil
}
