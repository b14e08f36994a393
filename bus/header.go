package bus

import (
	"fmt"
	"sort"
	"strings"

	"github.com/nats-io/nats.go"
)

// maxHeaderValue bounds a value HeaderSafe returns.
const maxHeaderValue = 1024

// HeaderSafe makes s fit a NATS header value: one line (CR and LF become
// spaces), at most 1,024 bytes, cut on a UTF-8 boundary. Used for the
// reasons dead letters carry, which quote errors that may quote input.
func HeaderSafe(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
	if len(s) > maxHeaderValue {
		s = strings.ToValidUTF8(s[:maxHeaderValue], "")
	}
	return s
}

// Printable makes a value another writer supplied (an event store field)
// safe for a NATS header and a log line: at most max bytes, every control
// character and invalid UTF-8 sequence replaced by '?'.
func Printable(s string, max int) string {
	if len(s) > max {
		s = s[:max]
	}
	return strings.Map(func(c rune) rune {
		if c < ' ' || c == 0x7f {
			return '?'
		}
		return c
	}, strings.ToValidUTF8(s, "?"))
}

// Malformed says why a message's headers cannot be read as the service's
// (a header given more than once), or "" when they can. JetStream's own
// Nats-* headers, and the keys skip accepts (nil: none), are not looked at.
// Such a message is dead-lettered, never guessed at.
func Malformed(h nats.Header, skip func(key string) bool) string {
	var problems []string
	for k, vs := range h {
		if len(vs) <= 1 || strings.HasPrefix(k, "Nats-") || (skip != nil && skip(k)) {
			continue
		}
		problems = append(problems, fmt.Sprintf("header %s has %d values", k, len(vs)))
	}
	sort.Strings(problems)
	return strings.Join(problems, "; ")
}
