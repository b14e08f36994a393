// Package jsonvalid tells valid JSON text from the rest, answer for answer as
// encoding/json's Valid, at a fraction of its cost: the service checks every
// create's body (commands) and every document written to the read model
// (projections.ValidateView) with it.
package jsonvalid

// MaxNesting is encoding/json's limit on nested objects and arrays (its
// scanner's maxNestingDepth): deeper text is not valid JSON to it.
const MaxNesting = 10000

// Valid reports whether b is exactly one JSON value with only whitespace
// around it: json.Valid(b), answer for answer, its nesting limit included
// (FuzzValid compares the two, TestNesting checks the limit). Like
// json.Valid it does not check UTF-8.
//
// Written here rather than calling json.Valid because json.Valid's scanner
// calls a state function for every byte, and that was the largest cost of
// parsing a create (commands' BenchmarkParseCreateLoad) and a part of
// writing each view; this one loops over strings and numbers and keeps the
// open containers on a small stack. The scanner of commands/jsonscan.go
// relies on it: it reads only text found valid here.
func Valid(b []byte) bool {
	var inline [64]bool // the open containers, innermost last; true: an object
	open := inline[:0]
	i := skipSpace(b, 0)
	for {
		var nested bool
		if open, i, nested = beginValue(b, i, open); i < 0 {
			return false
		}
		if nested {
			continue
		}
		// A value ended at i: close the containers it ends, up to the
		// start of the next value.
		for {
			i = skipSpace(b, i)
			if len(open) == 0 {
				return i == len(b)
			}
			if i >= len(b) {
				return false
			}
			obj := open[len(open)-1]
			if c := b[i]; c == ',' {
				if i = skipSpace(b, i+1); obj {
					i = memberKey(b, i)
				}
				break
			} else if c == '}' && obj || c == ']' && !obj {
				open, i = open[:len(open)-1], i+1
			} else {
				return false
			}
		}
		if i < 0 {
			return false
		}
	}
}

// beginValue reads the value that starts at b[i]: a scalar whole (i after
// it), an empty object or array whole, or the opening of a container,
// pushed on open, and of its first member up to the member's value (nested:
// that value starts at i). i < 0: not valid JSON.
func beginValue(b []byte, i int, open []bool) (_ []bool, _ int, nested bool) {
	if i >= len(b) {
		return open, -1, false
	}
	switch c := b[i]; c {
	case '{', '[':
		if len(open) == MaxNesting {
			return open, -1, false
		}
		obj := c == '{'
		i = skipSpace(b, i+1)
		if i < len(b) && (obj && b[i] == '}' || !obj && b[i] == ']') {
			return open, i + 1, false
		}
		if obj {
			i = memberKey(b, i)
		}
		return append(open, obj), i, true
	case '"':
		return open, jsonStringEnd(b, i), false
	case 't':
		return open, literalEnd(b, i, "true"), false
	case 'f':
		return open, literalEnd(b, i, "false"), false
	case 'n':
		return open, literalEnd(b, i, "null"), false
	default:
		return open, jsonNumberEnd(b, i), false
	}
}

// memberKey reads an object member's key and colon at b[i] and returns where
// its value starts (-1: not valid JSON).
func memberKey(b []byte, i int) int {
	if i = jsonStringEnd(b, i); i < 0 {
		return -1
	}
	if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
		return -1
	}
	return skipSpace(b, i+1)
}

// jsonStringEnd returns the index just after the JSON string at b[i], or -1
// when there is none: no opening quote, no closing one, a control character
// or an escape JSON does not have.
func jsonStringEnd(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		case c == '\\':
			if i++; i >= len(b) {
				return -1
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return -1
				}
				for _, h := range b[i+1 : i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return -1
					}
				}
				i += 4
			default:
				return -1
			}
		}
	}
	return -1
}

// jsonNumberEnd returns the index just after the JSON number at b[i], or -1
// when there is none.
func jsonNumberEnd(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return -1
	case b[i] == '0':
		i++
	case '1' <= b[i] && b[i] <= '9':
		i = digitsEnd(b, i+1)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		j := digitsEnd(b, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digitsEnd(b, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func digitsEnd(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

// literalEnd returns the index just after lit at b[i], or -1 when lit is
// not there.
func literalEnd(b []byte, i int, lit string) int {
	if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
		return i + len(lit)
	}
	return -1
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// skipSpace returns the index of the first non-whitespace byte at or after i.
func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}
