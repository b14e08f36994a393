package domain

// ICPCreatedV1 is the payload of ICPCreated, schema version 1: the whole ICP
// as created, the tenant it belongs to and who created it.
type ICPCreatedV1 struct {
	ICP       ICP    `json:"icp"`
	Tenant    string `json:"tenant"`
	CreatedBy string `json:"createdBy"`
}

// ICPUpdatedV1 is the payload of ICPUpdated, schema version 1: only the fields
// that changed. A field set to null is an explicit clear (description,
// crmFilters, activeUntil); an absent field did not change.
type ICPUpdatedV1 struct {
	ID        string     `json:"id"`
	UpdatedAt Time       `json:"updatedAt"`
	UpdatedBy string     `json:"updatedBy"`
	Changes   ICPChanges `json:"changes"`
}

// ICPChanges lists the fields an update sets. Arrays replace the stored arrays
// whole.
type ICPChanges struct {
	Name                 Opt[string]                  `json:"name,omitzero"`
	Description          Opt[string]                  `json:"description,omitzero"`
	LeadProviderCriteria Opt[[]LeadProviderCriterion] `json:"leadProviderCriteria,omitzero"`
	CustomFilterCriteria Opt[[]CustomFilter]          `json:"customFilterCriteria,omitzero"`
	CRMFilters           Opt[CRMFilters]              `json:"crmFilters,omitzero"`
	UserIDs              Opt[[]string]                `json:"userIds,omitzero"`
	LeadsPerList         Opt[int]                     `json:"leadsPerList,omitzero"`
	ActiveUntil          Opt[Time]                    `json:"activeUntil,omitzero"`
}

// Empty reports an update that changes nothing.
func (c ICPChanges) Empty() bool {
	return !c.Name.Set && !c.Description.Set && !c.LeadProviderCriteria.Set &&
		!c.CustomFilterCriteria.Set && !c.CRMFilters.Set && !c.UserIDs.Set &&
		!c.LeadsPerList.Set && !c.ActiveUntil.Set
}

// ICPDeletedV1 is the payload of ICPDeleted, schema version 1.
type ICPDeletedV1 struct {
	ID        string `json:"id"`
	DeletedAt Time   `json:"deletedAt"`
	DeletedBy string `json:"deletedBy"`
}

// ICPIDOf returns the id of the ICP an event payload names (the created
// ICP's id, or the id of the ICP updated or deleted), and "" for a value
// that is not one of the ICP*V1 payloads. A payload recorded in a stream
// must name that stream's ICP: every reader that folds events checks it,
// so that one ICP's data is never written under another's id.
func ICPIDOf(payload any) string {
	switch p := payload.(type) {
	case ICPCreatedV1:
		return p.ICP.ID
	case ICPUpdatedV1:
		return p.ID
	case ICPDeletedV1:
		return p.ID
	}
	return ""
}
