// Package commands is the write side: the commands a client can send, their
// validation, the decisions that turn a command and an ICP's current state
// into events, and the Handler that loads a stream, decides and appends with
// an expected version.
package commands

import (
	"errors"
	"strings"
)

// Domain errors. The API maps each to one status and code (see api/errors.go);
// every other error is unexpected (500) unless it wraps events.ErrUnavailable
// (503: the store could not be reached).
var (
	// ErrNotFound: no such live ICP in the caller's tenant (never seen,
	// deleted, or another tenant's).
	ErrNotFound = errors.New("ICP not found")
	// ErrForbidden: the ICP is in the caller's tenant but the caller is
	// neither a member nor an admin.
	ErrForbidden = errors.New("no access to this ICP")
	// ErrConflict: the ICP kept changing under the command; it still
	// conflicted after the handler's bounded retries. Nothing was recorded.
	ErrConflict = errors.New("the ICP was changed concurrently; retry")
	// ErrIdempotencyKeyReused: the Idempotency-Key was already used by this
	// caller in this tenant with a different request body. Nothing was
	// recorded.
	ErrIdempotencyKeyReused = errors.New("this Idempotency-Key was already used with a different request body")
	// ErrPreconditionFailed: the ICP is not at the version the command
	// required (If-Match). Nothing was recorded.
	ErrPreconditionFailed = errors.New("the ICP is not at the required version")
)

// Detail is one validation problem: where (a path such as
// "leadProviderCriteria[0].provider"; "" for the body as a whole) and what.
type Detail struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// ValidationError means the request was refused as a whole because of what it
// says; nothing was recorded. Details lists every problem found, all at once;
// it is empty when the body could not be read at all (malformed JSON).
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

// invalid collects validation problems.
type problems []Detail

func (p *problems) add(path, msg string) { *p = append(*p, Detail{Path: path, Message: msg}) }

// err returns nil when nothing was found, else a *ValidationError.
func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &ValidationError{Message: "the request is invalid", Details: p}
}
