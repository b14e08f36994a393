package commands

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/icpservice/icp/domain"
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

// Messages that would otherwise be formatted per problem.
var (
	msgNameTooLong        = fmt.Sprintf("must be at most %d characters", MaxNameLength)
	msgDescriptionTooLong = fmt.Sprintf("must be at most %d characters", MaxDescriptionLength)
	msgUserIDTooLong      = fmt.Sprintf("must be at most %d characters", MaxUserIDLength)
	msgTooDeep            = fmt.Sprintf("must not nest deeper than %d levels", maxDepth)
	msgLeadsTooFew        = fmt.Sprintf("must be at least %d", MinLeadsPerList)
	msgLeadsTooMany       = fmt.Sprintf("must be at most %d", MaxLeadsPerList)
)

// parser validates the fields of one request body. It collects every problem
// instead of stopping at the first (keeping MaxDetails of them, counting the
// rest), and copies free-form JSON into one arena so the parsed command never
// aliases the caller's buffer.
//
// Its work is linear in the body's size: every byte is scanned a bounded
// number of times (the schema's nesting is fixed, free-form values are
// copied once), arrays past their limit are examined only up to the limit,
// and a problem past MaxDetails costs a counter increment, nothing else
// (see BenchmarkParseHostile and docs/limits.md).
type parser struct {
	problems problems
	size     int // of the body: the arena's capacity, allocated on first use
	arena    []byte
	scratch  []byte // decoded text of the last escaped string looked at
}

func newParser(bodyLen int) *parser { return &parser{size: bodyLen} }

// text is the decoded text of the JSON string s (see stringText), valid
// until the next call: escaped text is decoded into the parser's reused
// buffer.
func (p *parser) text(s []byte) []byte {
	if bytes.IndexByte(s, '\\') < 0 {
		return s[1 : len(s)-1]
	}
	p.scratch = appendUnescaped(p.scratch[:0], s)
	return p.scratch
}

// known is decodeString(s), but when the text is one of names it returns
// that constant instead of a copy: the values a field allows cost no
// allocation.
func (p *parser) known(s []byte, names ...string) string {
	t := p.text(s)
	for _, n := range names {
		if string(t) == n {
			return n
		}
	}
	return decodeString(s)
}

// loc is where a problem is: base, then "[i]" when i >= 0, then field. It
// becomes a path only when the problem is kept, so a problem past MaxDetails
// allocates nothing.
type loc struct {
	base  string
	i     int
	field string
}

func pathLoc(path string) loc { return loc{base: path, i: -1} }

// itemLoc is the loc of an array item's field: itemLoc("a", 2, ".b") is
// "a[2].b".
func itemLoc(base string, i int, field string) loc { return loc{base: base, i: i, field: field} }

func (l loc) path() string {
	if l.i < 0 {
		return l.base + l.field
	}
	return l.base + "[" + strconv.Itoa(l.i) + "]" + l.field
}

// add reports a problem at l; msg should be a constant or already built
// (use addf or wrongType for a message built per problem).
func (p *parser) add(l loc, msg string) {
	if p.problems.report() {
		p.problems.list = append(p.problems.list, Detail{Path: l.path(), Message: msg})
	}
}

// addf reports a problem at l whose message is formatted only when kept.
func (p *parser) addf(l loc, format string, args ...any) {
	if p.problems.report() {
		p.problems.list = append(p.problems.list, Detail{Path: l.path(), Message: fmt.Sprintf(format, args...)})
	}
}

