package events

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/icpservice/icp/domain"
)

// appendICP appends the JSON of i to dst: byte for byte what encoding/json
// writes for it with HTML escaping off, as Encode and MarshalJSON always
// wrote it (TestAppendICPIsEncodingJSON, FuzzAppendICP). It fails, like
// encoding/json, when a free-form member holds invalid JSON.
//
// It is written by hand because the reflective encoder was the largest
// single cost of recording a create after the HTTP server: every create
// encodes its ICP once. Its quirks are kept, so that events and documents
// stay the same bytes whichever encoder wrote them: values inside an Opt are
// encoded by json.Marshal and so with HTML escaping, and free-form JSON is
// written compacted.
func appendICP(dst []byte, i *domain.ICP) ([]byte, error) {
	var err error
	dst = append(dst, `{"id":`...)
	dst = appendString(dst, i.ID, false)
	dst = append(dst, `,"name":`...)
	dst = appendString(dst, i.Name, false)
	dst = append(dst, `,"description":`...)
	if i.Description == nil {
		dst = append(dst, "null"...)
	} else {
		dst = appendString(dst, *i.Description, false)
	}
	dst = append(dst, `,"createdAt":`...)
	created := len(dst)
	dst = appendTime(dst, i.CreatedAt)
	createdText := dst[created:]
	dst = append(dst, `,"updatedAt":`...)
	if i.UpdatedAt.Equal(i.CreatedAt.Time) { // a create: the same instant, written once
		dst = append(dst, createdText...)
	} else {
		dst = appendTime(dst, i.UpdatedAt)
	}

	dst = append(dst, `,"leadProviderCriteria":`...)
	if dst, err = appendList(dst, i.LeadProviderCriteria, appendCriterion); err != nil {
		return nil, err
	}
	dst = append(dst, `,"customFilterCriteria":`...)
	if dst, err = appendList(dst, i.CustomFilterCriteria, appendCustomFilter); err != nil {
		return nil, err
	}
	dst = append(dst, `,"crmFilters":`...)
	if i.CRMFilters == nil {
		dst = append(dst, "null"...)
	} else if dst, err = appendCRMFilters(dst, i.CRMFilters); err != nil {
		return nil, err
	}
	dst = append(dst, `,"userIds":`...)
	dst, _ = appendList(dst, i.UserIDs, func(dst []byte, u *string) ([]byte, error) {
		return appendString(dst, *u, false), nil
	})
	dst = append(dst, `,"leadsPerList":`...)
	dst = strconv.AppendInt(dst, int64(i.LeadsPerList), 10)
	dst = append(dst, `,"activeUntil":`...)
	if i.ActiveUntil == nil {
		dst = append(dst, "null"...)
	} else {
		dst = appendTime(dst, *i.ActiveUntil)
	}
	return append(dst, '}'), nil
}

func appendCRMFilters(dst []byte, f *domain.CRMFilters) ([]byte, error) {
	var err error
	dst = append(dst, '{')
	sep := func() {
		if dst[len(dst)-1] != '{' {
			dst = append(dst, ',')
		}
	}
	if f.Provider.Set {
		dst = append(dst, `"provider":`...)
		dst = appendOptString(dst, f.Provider)
	}
	if f.TextSearch.Set {
		sep()
		dst = append(dst, `"textSearch":`...)
		dst = appendOptString(dst, f.TextSearch)
	}
	if len(f.Query) > 0 {
		sep()
		dst = append(dst, `"query":`...)
		if dst, err = appendRaw(dst, f.Query, false); err != nil {
			return nil, err
		}
	}
	if f.Filters.Set {
		sep()
		dst = append(dst, `"filters":`...)
		if f.Filters.Null {
			dst = append(dst, "null"...)
		} else if dst, err = appendList(dst, f.Filters.V, appendCRMFilter); err != nil {
			return nil, err
		}
	}
	return append(dst, '}'), nil
}

// appendList writes xs as a JSON array, each element by one, or null when
// xs is nil (as encoding/json writes a nil slice).
func appendList[T any](dst []byte, xs []T, one func([]byte, *T) ([]byte, error)) ([]byte, error) {
	if xs == nil {
		return append(dst, "null"...), nil
	}
	dst = append(dst, '[')
	for n := range xs {
		if n > 0 {
			dst = append(dst, ',')
		}
		var err error
		if dst, err = one(dst, &xs[n]); err != nil {
			return nil, err
		}
	}
	return append(dst, ']'), nil
}

