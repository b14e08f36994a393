package domain

import "encoding/json"

// ICP is an Ideal Customer Profile in the contract's JSON shape: what events
// carry, what the read model stores and what the API serves.
//
// Free-form JSON (criteria filters, CRM query and filter values, custom filter
// values) is held as json.RawMessage: the exact text that was accepted, never
// re-encoded through a map or a float, so keys and numbers survive unchanged.
type ICP struct {
	ID                   string                  `json:"id"`
	Name                 string                  `json:"name"`
	Description          *string                 `json:"description"`
	CreatedAt            Time                    `json:"createdAt"`
	UpdatedAt            Time                    `json:"updatedAt"`
	LeadProviderCriteria []LeadProviderCriterion `json:"leadProviderCriteria"`
	CustomFilterCriteria []CustomFilter          `json:"customFilterCriteria"`
	CRMFilters           *CRMFilters             `json:"crmFilters"`
	UserIDs              []string                `json:"userIds"`
	LeadsPerList         int                     `json:"leadsPerList"`
	ActiveUntil          *Time                   `json:"activeUntil"`
}

// LeadProviderCriterion is one search against a lead provider. Type is kept
// absent when it was not sent (absent means a person search).
type LeadProviderCriterion struct {
	Provider string          `json:"provider"`
	Type     Opt[string]     `json:"type,omitzero"`
	Filters  json.RawMessage `json:"filters"`
}

// CustomFilter is one custom filter; Value is a JSON number kept as sent.
type CustomFilter struct {
	Type  string          `json:"type"`
	Value json.RawMessage `json:"value"`
}

// CRMFilters narrows leads by what the CRM already holds. Keys not sent stay
// absent on output.
type CRMFilters struct {
	Provider   Opt[string]      `json:"provider,omitzero"`
	TextSearch Opt[string]      `json:"textSearch,omitzero"`
	Query      json.RawMessage  `json:"query,omitempty"`
	Filters    Opt[[]CRMFilter] `json:"filters,omitzero"`
}

// CRMFilter is one CRM field condition.
type CRMFilter struct {
	Path    string          `json:"path"`
	Mode    string          `json:"mode"`
	Value   json.RawMessage `json:"value"`
	Exclude Opt[bool]       `json:"exclude,omitzero"`
}
