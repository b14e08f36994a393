package events

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/icpservice/icp/domain"
)

// ParseCanonicalCreated decodes an ICPCreated v1 payload that is exactly in
// the form Encode writes (MarshalJSON of the payload: keys in
// field order, no spaces, nothing escaped). For such a payload it returns
// what json.Unmarshal would, plus the bytes of its "icp" member, which are
// then MarshalJSON(p.ICP) byte for byte: the read model's doc, with
// no encoding. ok is false for anything else (escaped or HTML characters
// in a string, a key out of order, a number or time in another spelling,
// spaces, a field the code does not know ...); the caller then decodes the
// general way.
//
// Why by hand: decoding and re-encoding a create with encoding/json is
// about 10 µs of CPU, the largest cost of projecting or rebuilding a
// history of creates on two cores; this takes about 2. TestCanonicalCreate and
// FuzzCanonicalCreate hold it to encoding/json: whatever it accepts,
// json.Unmarshal decodes to the same value and MarshalJSON encodes
// back to the same bytes. A field added to ICP makes every payload
// that carries it fall back (its key is unknown here) and fails
// TestCanonicalCreateKnowsEveryField.
func ParseCanonicalCreated(data []byte) (p domain.ICPCreatedV1, icp []byte, ok bool) {
	c := &canon{b: data, ok: true}
	c.lit(`{"icp":`)
	start := c.i
	c.icp(&p.ICP)
	icp = data[start:c.i]
	c.lit(`,"tenant":`)
	p.Tenant = c.str()
	c.lit(`,"createdBy":`)
	p.CreatedBy = c.str()
	c.lit(`}`)
	if !c.ok || c.i != len(data) {
		return domain.ICPCreatedV1{}, nil, false
	}
	return p, icp, true
}

// canon is a cursor over a payload in canonical form; ok turns false at
// the first byte that is not, and stays false.
type canon struct {
	b  []byte
	i  int
	ok bool
	// html: inside an Opt, whose value json.Marshal writes with
	// '<', '>' and '&' escaped, so that a canonical string holds none.
	html bool
}

func (c *canon) fail() { c.ok = false }

// lit consumes s.
func (c *canon) lit(s string) {
	if c.ok && len(c.b)-c.i >= len(s) && string(c.b[c.i:c.i+len(s)]) == s {
		c.i += len(s)
		return
	}
	c.fail()
}

// peek reports whether s comes next, without consuming it.
func (c *canon) peek(s string) bool {
	return c.ok && len(c.b)-c.i >= len(s) && string(c.b[c.i:c.i+len(s)]) == s
}

// null consumes a null if one comes next.
func (c *canon) null() bool {
	if c.peek("null") {
		c.i += 4
		return true
	}
	return false
}

// str consumes a string that needs no escaping: encoding/json writes it as
// it is and reads it back unchanged. Valid UTF-8 but for U+2028 and U+2029
// (which the encoder escapes); no control character, quote or backslash.
func (c *canon) str() string {
	if !c.ok || c.i >= len(c.b) || c.b[c.i] != '"' {
		c.fail()
		return ""
	}
	start := c.i + 1
	ascii := true
	for j := start; j < len(c.b); j++ {
		switch b := c.b[j]; {
		case b == '"':
			s := c.b[start:j]
			if !ascii && (!utf8.Valid(s) || bytes.Contains(s, []byte("\u2028")) || bytes.Contains(s, []byte("\u2029"))) {
				c.fail()
				return ""
			}
			c.i = j + 1
			return string(s)
		case b < 0x20 || b == '\\':
			c.fail()
			return ""
		case b >= 0x80:
			ascii = false
		case c.html && (b == '<' || b == '>' || b == '&'):
			c.fail()
			return ""
		}
	}
	c.fail()
	return ""
}

// integer consumes an int written as strconv.Itoa writes it.
func (c *canon) integer() int {
	if !c.ok {
		return 0
	}
	j := c.i
	if j < len(c.b) && c.b[j] == '-' {
		j++
	}
	for j < len(c.b) && c.b[j] >= '0' && c.b[j] <= '9' {
		j++
	}
	s := string(c.b[c.i:j])
	n, err := strconv.Atoi(s)
	if err != nil || strconv.Itoa(n) != s {
		c.fail()
		return 0
	}
	c.i = j
	return n
}

