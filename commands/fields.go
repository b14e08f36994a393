package commands

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/icpservice/icp/events"
)

// The contract's limits.
const (
	MaxNameLength        = 200
	MaxDescriptionLength = 2000
	MaxCriteria          = 20
	MaxCustomFilters     = 20
	MaxCRMFilters        = 50
	MaxUserIDs           = 100
	MaxUserIDLength      = 128
	MinLeadsPerList      = 1
	MaxLeadsPerList      = 1000
	DefaultLeadsPerList  = 10
	// MaxDepth is the deepest nesting accepted inside free-form JSON.
	MaxDepth = maxDepth
)

// Lead provider criteria values.
const (
	ProviderBase = "baseProvider"
	TypePerson   = "person"
	TypeCompany  = "company"
)

// Custom filter types and the smallest value each accepts.
const (
	CustomMaxPeoplePerCompany = "maxPeoplePerCompany"
	CustomMinDaysUntilReuse   = "minDaysUntilReuse"
)

var customFilterMin = map[string]int64{
	CustomMaxPeoplePerCompany: 1,
	CustomMinDaysUntilReuse:   0,
}

const knownCustomTypes = CustomMaxPeoplePerCompany + ", " + CustomMinDaysUntilReuse

// parser validates the fields of one request body. It collects every problem
// instead of stopping at the first, and copies free-form JSON into one arena
// so the parsed command never aliases the caller's buffer.
type parser struct {
	problems problems
	arena    []byte
}

func newParser(bodyLen int) *parser { return &parser{arena: make([]byte, 0, bodyLen)} }

func (p *parser) add(path, msg string) { p.problems.add(path, msg) }

// at builds the path of an array item's field: at("a", 2, ".b") = "a[2].b".
// Paths are built only when a problem is reported.
func at(base string, i int, field string) string {
	return base + "[" + strconv.Itoa(i) + "]" + field
}

func typeMessage(want string, v []byte) string {
	var got string
	switch kindOf(v) {
	case kindNull:
		got = "null"
	case kindBool:
		got = "a boolean"
	case kindNumber:
		got = "a number"
	case kindString:
		got = "a string"
	case kindArray:
		got = "an array"
	default:
		got = "an object"
	}
	return "must be " + want + ", not " + got
}

// fields looks up the members named in names in the object obj and stores
// each raw value in the slot of the same index (nil: absent). Other members
// are ignored. It returns a bit set of the names given more than once.
func fields(obj []byte, names []string, slots [][]byte) (dups uint32) {
	eachMember(obj, func(rawKey, val []byte) {
		k := keyText(rawKey)
		for j, n := range names {
			if string(k) == n {
				if slots[j] != nil {
					dups |= 1 << j
				}
				slots[j] = val
				return
			}
		}
	})
	return dups
}

func (p *parser) reportDups(dups uint32, base string, names []string) {
	for j, n := range names {
		if dups&(1<<j) != 0 {
			path := n
			if base != "" {
				path = base + "." + n
			}
			p.add(path, "is given more than once")
		}
	}
}

// freeForm keeps v (any JSON value) as its exact text without insignificant
// whitespace, and checks its nesting depth.
func (p *parser) freeForm(v []byte, path func() string) json.RawMessage {
	start := len(p.arena)
	var depth int
	p.arena, depth = compactInto(p.arena, v)
	if depth > maxDepth {
		p.add(path(), fmt.Sprintf("must not nest deeper than %d levels", maxDepth))
	}
	end := len(p.arena)
	return json.RawMessage(p.arena[start:end:end])
}

func (p *parser) name(v []byte, path string) string {
	if kindOf(v) != kindString {
		p.add(path, typeMessage("a string", v))
		return ""
	}
	s := strings.TrimSpace(decodeString(v))
	switch {
	case s == "":
		p.add(path, "must not be empty")
	case utf8.RuneCountInString(s) > MaxNameLength:
		p.add(path, fmt.Sprintf("must be at most %d characters", MaxNameLength))
	}
	return s
}

// description reads a string or null (nil).
func (p *parser) description(v []byte, path string) *string {
	switch kindOf(v) {
	case kindNull:
		return nil
	case kindString:
		s := decodeString(v)
		if utf8.RuneCountInString(s) > MaxDescriptionLength {
			p.add(path, fmt.Sprintf("must be at most %d characters", MaxDescriptionLength))
		}
		return &s
	default:
		p.add(path, typeMessage("a string or null", v))
		return nil
	}
}

var criterionFields = []string{"provider", "type", "filters"}

