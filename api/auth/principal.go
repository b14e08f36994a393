// Package auth turns a bearer token into the caller's identity: Clerk session
// tokens verified against the instance's JWKS in production, and locally signed
// tokens in development mode.
package auth

import (
	"context"
	"errors"
)

// Principal is the authenticated caller.
type Principal struct {
	// UserID is the token's sub (a Clerk user id, "user_...").
	UserID string
	// OrgID is the caller's active organisation ("" when none).
	OrgID string
	// OrgRole is the caller's role in OrgID as the token states it.
	OrgRole string
	// Admin: the caller is an admin of OrgID (admin role claim), or is in the
	// configured admin user list.
	Admin bool
}

// Tenant is the scope every ICP of the caller belongs to: the active
// organisation, else the caller's personal scope.
func (p Principal) Tenant() string {
	if p.OrgID != "" {
		return p.OrgID
	}
	return personalPrefix + p.UserID
}

// personalPrefix starts every personal tenant; no organisation id may start
// with it.
const personalPrefix = "personal:"

// ErrUnauthorized is wrapped by every verification failure; the message after
// it says why (expired, wrong issuer, ...) and is safe to show the caller.
var ErrUnauthorized = errors.New("unauthorized")

// Verifier checks a bearer token (without the "Bearer " prefix).
//
// Verify returns an error wrapping ErrUnauthorized for any token that must be
// refused, and another error only when verification could not be attempted
// (for example the JWKS endpoint is down and no key is cached): the API answers
// the first with 401 and the second with 503.
type Verifier interface {
	Verify(ctx context.Context, token string) (Principal, error)
}