// time consumes a time written as Time writes it, and reads it as
// Time reads it.
func (c *canon) time() domain.Time {
	s := c.str()
	if !c.ok {
		return domain.Time{}
	}
	t, err := domain.ParseTime(s)
	if err != nil || t.String() != s {
		c.fail()
		return domain.Time{}
	}
	return t
}

// raw consumes a JSON value with no space outside its strings (the
// encoder's compact form of a json.RawMessage) and returns a copy, as
// json.RawMessage's UnmarshalJSON keeps one.
func (c *canon) raw() json.RawMessage {
	start := c.i
	c.value(0)
	if !c.ok {
		return nil
	}
	return append(json.RawMessage(nil), c.b[start:c.i]...)
}

// maxDepth bounds the nesting raw follows; deeper values fall back.
const maxDepth = 64

// value consumes one compact JSON value, checking it as encoding/json's
// scanner does.
func (c *canon) value(depth int) {
	if !c.ok || c.i >= len(c.b) || depth > maxDepth {
		c.fail()
		return
	}
	switch b := c.b[c.i]; {
	case b == '{':
		c.i++
		if c.peek("}") {
			c.i++
			return
		}
		for c.ok {
			c.rawString()
			c.lit(":")
			c.value(depth + 1)
			if c.peek(",") {
				c.i++
				continue
			}
			c.lit("}")
			return
		}
	case b == '[':
		c.i++
		if c.peek("]") {
			c.i++
			return
		}
		for c.ok {
			c.value(depth + 1)
			if c.peek(",") {
				c.i++
				continue
			}
			c.lit("]")
			return
		}
	case b == '"':
		c.rawString()
	case b == 't':
		c.lit("true")
	case b == 'f':
		c.lit("false")
	case b == 'n':
		c.lit("null")
	case b == '-' || (b >= '0' && b <= '9'):
		c.number()
	default:
		c.fail()
	}
}

// rawString consumes a JSON string of any content encoding/json's scanner
// accepts (escapes included; bytes are not checked as UTF-8, as the scanner
// does not). Inside an Opt, json.Marshal would escape '<', '>', '&',
// U+2028 and U+2029 in it: those fall back.
func (c *canon) rawString() {
	if !c.ok || c.i >= len(c.b) || c.b[c.i] != '"' {
		c.fail()
		return
	}
	for j := c.i + 1; j < len(c.b); j++ {
		switch b := c.b[j]; {
		case b == '"':
			c.i = j + 1
			return
		case b < 0x20:
			c.fail()
			return
		case b == '\\':
			j++
			if j >= len(c.b) {
				c.fail()
				return
			}
			switch c.b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(c.b) {
					c.fail()
					return
				}
				for _, h := range c.b[j+1 : j+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						c.fail()
						return
					}
				}
				j += 4
			default:
				c.fail()
				return
			}
		case c.html && (b == '<' || b == '>' || b == '&' || b == 0xE2):
			// 0xE2 leads U+2028 and U+2029 (and other characters, which
			// merely fall back).
			c.fail()
			return
		}
	}
	c.fail()
}

// number consumes a JSON number.
func (c *canon) number() {
	digits := func() int {
		n := 0
		for c.i < len(c.b) && c.b[c.i] >= '0' && c.b[c.i] <= '9' {
			c.i++
			n++
		}
		return n
	}
	if c.peek("-") {
		c.i++
	}
	switch {
	case c.peek("0"):
		c.i++
	case digits() == 0:
		c.fail()
		return
	}
	if c.peek(".") {
		c.i++
		if digits() == 0 {
			c.fail()
			return
		}
	}
	if c.i < len(c.b) && (c.b[c.i] == 'e' || c.b[c.i] == 'E') {
		c.i++
		if c.i < len(c.b) && (c.b[c.i] == '+' || c.b[c.i] == '-') {
			c.i++
		}
		if digits() == 0 {
			c.fail()
		}
	}
}