// criteria reads leadProviderCriteria; the result is never nil.
func (p *parser) criteria(v []byte, path string) []events.LeadProviderCriterion {
	if kindOf(v) != kindArray {
		p.add(path, typeMessage("an array", v))
		return []events.LeadProviderCriterion{}
	}
	n := countElements(v)
	if n > MaxCriteria {
		p.add(path, fmt.Sprintf("must have at most %d items, has %d", MaxCriteria, n))
	}
	out := make([]events.LeadProviderCriterion, 0, n)
	eachElement(v, func(i int, el []byte) {
		if kindOf(el) != kindObject {
			p.add(at(path, i, ""), typeMessage("an object", el))
			return
		}
		var slots [3][]byte
		p.reportDups(fields(el, criterionFields, slots[:]), at(path, i, ""), criterionFields)
		var c events.LeadProviderCriterion
		switch pv := slots[0]; {
		case pv == nil:
			p.add(at(path, i, ".provider"), "is required")
		case kindOf(pv) != kindString:
			p.add(at(path, i, ".provider"), typeMessage("a string", pv))
		default:
			c.Provider = decodeString(pv)
			if c.Provider != ProviderBase {
				p.add(at(path, i, ".provider"), `must be "`+ProviderBase+`" (the only provider supported)`)
			}
		}
		if tv := slots[1]; tv != nil {
			if kindOf(tv) == kindString {
				c.Type = events.Some(decodeString(tv))
			}
			if !c.Type.Set || (c.Type.V != TypePerson && c.Type.V != TypeCompany) {
				p.add(at(path, i, ".type"), `must be "`+TypePerson+`" or "`+TypeCompany+`" when given`)
			}
		}
		switch fv := slots[2]; {
		case fv == nil:
			p.add(at(path, i, ".filters"), "is required")
		case kindOf(fv) != kindObject:
			p.add(at(path, i, ".filters"), typeMessage("a JSON object", fv))
		default:
			c.Filters = p.freeForm(fv, func() string { return at(path, i, ".filters") })
		}
		out = append(out, c)
	})
	return out
}

var customFilterFields = []string{"type", "value"}

// customFilters reads customFilterCriteria; the result is never nil.
func (p *parser) customFilters(v []byte, path string) []events.CustomFilter {
	if kindOf(v) != kindArray {
		p.add(path, typeMessage("an array", v))
		return []events.CustomFilter{}
	}
	n := countElements(v)
	if n > MaxCustomFilters {
		p.add(path, fmt.Sprintf("must have at most %d items, has %d", MaxCustomFilters, n))
	}
	out := make([]events.CustomFilter, 0, n)
	eachElement(v, func(i int, el []byte) {
		if kindOf(el) != kindObject {
			p.add(at(path, i, ""), typeMessage("an object", el))
			return
		}
		var slots [2][]byte
		p.reportDups(fields(el, customFilterFields, slots[:]), at(path, i, ""), customFilterFields)
		var f events.CustomFilter
		min, known := int64(0), false
		switch tv := slots[0]; {
		case tv == nil:
			p.add(at(path, i, ".type"), "is required")
		case kindOf(tv) != kindString:
			p.add(at(path, i, ".type"), typeMessage("a string", tv))
		default:
			f.Type = decodeString(tv)
			if min, known = customFilterMin[f.Type]; !known {
				p.add(at(path, i, ".type"), fmt.Sprintf("unknown type %q; known types: %s", f.Type, knownCustomTypes))
			}
		}
		switch vv := slots[1]; {
		case vv == nil:
			p.add(at(path, i, ".value"), "is required")
		case kindOf(vv) != kindNumber:
			p.add(at(path, i, ".value"), typeMessage("a number", vv))
		default:
			f.Value = p.freeForm(vv, nil) // a number: depth 0
			if known {
				n, whole := jsonInteger(vv)
				switch {
				case !whole:
					p.add(at(path, i, ".value"), "must be an integer for "+f.Type)
				case n < min:
					p.add(at(path, i, ".value"), fmt.Sprintf("must be at least %d for %s", min, f.Type))
				}
			}
		}
		out = append(out, f)
	})
	return out
}

var crmFields = []string{"provider", "textSearch", "query", "filters"}

// crmFilters reads crmFilters: an object or null (nil).
func (p *parser) crmFilters(v []byte, path string) *events.CRMFilters {
	switch kindOf(v) {
	case kindNull:
		return nil
	case kindObject:
	default:
		p.add(path, typeMessage("an object or null", v))
		return nil
	}
	var slots [4][]byte
	p.reportDups(fields(v, crmFields, slots[:]), path, crmFields)
	c := &events.CRMFilters{}
	if pv := slots[0]; pv != nil {
		if kindOf(pv) != kindString {
			p.add(path+".provider", typeMessage("a string", pv))
		} else {
			c.Provider = events.Some(decodeString(pv))
		}
	}
	if tv := slots[1]; tv != nil {
		switch kindOf(tv) {
		case kindNull:
			c.TextSearch = events.Null[string]()
		case kindString:
			c.TextSearch = events.Some(decodeString(tv))
		default:
			p.add(path+".textSearch", typeMessage("a string or null", tv))
		}
	}
	if qv := slots[2]; qv != nil {
		c.Query = p.freeForm(qv, func() string { return path + ".query" })
	}
	if fv := slots[3]; fv != nil {
		c.Filters = events.Some(p.crmFilterList(fv, path+".filters"))
	}
	return c
}