func appendCriterion(dst []byte, c *domain.LeadProviderCriterion) ([]byte, error) {
	dst = append(dst, `{"provider":`...)
	dst = appendString(dst, c.Provider, false)
	if c.Type.Set {
		dst = append(dst, `,"type":`...)
		dst = appendOptString(dst, c.Type)
	}
	dst = append(dst, `,"filters":`...)
	dst, err := appendRaw(dst, c.Filters, false)
	if err != nil {
		return nil, err
	}
	return append(dst, '}'), nil
}

func appendCustomFilter(dst []byte, c *domain.CustomFilter) ([]byte, error) {
	dst = append(dst, `{"type":`...)
	dst = appendString(dst, c.Type, false)
	dst = append(dst, `,"value":`...)
	dst, err := appendRaw(dst, c.Value, false)
	if err != nil {
		return nil, err
	}
	return append(dst, '}'), nil
}

// appendCRMFilter writes one CRM filter as json.Marshal does inside
// Opt.MarshalJSON: with HTML escaping.
func appendCRMFilter(dst []byte, c *domain.CRMFilter) ([]byte, error) {
	dst = append(dst, `{"path":`...)
	dst = appendString(dst, c.Path, true)
	dst = append(dst, `,"mode":`...)
	dst = appendString(dst, c.Mode, true)
	dst = append(dst, `,"value":`...)
	dst, err := appendRaw(dst, c.Value, true)
	if err != nil {
		return nil, err
	}
	if c.Exclude.Set {
		dst = append(dst, `,"exclude":`...)
		if c.Exclude.Null {
			dst = append(dst, "null"...)
		} else {
			dst = strconv.AppendBool(dst, c.Exclude.V)
		}
	}
	return append(dst, '}'), nil
}

// appendOptString writes a set Opt[string] as its MarshalJSON does: null, or
// the string as json.Marshal escapes it (HTML characters included).
func appendOptString(dst []byte, o domain.Opt[string]) []byte {
	if o.Null {
		return append(dst, "null"...)
	}
	return appendString(dst, o.V, true)
}

func appendTime(dst []byte, t domain.Time) []byte {
	dst = append(dst, '"')
	dst = t.UTC().AppendFormat(dst, domain.TimeLayout)
	return append(dst, '"')
}

// appendString appends s as a JSON string, escaped as encoding/json does
// with HTML escaping on or off. Strings of printable ASCII with nothing to
// escape are copied; any other goes through encoding/json itself.
func appendString(dst []byte, s string, html bool) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || (html && (c == '<' || c == '>' || c == '&')) {
			return appendStringSlow(dst, s, html)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

func appendStringSlow(dst []byte, s string, html bool) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(html)
	_ = enc.Encode(s) // a string always encodes
	return append(dst, bytes.TrimSuffix(b.Bytes(), []byte("\n"))...)
}

// appendRaw appends free-form JSON as encoding/json writes a
// json.RawMessage: null when empty, else validated and compacted (and with
// HTML characters escaped when html is set). Text that is already compact
// is copied as it is.
func appendRaw(dst []byte, raw json.RawMessage, html bool) ([]byte, error) {
	if len(raw) == 0 {
		return append(dst, "null"...), nil
	}
	if compactJSON(raw, html) {
		return append(dst, raw...), nil
	}
	if !json.Valid(raw) {
		// The error encoding/json gives for the same value.
		_, err := json.Marshal(raw)
		return nil, err
	}
	if isCompact(raw, html) {
		return append(dst, raw...), nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil, err
	}
	if html {
		var e bytes.Buffer
		json.HTMLEscape(&e, b.Bytes())
		b = e
	}
	return append(dst, b.Bytes()...), nil
}

// compactJSON reports whether raw is one JSON value as encoding/json's
// scanner accepts it, without whitespace outside its strings and, when html
// is set, without a character json.HTMLEscape would change: text that
// appendRaw can copy as it is. It checks in one pass what json.Valid and
// isCompact check in two, with the scanner of the canonical payload
// (canon.value, held to encoding/json by FuzzCanonicalCreate and
// FuzzCompactJSON); false sends the text the general way, which decides
// again (BenchmarkEncodeCreated).
func compactJSON(raw []byte, html bool) bool {
	c := canon{b: raw, ok: true, html: html}
	c.value(0)
	return c.ok && c.i == len(raw)
}

// isCompact reports whether valid JSON has no whitespace outside its
// strings and, when html is set, nothing json.HTMLEscape would change.
func isCompact(raw []byte, html bool) bool {
	inString, escaped := false, false
	for i, c := range raw {
		if html && (c == '<' || c == '>' || c == '&' || (c == 0xE2 && i+2 < len(raw) && raw[i+1] == 0x80 && raw[i+2]&^1 == 0xA8)) {
			return false
		}
		switch {
		case escaped:
			escaped = false
		case inString:
			switch c {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			return false
		}
	}
	return true
}