// icp consumes an ICP.
func (c *canon) icp(p *domain.ICP) {
	c.lit(`{"id":`)
	p.ID = c.str()
	c.lit(`,"name":`)
	p.Name = c.str()
	c.lit(`,"description":`)
	if !c.null() {
		s := c.str()
		p.Description = &s
	}
	c.lit(`,"createdAt":`)
	p.CreatedAt = c.time()
	c.lit(`,"updatedAt":`)
	p.UpdatedAt = c.time()
	c.lit(`,"leadProviderCriteria":`)
	p.LeadProviderCriteria = array(c, func(l *domain.LeadProviderCriterion) {
		c.lit(`{"provider":`)
		l.Provider = c.str()
		if c.peek(`,"type":`) {
			c.i += len(`,"type":`)
			l.Type = opt(c, c.str)
		}
		c.lit(`,"filters":`)
		l.Filters = c.raw()
		c.lit(`}`)
	})
	c.lit(`,"customFilterCriteria":`)
	p.CustomFilterCriteria = array(c, func(f *domain.CustomFilter) {
		c.lit(`{"type":`)
		f.Type = c.str()
		c.lit(`,"value":`)
		f.Value = c.raw()
		c.lit(`}`)
	})
	c.lit(`,"crmFilters":`)
	if !c.null() {
		p.CRMFilters = c.crm()
	}
	c.lit(`,"userIds":`)
	p.UserIDs = array(c, func(s *string) { *s = c.str() })
	c.lit(`,"leadsPerList":`)
	p.LeadsPerList = c.integer()
	c.lit(`,"activeUntil":`)
	if !c.null() {
		t := c.time()
		p.ActiveUntil = &t
	}
	c.lit(`}`)
}

// crm consumes an CRMFilters; its keys are all optional.
func (c *canon) crm() *domain.CRMFilters {
	var f domain.CRMFilters
	c.lit(`{`)
	sep := ""
	key := func(k string) bool {
		if c.peek(sep + `"` + k + `":`) {
			c.i += len(sep) + len(k) + 3
			sep = ","
			return true
		}
		return false
	}
	if key("provider") {
		f.Provider = opt(c, c.str)
	}
	if key("textSearch") {
		f.TextSearch = opt(c, c.str)
	}
	if key("query") {
		if f.Query = c.raw(); len(f.Query) == 0 {
			c.fail()
		}
	}
	if key("filters") {
		f.Filters = opt(c, func() []domain.CRMFilter {
			return array(c, func(x *domain.CRMFilter) {
				c.lit(`{"path":`)
				x.Path = c.str()
				c.lit(`,"mode":`)
				x.Mode = c.str()
				c.lit(`,"value":`)
				x.Value = c.raw()
				if c.peek(`,"exclude":`) {
					c.i += len(`,"exclude":`)
					x.Exclude = opt(c, func() bool {
						if c.peek("true") {
							c.i += 4
							return true
						}
						c.lit("false")
						return false
					})
				}
				c.lit(`}`)
			})
		})
		if f.Filters.Set && !f.Filters.Null && f.Filters.V == nil {
			c.fail() // json.Marshal writes a nil slice as null
		}
	}
	c.lit(`}`)
	return &f
}

// opt consumes an Opt: null, or a value that json.Marshal writes
// (with '<', '>' and '&' escaped: see canon.html).
func opt[T any](c *canon, val func() T) domain.Opt[T] {
	if c.null() {
		return domain.Null[T]()
	}
	html := c.html
	c.html = true
	v := val()
	c.html = html
	return domain.Some(v)
}

// array consumes null (a nil slice) or an array whose elements elem
// consumes ([] is an empty slice, not nil, as json.Unmarshal makes it).
func array[T any](c *canon, elem func(*T)) []T {
	if c.null() {
		return nil
	}
	c.lit("[")
	out := []T{}
	if c.peek("]") {
		c.i++
		return out
	}
	for c.ok {
		var x T
		elem(&x)
		out = append(out, x)
		if c.peek(",") {
			c.i++
			continue
		}
		c.lit("]")
		break
	}
	return out
}

// DecodeRecordedDoc is DecodeRecorded, with the same results, and for an
// ICPCreated v1 payload in the form Encode writes (see
// ParseCanonicalCreated) it also returns the JSON of its ICP as MarshalJSON
// writes it: the read model's document, without encoding it again (nil for
// any other event).
func DecodeRecordedDoc(r Recorded) (p any, icpJSON []byte, err error) {
	if r.Type == TypeICPCreated && r.SchemaVersion == 1 && CurrentSchema[TypeICPCreated] == 1 {
		v, doc, ok := ParseCanonicalCreated(r.Data)
		if ok && checkCreated(v) == nil {
			return v, doc, nil
		}
	}
	p, err = DecodeRecorded(r)
	return p, nil, err
}