var crmFilterFields = []string{"path", "mode", "value", "exclude"}

func (p *parser) crmFilterList(v []byte, path string) []events.CRMFilter {
	if kindOf(v) != kindArray {
		p.add(path, typeMessage("an array", v))
		return []events.CRMFilter{}
	}
	n := countElements(v)
	if n > MaxCRMFilters {
		p.add(path, fmt.Sprintf("must have at most %d items, has %d", MaxCRMFilters, n))
	}
	out := make([]events.CRMFilter, 0, n)
	eachElement(v, func(i int, el []byte) {
		if kindOf(el) != kindObject {
			p.add(at(path, i, ""), typeMessage("an object", el))
			return
		}
		var slots [4][]byte
		p.reportDups(fields(el, crmFilterFields, slots[:]), at(path, i, ""), crmFilterFields)
		var f events.CRMFilter
		for j, field := range crmFilterFields[:2] {
			switch sv := slots[j]; {
			case sv == nil:
				p.add(at(path, i, "."+field), "is required")
			case kindOf(sv) != kindString:
				p.add(at(path, i, "."+field), typeMessage("a string", sv))
			case j == 0:
				f.Path = decodeString(sv)
			default:
				f.Mode = decodeString(sv)
			}
		}
		if vv := slots[2]; vv == nil {
			p.add(at(path, i, ".value"), "is required")
		} else {
			f.Value = p.freeForm(vv, func() string { return at(path, i, ".value") })
		}
		if ev := slots[3]; ev != nil {
			if kindOf(ev) != kindBool {
				p.add(at(path, i, ".exclude"), typeMessage("a boolean", ev))
			} else {
				f.Exclude = events.Some(ev[0] == 't')
			}
		}
		out = append(out, f)
	})
	return out
}

// userIDs reads userIds: duplicates dropped (first kept), order kept, and
// caller appended when absent (caller "": no one is added). The limit counts
// the caller.
func (p *parser) userIDs(v []byte, path, caller string) []string {
	if kindOf(v) != kindArray {
		p.add(path, typeMessage("an array of strings", v))
		return nil
	}
	n := countElements(v)
	out := make([]string, 0, n+1)
	eachElement(v, func(i int, el []byte) {
		if kindOf(el) != kindString {
			p.add(at(path, i, ""), typeMessage("a string", el))
			return
		}
		s := decodeString(el)
		switch l := utf8.RuneCountInString(s); {
		case l == 0:
			p.add(at(path, i, ""), "must not be empty")
			return
		case l > MaxUserIDLength:
			p.add(at(path, i, ""), fmt.Sprintf("must be at most %d characters", MaxUserIDLength))
			return
		}
		for _, u := range out {
			if u == s {
				return
			}
		}
		out = append(out, s)
	})
	if caller == "" {
		if len(out) > MaxUserIDs {
			p.add(path, fmt.Sprintf("must have at most %d distinct entries, has %d", MaxUserIDs, len(out)))
		}
		return out
	}
	out = withMember(out, caller)
	if len(out) > MaxUserIDs {
		p.add(path, fmt.Sprintf("must have at most %d distinct entries including the caller, has %d", MaxUserIDs, len(out)))
	}
	return out
}

// withMember returns ids with user appended when it is not listed yet.
func withMember(ids []string, user string) []string {
	for _, u := range ids {
		if u == user {
			return ids
		}
	}
	return append(ids, user)
}

func (p *parser) leadsPerList(v []byte, path string) int {
	if kindOf(v) != kindNumber {
		p.add(path, typeMessage("an integer", v))
		return 0
	}
	n, whole := jsonInteger(v)
	switch {
	case !whole:
		p.add(path, "must be an integer")
	case n < MinLeadsPerList:
		p.add(path, fmt.Sprintf("must be at least %d", MinLeadsPerList))
	case n > MaxLeadsPerList:
		p.add(path, fmt.Sprintf("must be at most %d", MaxLeadsPerList))
	default:
		return int(n)
	}
	return 0
}

// activeUntil reads an RFC 3339 time or null (nil).
func (p *parser) activeUntil(v []byte, path string) *events.Time {
	const want = "an RFC 3339 timestamp such as 2024-01-15T10:30:00Z, or null"
	switch kindOf(v) {
	case kindNull:
		return nil
	case kindString:
		t, err := events.ParseTime(decodeString(v))
		if err != nil {
			p.add(path, "must be "+want)
			return nil
		}
		return &t
	default:
		p.add(path, typeMessage(want, v))
		return nil
	}
}
