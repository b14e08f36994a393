package commands

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"
)

// A small scanner over JSON text already validated (jsonvalid.Valid, which
// answers as json.Valid does). It is hand-written because the validation needs
// what encoding/json does not offer in one pass: every problem reported at
// once with its exact path (json.Unmarshal stops at the first syntax problem
// and keeps only the first type error), keys matched exactly (json.Unmarshal
// matches struct fields case-insensitively), duplicate keys noticed, and
// free-form values kept as the exact accepted text without a round trip
// through map[string]any and float64. Every function assumes valid JSON.

// maxDepth is the deepest nesting of objects and arrays accepted inside a
// free-form JSON value; the value's own brackets are level 1.
const maxDepth = 32

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// skipSpace returns the index of the first non-whitespace byte at or after i.
func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// stringEnd returns the index just after the string that starts at b[i] ('"').
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// valueEnd returns the index just after the value that starts at b[i].
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = stringEnd(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(b)
	default: // number, true, false, null
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return len(b)
	}
}

// trimValue returns v without surrounding whitespace.
func trimValue(v []byte) []byte {
	i := skipSpace(v, 0)
	j := len(v)
	for j > i && isSpace(v[j-1]) {
		j--
	}
	return v[i:j]
}

// kind names the JSON type of a trimmed value, as used in messages.
type kind byte

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

func kindOf(v []byte) kind {
	switch v[0] {
	case 'n':
		return kindNull
	case 't', 'f':
		return kindBool
	case '"':
		return kindString
	case '[':
		return kindArray
	case '{':
		return kindObject
	default:
		return kindNumber
	}
}

// eachMember calls fn for every member of the object obj, in order, with the
// member's raw key (quotes included) and its trimmed value.
func eachMember(obj []byte, fn func(rawKey, val []byte)) {
	i := skipSpace(obj, 1)
	if i >= len(obj) || obj[i] == '}' {
		return
	}
	for i < len(obj) {
		ke := stringEnd(obj, i)
		key := obj[i:ke]
		i = skipSpace(obj, ke)
		i = skipSpace(obj, i+1) // past ':'
		ve := valueEnd(obj, i)
		fn(key, obj[i:ve])
		i = skipSpace(obj, ve)
		if i >= len(obj) || obj[i] != ',' {
			return
		}
		i = skipSpace(obj, i+1)
	}
}

// eachElementUntil calls fn for the elements of the array arr, in order,
// until fn returns false.
func eachElementUntil(arr []byte, fn func(i int, val []byte) bool) {
	i := skipSpace(arr, 1)
	if i >= len(arr) || arr[i] == ']' {
		return
	}
	for n := 0; i < len(arr); n++ {
		ve := valueEnd(arr, i)
		if !fn(n, arr[i:ve]) {
			return
		}
		i = skipSpace(arr, ve)
		if i >= len(arr) || arr[i] != ',' {
			return
		}
		i = skipSpace(arr, i+1)
	}
}

// countElements returns the number of elements of the array arr.
func countElements(arr []byte) int {
	n := 0
	eachElementUntil(arr, func(int, []byte) bool { n++; return true })
	return n
}

// decodeString returns the text of the JSON string s (quotes included). The
// common case, no escapes, copies the bytes without a decoder.
func decodeString(s []byte) string {
	inner := s[1 : len(s)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner)
	}
	return string(appendUnescaped(make([]byte, 0, len(inner)), s))
}

// stringText returns the decoded text of the JSON string s (quotes
// included), appended to scratch[:0] when s has escapes; without escapes it
// is a sub-slice of s (no copy). So a comparison or a map lookup with
// string(stringText(s, scratch)) allocates nothing while scratch has room.
func stringText(s, scratch []byte) []byte {
	if bytes.IndexByte(s, '\\') < 0 {
		return s[1 : len(s)-1]
	}
	return appendUnescaped(scratch[:0], s)
}

// appendUnescaped appends the text of the JSON string s (quotes included,
// valid JSON) to dst, decoded as encoding/json decodes it: escapes resolved,
// a surrogate pair joined, a lone surrogate and an invalid byte replaced by
// U+FFFD (FuzzUnescape compares the two). Written here because
// encoding/json decodes a string only into a new allocation, and escaped
// keys and user ids are decoded once each: into a reused buffer, they cost
// no memory per element.
func appendUnescaped(dst, s []byte) []byte {
	s = s[1 : len(s)-1]
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == '\\' && s[i+1] == 'u':
			r := hex4(s[i+2:])
			i += 6
			if utf16.IsSurrogate(r) {
				if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if pair := utf16.DecodeRune(r, hex4(s[i+2:])); pair != utf8.RuneError {
						dst = utf8.AppendRune(dst, pair)
						i += 6
						continue
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
		case c == '\\':
			dst = append(dst, unescaped[s[i+1]])
			i += 2
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = utf8.AppendRune(dst, utf8.RuneError)
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
		}
	}
	return dst
}

// unescaped maps the character after a backslash to what it stands for.
var unescaped = [256]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

// hex4 reads the four hex digits that follow \u.
func hex4(h []byte) rune {
	var r rune
	for _, c := range h[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// compactInto appends v without insignificant whitespace to dst and reports
// the deepest nesting of objects and arrays in v (0 for a scalar). The text of
// strings, numbers and literals is copied unchanged.
func compactInto(dst, v []byte) ([]byte, int) {
	depth, deepest := 0, 0
	for i := 0; i < len(v); {
		c := v[i]
		switch {
		case c == '"':
			e := stringEnd(v, i)
			dst = append(dst, v[i:e]...)
			i = e
			continue
		case isSpace(c):
		case c == '{' || c == '[':
			depth++
			if depth > deepest {
				deepest = depth
			}
			dst = append(dst, c)
		case c == '}' || c == ']':
			depth--
			dst = append(dst, c)
		default:
			dst = append(dst, c)
		}
		i++
	}
	return dst, deepest
}
