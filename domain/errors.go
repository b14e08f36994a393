package domain

import "errors"

// The errors of the decisions and of the access rule. The API maps each to
// one status and code (see api/errors.go).
var (
	// ErrNotFound: no such live ICP in the actor's tenant (never seen,
	// deleted, or another tenant's).
	ErrNotFound = errors.New("ICP not found")
	// ErrForbidden: the ICP is in the actor's tenant but the actor is
	// neither a member nor an admin.
	ErrForbidden = errors.New("no access to this ICP")
	// ErrConflict: the ICP kept changing under the command (or, for a
	// create, already exists). Nothing was recorded.
	ErrConflict = errors.New("the ICP was changed concurrently; retry")
	// ErrPreconditionFailed: the ICP is not at the version the command
	// required (If-Match). Nothing was recorded.
	ErrPreconditionFailed = errors.New("the ICP is not at the required version")
)
