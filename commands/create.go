package commands

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/platform/jsonvalid"
)

var createFields = []string{
	"name", "description", "leadProviderCriteria", "customFilterCriteria",
	"crmFilters", "userIds", "leadsPerList", "activeUntil",
}

// ParseCreate reads a create request body for the caller (whose user id is
// added to userIds). The body must be exactly one JSON object; unknown members
// are ignored. Every problem is reported at once in a *ValidationError whose
// details carry paths such as "leadProviderCriteria[0].provider". The result
// does not alias body, which the caller may reuse.
func ParseCreate(body []byte, caller string) (domain.CreateICP, error) {
	if err := checkObject(body); err != nil {
		return domain.CreateICP{}, err
	}
	obj := trimValue(body)
	var slots [8][]byte
	p := newParser(len(obj))
	p.reportDups(fields(obj, createFields, slots[:]), pathLoc(""), createFields)

	cmd := domain.CreateICP{LeadsPerList: domain.DefaultLeadsPerList}
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
		cmd.LeadProviderCriteria = []domain.LeadProviderCriterion{}
	} else {
		cmd.LeadProviderCriteria = p.criteria(v, "leadProviderCriteria")
	}
	if v := slots[3]; v == nil {
		cmd.CustomFilterCriteria = []domain.CustomFilter{}
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
		return domain.CreateICP{}, err
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
	if !jsonvalid.Valid(body) {
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

// malformed explains why body, which jsonvalid.Valid (json.Valid) refused, is not
// one JSON value.
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

// HashCreate identifies the command's content: two requests whose bodies
// parse to the same command have the same hash. A create made with an
// Idempotency-Key stores it as its event's Metadata.CommandHash; it tells a
// retry from a reuse of the key with another body.
func HashCreate(c domain.CreateICP) string {
	b, err := events.MarshalJSON(c)
	if err != nil { // cannot happen: plain fields and valid raw JSON
		panic(fmt.Sprintf("commands: encode create command: %v", err))
	}
	sum := sha256.Sum256(append([]byte("CreateICP/1\n"), b...))
	return "sha256:" + hex.EncodeToString(sum[:])
}
