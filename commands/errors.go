// Package commands is the write side: the validation that turns a request
// body into a domain command, and the Handler that loads a stream, decides
// with the domain's pure decisions (domain.DecideCreate, ...) and appends
// with an expected version.
package commands

import (
	"errors"
	"strconv"
	"strings"
)

// ErrIdempotencyKeyReused: the Idempotency-Key was already used by this
// caller in this tenant with a different request body. Nothing was
// recorded. The API maps it, like the domain's errors (domain.ErrNotFound,
// ...), to one status and code (see api/errors.go); every other error is
// unexpected (500) unless it wraps events.ErrUnavailable (503: the store
// could not be reached).
var ErrIdempotencyKeyReused = errors.New("this Idempotency-Key was already used with a different request body")

// Detail is one validation problem: where (a path such as
// "leadProviderCriteria[0].provider"; "" for the body as a whole) and what.
type Detail struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// ValidationError means the request was refused as a whole because of what it
// says; nothing was recorded. Details lists every problem found, all at once;
// it is empty when the body could not be read at all (malformed JSON). It
// holds at most MaxDetails entries (see CapDetails).
type ValidationError struct {
	Message string
	Details []Detail
}

func (e *ValidationError) Error() string {
	if len(e.Details) == 0 {
		return e.Message
	}
	var b strings.Builder
	b.WriteString(e.Message)
	for i, d := range e.Details {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		if d.Path != "" {
			b.WriteString(d.Path)
			b.WriteString(": ")
		}
		b.WriteString(d.Message)
	}
	return b.String()
}

// MaxDetails is the most details a ValidationError carries. When more
// problems were found, the last of them (path "") says how many more.
const MaxDetails = 50

// CapDetails returns details cut to at most MaxDetails entries: when there
// are more, or further (problems found but not listed) is above 0, the first
// MaxDetails-1 are kept and a last detail with path "" says how many more
// problems were found. Every error answer's details go through it, so the
// shape of the cut is the same wherever it happens.
func CapDetails(details []Detail, further int) []Detail {
	if further <= 0 && len(details) <= MaxDetails {
		return details
	}
	keep := min(len(details), MaxDetails-1)
	more := further + len(details) - keep
	out := make([]Detail, keep, keep+1)
	copy(out, details)
	// more is at least 2: the last listed place went to this detail.
	return append(out, Detail{Path: "", Message: strconv.Itoa(more) + " more problems were found"})
}

// MaxQuoted is how many characters of what the client sent a message quotes
// at most.
const MaxQuoted = 40

// Quote returns s quoted as %q does, cut to its first MaxQuoted characters
// on a character boundary; a cut is marked with "…" after the closing
// quote. A message quotes what the client sent only through Quote or
// Excerpt, so that it never grows with the request.
func Quote(s string) string {
	head, cut := excerpt(s, MaxQuoted)
	if cut {
		return strconv.Quote(head) + "…"
	}
	return strconv.Quote(s)
}

// Excerpt returns s cut to its first n characters on a character boundary,
// with "…" appended when it was cut.
func Excerpt(s string, n int) string {
	if head, cut := excerpt(s, n); cut {
		return head + "…"
	}
	return s
}

func excerpt(s string, n int) (head string, cut bool) {
	if len(s) <= n { // n characters take at least n bytes
		return s, false
	}
	k := 0
	for i := range s {
		if k == n {
			return s[:i], true
		}
		k++
	}
	return s, false
}

// problems collects validation problems: the first MaxDetails in full, and
// past them only a count, so that a body with a problem in every element
// costs an increment per problem and no memory.
type problems struct {
	list    []Detail
	further int
}

// report reports whether the next problem is to be listed in full; when it
// is not, it counts it, and the caller builds neither path nor message.
func (p *problems) report() bool {
	if len(p.list) < MaxDetails {
		return true
	}
	p.further++
	return false
}

// err returns nil when nothing was found, else a *ValidationError.
func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	return &ValidationError{Message: "the request is invalid", Details: CapDetails(p.list, p.further)}
}
