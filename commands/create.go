package commands

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/icpservice/icp/api/auth"
	"github.com/icpservice/icp/events"
)

// CreateICP is a validated create command: the ICP's fields as the client
// sent them, normalised (name trimmed, defaults applied, duplicates dropped
// from userIds and the caller added, free-form JSON without insignificant
// whitespace but otherwise the exact accepted text). Its slices are never nil.
type CreateICP struct {
	Name                 string                         `json:"name"`
	Description          *string                        `json:"description"`
	LeadProviderCriteria []events.LeadProviderCriterion `json:"leadProviderCriteria"`
	CustomFilterCriteria []events.CustomFilter          `json:"customFilterCriteria"`
	CRMFilters           *events.CRMFilters             `json:"crmFilters"`
	UserIDs              []string                       `json:"userIds"`
	LeadsPerList         int                            `json:"leadsPerList"`
	ActiveUntil          *events.Time                   `json:"activeUntil"`
}

var createFields = []string{
	"name", "description", "leadProviderCriteria", "customFilterCriteria",
	"crmFilters", "userIds", "leadsPerList", "activeUntil",
}

// ParseCreate reads a create request body for the caller (whose user id is
// added to userIds). The body must be exactly one JSON object; unknown members
// are ignored. Every problem is reported at once in a *ValidationError whose
// details carry paths such as "leadProviderCriteria[0].provider". The result
// does not alias body, which the caller may reuse.
func ParseCreate(body []byte, caller string) (CreateICP, error) {
	if err := checkObject(body); err != nil {
		return CreateICP{}, err
	}
	obj := trimValue(body)
	var slots [8][]byte
	p := newParser(len(obj))
	p.reportDups(fields(obj, createFields, slots[:]), pathLoc(""), createFields)

	cmd := CreateICP{LeadsPerList: DefaultLeadsPerList}
	if v := slots[0]; v == nil {
		p.add(pathLoc("name"), "is required")
	} else {
		cmd.Name = p.name(v, "name")
	}
	if v := slots[1]; v != nil {
		cmd.Description = p.description(v, "description")
	}
	if v := slots[2]; v == nil {
		p.add(pathLoc("leadProviderCriteria"), "is required")
		cmd.LeadProviderCriteria = []events.LeadProviderCriterion{}
	} else {
		cmd.LeadProviderCriteria = p.criteria(v, "leadProviderCriteria")
	}
	if v := slots[3]; v == nil {
		cmd.CustomFilterCriteria = []events.CustomFilter{}
	} else {
		cmd.CustomFilterCriteria = p.customFilters(v, "customFilterCriteria")
	}
	if v := slots[4]; v != nil {
		cmd.CRMFilters = p.crmFilters(v, "crmFilters")
	}
	if v := slots[5]; v == nil {
		cmd.UserIDs = []string{caller}
	} else if cmd.UserIDs = p.userIDs(v, "userIds", caller); cmd.UserIDs == nil {
		cmd.UserIDs = []string{caller}
	}
	if v := slots[6]; v != nil {
		cmd.LeadsPerList = p.leadsPerList(v, "leadsPerList")
	}
	if v := slots[7]; v != nil {
		cmd.ActiveUntil = p.activeUntil(v, "activeUntil")
	}
	if err := p.problems.err(); err != nil {
		return CreateICP{}, err
	}
	return cmd, nil
}

// checkObject accepts a body that is exactly one JSON object in UTF-8, with
// nothing but whitespace around it; anything else is a *ValidationError
// without details.
func checkObject(body []byte) error {
	if len(trimValue(body)) == 0 {
		return &ValidationError{Message: "the request body is empty; a JSON object is required"}
	}
	if !json.Valid(body) {
		return &ValidationError{Message: malformed(body)}
	}
	if !utf8.Valid(body) {
		return &ValidationError{Message: "the request body is not valid UTF-8"}
	}
	if kindOf(trimValue(body)) != kindObject {
		return &ValidationError{Message: "the request body must be a JSON object"}
	}
	return nil
}

// malformed explains why body, which json.Valid refused, is not one JSON value.
func malformed(body []byte) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	var first json.RawMessage
	err := dec.Decode(&first)
	if err == nil {
		return fmt.Sprintf("malformed JSON: unexpected data after the JSON value at offset %d", dec.InputOffset())
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("malformed JSON at offset %d: %s", se.Offset, se.Error())
	}
	return "malformed JSON: " + err.Error()
}

// Hash identifies the command's content: two requests whose bodies parse to
// the same command have the same hash. A create made with an Idempotency-Key
// stores it as its event's Metadata.CommandHash; it tells a retry from a reuse
// of the key with another body.
func (c CreateICP) Hash() string {
	b, err := events.MarshalJSON(c)
	if err != nil { // cannot happen: plain fields and valid raw JSON
		panic(fmt.Sprintf("commands: encode create command: %v", err))
	}
	sum := sha256.Sum256(append([]byte("CreateICP/1\n"), b...))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// DecideCreate returns the event that creates ICP id from cmd on behalf of p,
// at now. s is the ICP's current state: an ICP is created only once, so a
// non-nil s is ErrConflict. The caller is added to userIds if cmd lacks it.
func DecideCreate(s *events.State, id string, p auth.Principal, cmd CreateICP, now time.Time) (events.ICPCreatedV1, error) {
	if s != nil {
		return events.ICPCreatedV1{}, ErrConflict
	}
	if id == "" || p.UserID == "" {
		return events.ICPCreatedV1{}, errors.New("commands: create needs an id and a caller")
	}
	ts := events.NewTime(now)
	icp := events.ICP{
		ID:                   id,
		Name:                 cmd.Name,
		Description:          cmd.Description,
		CreatedAt:            ts,
		UpdatedAt:            ts,
		LeadProviderCriteria: nonNil(cmd.LeadProviderCriteria),
		CustomFilterCriteria: nonNil(cmd.CustomFilterCriteria),
		CRMFilters:           cmd.CRMFilters,
		UserIDs:              withMember(append([]string(nil), cmd.UserIDs...), p.UserID),
		LeadsPerList:         cmd.LeadsPerList,
		ActiveUntil:          cmd.ActiveUntil,
	}
	if icp.LeadsPerList == 0 {
		icp.LeadsPerList = DefaultLeadsPerList
	}
	return events.ICPCreatedV1{ICP: icp, Tenant: p.Tenant(), CreatedBy: p.UserID}, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