// wrongType reports that the value v at l is not what was wanted.
func (p *parser) wrongType(l loc, want string, v []byte) {
	if p.problems.report() {
		p.problems.list = append(p.problems.list, Detail{Path: l.path(), Message: typeMessage(want, v)})
	}
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

// maxEscapedKey is the longest raw key (quotes included) that can decode to
// one of the schema's member names: each of their at most 20 characters
// written as a six-byte \uXXXX escape. Longer keys are ignored undecoded.
const maxEscapedKey = 2 + 6*20

// fields looks up the members named in names in the object obj and stores
// each raw value in the slot of the same index (nil: absent). Other members
// are ignored. It returns a bit set of the names given more than once.
func fields(obj []byte, names []string, slots [][]byte) (dups uint32) {
	var scratch [maxEscapedKey]byte
	eachMember(obj, func(rawKey, val []byte) {
		if len(rawKey) > maxEscapedKey {
			return
		}
		k := stringText(rawKey, scratch[:0])
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

// reportDups reports the names of the bit set dups as given more than once
// in the object at obj (pathLoc(""): the body).
func (p *parser) reportDups(dups uint32, obj loc, names []string) {
	for j, n := range names {
		if dups&(1<<j) != 0 {
			l := obj
			if l.base == "" {
				l.base = n
			} else {
				l.field += "." + n
			}
			p.add(l, "is given more than once")
		}
	}
}

// freeForm keeps v (any JSON value) as its exact text without insignificant
// whitespace, and checks its nesting depth.
func (p *parser) freeForm(v []byte, l loc) json.RawMessage {
	if p.arena == nil {
		p.arena = make([]byte, 0, p.size)
	}
	start := len(p.arena)
	var depth int
	p.arena, depth = compactInto(p.arena, v)
	if depth > maxDepth {
		p.add(l, msgTooDeep)
	}
	end := len(p.arena)
	return json.RawMessage(p.arena[start:end:end])
}

func (p *parser) name(v []byte, path string) string {
	if kindOf(v) != kindString {
		p.wrongType(pathLoc(path), "a string", v)
		return ""
	}
	s := strings.TrimSpace(decodeString(v))
	switch {
	case s == "":
		p.add(pathLoc(path), "must not be empty")
	case utf8.RuneCountInString(s) > MaxNameLength:
		p.add(pathLoc(path), msgNameTooLong)
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
			p.add(pathLoc(path), msgDescriptionTooLong)
		}
		return &s
	default:
		p.wrongType(pathLoc(path), "a string or null", v)
		return nil
	}
}

// limitedArray checks that v is an array of at most limit elements and
// returns the elements to examine, appended to els[:0]: all of them, or
// none when v is not an array. Over the limit it reports the count and
// returns only the first limit elements: the array is refused whatever the
// rest holds. The array is scanned once; with els of capacity limit, the
// elements are kept without an allocation.
func (p *parser) limitedArray(v []byte, path string, limit int, els [][]byte) [][]byte {
	els = els[:0]
	if kindOf(v) != kindArray {
		p.wrongType(pathLoc(path), "an array", v)
		return els
	}
	n := 0
	eachElementUntil(v, func(_ int, el []byte) bool {
		if n < limit {
			els = append(els, el)
		}
		n++
		return true
	})
	if n > limit {
		p.addf(pathLoc(path), "must have at most %d items, has %d", limit, n)
	}
	return els
}

var criterionFields = []string{"provider", "type", "filters"}

// criteria reads leadProviderCriteria; the result is never nil.
func (p *parser) criteria(v []byte, path string) []domain.LeadProviderCriterion {
	var kept [MaxCriteria][]byte
	els := p.limitedArray(v, path, MaxCriteria, kept[:0])
	out := make([]domain.LeadProviderCriterion, 0, len(els))
	for i, el := range els {
		if kindOf(el) != kindObject {
			p.wrongType(itemLoc(path, i, ""), "an object", el)
			continue
		}
		var slots [3][]byte
		p.reportDups(fields(el, criterionFields, slots[:]), itemLoc(path, i, ""), criterionFields)
		var c domain.LeadProviderCriterion
		switch pv := slots[0]; {
		case pv == nil:
			p.add(itemLoc(path, i, ".provider"), "is required")
		case kindOf(pv) != kindString:
			p.wrongType(itemLoc(path, i, ".provider"), "a string", pv)
		default:
			c.Provider = p.known(pv, ProviderBase)
			if c.Provider != ProviderBase {
				p.add(itemLoc(path, i, ".provider"), `must be "`+ProviderBase+`" (the only provider supported)`)
			}
		}
		if tv := slots[1]; tv != nil {
			if kindOf(tv) == kindString {
				c.Type = domain.Some(p.known(tv, TypePerson, TypeCompany))
			}
			if !c.Type.Set || (c.Type.V != TypePerson && c.Type.V != TypeCompany) {
				p.add(itemLoc(path, i, ".type"), `must be "`+TypePerson+`" or "`+TypeCompany+`" when given`)
			}
		}
		switch fv := slots[2]; {
		case fv == nil:
			p.add(itemLoc(path, i, ".filters"), "is required")
		case kindOf(fv) != kindObject:
			p.wrongType(itemLoc(path, i, ".filters"), "a JSON object", fv)
		default:
			c.Filters = p.freeForm(fv, itemLoc(path, i, ".filters"))
		}
		out = append(out, c)
	}
	return out
}

var customFilterFields = []string{"type", "value"}

// customFilters reads customFilterCriteria; the result is never nil.
func (p *parser) customFilters(v []byte, path string) []domain.CustomFilter {
	var kept [MaxCustomFilters][]byte
	els := p.limitedArray(v, path, MaxCustomFilters, kept[:0])
	out := make([]domain.CustomFilter, 0, len(els))
	for i, el := range els {
		if kindOf(el) != kindObject {
			p.wrongType(itemLoc(path, i, ""), "an object", el)
			continue
		}
		var slots [2][]byte
		p.reportDups(fields(el, customFilterFields, slots[:]), itemLoc(path, i, ""), customFilterFields)
		var f domain.CustomFilter
		min, known := int64(0), false
		switch tv := slots[0]; {
		case tv == nil:
			p.add(itemLoc(path, i, ".type"), "is required")
		case kindOf(tv) != kindString:
			p.wrongType(itemLoc(path, i, ".type"), "a string", tv)
		default:
			f.Type = p.known(tv, CustomMaxPeoplePerCompany, CustomMinDaysUntilReuse)
			if min, known = customFilterMin[f.Type]; !known {
				p.addf(itemLoc(path, i, ".type"), "unknown type %s; known types: %s", Quote(f.Type), knownCustomTypes)
			}
		}
		switch vv := slots[1]; {
		case vv == nil:
			p.add(itemLoc(path, i, ".value"), "is required")
		case kindOf(vv) != kindNumber:
			p.wrongType(itemLoc(path, i, ".value"), "a number", vv)
		default:
			f.Value = p.freeForm(vv, itemLoc(path, i, ".value")) // a number: depth 0
			if known {
				n, whole := jsonInteger(vv)
				switch {
				case !whole:
					p.add(itemLoc(path, i, ".value"), "must be an integer for "+f.Type)
				case n < min:
					p.addf(itemLoc(path, i, ".value"), "must be at least %d for %s", min, f.Type)
				}
			}
		}
		out = append(out, f)
	}
	return out
}

var crmFields = []string{"provider", "textSearch", "query", "filters"}

// crmFilters reads crmFilters: an object or null (nil).
func (p *parser) crmFilters(v []byte, path string) *domain.CRMFilters {
	switch kindOf(v) {
	case kindNull:
		return nil
	case kindObject:
	default:
		p.wrongType(pathLoc(path), "an object or null", v)
		return nil
	}
	var slots [4][]byte
	p.reportDups(fields(v, crmFields, slots[:]), pathLoc(path), crmFields)
	c := &domain.CRMFilters{}
	if pv := slots[0]; pv != nil {
		if kindOf(pv) != kindString {
			p.wrongType(loc{base: path, i: -1, field: ".provider"}, "a string", pv)
		} else {
			c.Provider = domain.Some(decodeString(pv))
		}
	}
	if tv := slots[1]; tv != nil {
		switch kindOf(tv) {
		case kindNull:
			c.TextSearch = domain.Null[string]()
		case kindString:
			c.TextSearch = domain.Some(decodeString(tv))
		default:
			p.wrongType(loc{base: path, i: -1, field: ".textSearch"}, "a string or null", tv)
		}
	}
	if qv := slots[2]; qv != nil {
		c.Query = p.freeForm(qv, loc{base: path, i: -1, field: ".query"})
	}
	if fv := slots[3]; fv != nil {
		c.Filters = domain.Some(p.crmFilterList(fv, path+".filters"))
	}
	return c
}

var crmFilterFields = []string{"path", "mode", "value", "exclude"}

func (p *parser) crmFilterList(v []byte, path string) []domain.CRMFilter {
	var kept [MaxCRMFilters][]byte
	els := p.limitedArray(v, path, MaxCRMFilters, kept[:0])
	out := make([]domain.CRMFilter, 0, len(els))
	for i, el := range els {
		if kindOf(el) != kindObject {
			p.wrongType(itemLoc(path, i, ""), "an object", el)
			continue
		}
		var slots [4][]byte
		p.reportDups(fields(el, crmFilterFields, slots[:]), itemLoc(path, i, ""), crmFilterFields)
		var f domain.CRMFilter
		for j, field := range crmFilterFields[:2] {
			switch sv := slots[j]; {
			case sv == nil:
				p.add(itemLoc(path, i, "."+field), "is required")
			case kindOf(sv) != kindString:
				p.wrongType(itemLoc(path, i, "."+field), "a string", sv)
			case j == 0:
				f.Path = decodeString(sv)
			default:
				f.Mode = decodeString(sv)
			}
		}
		if vv := slots[2]; vv == nil {
			p.add(itemLoc(path, i, ".value"), "is required")
		} else {
			f.Value = p.freeForm(vv, itemLoc(path, i, ".value"))
		}
		if ev := slots[3]; ev != nil {
			if kindOf(ev) != kindBool {
				p.wrongType(itemLoc(path, i, ".exclude"), "a boolean", ev)
			} else {
				f.Exclude = domain.Some(ev[0] == 't')
			}
		}
		out = append(out, f)
	}
	return out
}

// userIDs reads userIds: duplicates dropped (first kept), order kept, and
// caller appended when absent (caller "": no one is added). The limit counts
// distinct entries, the caller included.
//
// Duplicates are legal, so the limit is on distinct entries: they are
// counted in a set as they come, and the elements after the first entry
// past the limit are not examined (the list is refused whatever they hold).
// The elements before it are examined, each problem reported.
func (p *parser) userIDs(v []byte, path, caller string) []string {
	if kindOf(v) != kindArray {
		p.wrongType(pathLoc(path), "an array of strings", v)
		return nil
	}
	var (
		out  []string
		seen = make(map[string]struct{})
		over bool
	)
	eachElementUntil(v, func(i int, el []byte) bool {
		if kindOf(el) != kindString {
			p.wrongType(itemLoc(path, i, ""), "a string", el)
			return true
		}
		text := p.text(el)
		switch l := utf8.RuneCount(text); {
		case l == 0:
			p.add(itemLoc(path, i, ""), "must not be empty")
			return true
		case l > MaxUserIDLength:
			p.add(itemLoc(path, i, ""), msgUserIDTooLong)
			return true
		}
		if _, dup := seen[string(text)]; dup {
			return true
		}
		if len(out) == MaxUserIDs {
			over = true
			return false
		}
		s := string(text)
		seen[s] = struct{}{}
		out = append(out, s)
		return true
	})
	if caller == "" {
		if over {
			p.add(pathLoc(path), msgTooManyUsers)
		}
		return out
	}
	if _, listed := seen[caller]; !listed && !over {
		if len(out) == MaxUserIDs {
			over = true
		} else {
			out = append(out, caller)
		}
	}
	if over {
		p.add(pathLoc(path), msgTooManyUsersWithCaller)
	}
	return out
}

var (
	msgTooManyUsers           = fmt.Sprintf("must have at most %d distinct entries, has more", MaxUserIDs)
	msgTooManyUsersWithCaller = fmt.Sprintf("must have at most %d distinct entries including the caller, has more", MaxUserIDs)
)

func (p *parser) leadsPerList(v []byte, path string) int {
	if kindOf(v) != kindNumber {
		p.wrongType(pathLoc(path), "an integer", v)
		return 0
	}
	n, whole := jsonInteger(v)
	switch {
	case !whole:
		p.add(pathLoc(path), "must be an integer")
	case n < MinLeadsPerList:
		p.add(pathLoc(path), msgLeadsTooFew)
	case n > MaxLeadsPerList:
		p.add(pathLoc(path), msgLeadsTooMany)
	default:
		return int(n)
	}
	return 0
}

// maxTimeText is more than the longest RFC 3339 time as a JSON string, even
// with every character escaped ("2006-01-02T15:04:05.999999999+07:00" is 35).
const maxTimeText = 2 + 6*35

// activeUntil reads an RFC 3339 time or null (nil).
func (p *parser) activeUntil(v []byte, path string) *domain.Time {
	const want = "an RFC 3339 timestamp such as 2024-01-15T10:30:00Z, or null"
	switch kindOf(v) {
	case kindNull:
		return nil
	case kindString:
		if len(v) > maxTimeText { // not a time: spare the parser and its error text
			p.add(pathLoc(path), "must be "+want)
			return nil
		}
		t, err := domain.ParseTime(decodeString(v))
		if err != nil {
			p.add(pathLoc(path), "must be "+want)
			return nil
		}
		return &t
	default:
		p.wrongType(pathLoc(path), want, v)
		return nil
	}
}
