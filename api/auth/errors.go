package auth

import (
	"errors"

	"github.com/golang-jwt/jwt/v5"
)

// RefusedError is the error of every refused token. It wraps ErrUnauthorized
// (errors.Is(err, ErrUnauthorized) holds), and Reason is a short message that
// is safe to show the caller: it names the failed check, never a key or a
// claim value.
//
// The reasons, and what each means:
//
//   - ReasonMissing: no token was given.
//   - ReasonTooLarge: the token is longer than MaxTokenBytes.
//   - ReasonMalformed: not a compact JWS with a JSON header and JSON claims of
//     the expected types.
//   - ReasonAlgorithm: the header's alg is not an accepted asymmetric algorithm
//     (alg "none" and every HMAC algorithm land here).
//   - ReasonNoKeyID: the header has no kid.
//   - ReasonUnknownKey: no key with the token's kid is in the key set, even
//     after the rate-limited refresh an unknown kid triggers.
//   - ReasonSignature: the signature does not match the key.
//   - ReasonExpired, ReasonNotYetValid, ReasonIssuedInFuture: exp, nbf or iat
//     say the token is not valid now (each with the configured leeway).
//   - ReasonNoExpiry: the token has no exp.
//   - ReasonIssuer: iss is not the configured issuer.
//   - ReasonAuthorizedParty: authorized parties are configured and azp is
//     absent or not one of them.
//   - ReasonSubject: sub is missing or not a plausible user id.
//   - ReasonOrganisation: the organisation claims are not plausible ids.
type RefusedError struct {
	Reason string
}

// The reasons of RefusedError.
const (
	ReasonMissing         = "missing token"
	ReasonTooLarge        = "token too large"
	ReasonMalformed       = "malformed token"
	ReasonAlgorithm       = "unsupported signing algorithm"
	ReasonNoKeyID         = "token has no key id"
	ReasonUnknownKey      = "unknown signing key"
	ReasonSignature       = "invalid signature"
	ReasonExpired         = "token expired"
	ReasonNotYetValid     = "token not yet valid"
	ReasonIssuedInFuture  = "token issued in the future"
	ReasonNoExpiry        = "token has no expiry"
	ReasonIssuer          = "wrong issuer"
	ReasonAuthorizedParty = "wrong authorized party"
	ReasonSubject         = "invalid subject"
	ReasonOrganisation    = "invalid organisation claim"
)

func (e *RefusedError) Error() string { return ErrUnauthorized.Error() + ": " + e.Reason }

// Unwrap makes errors.Is(err, ErrUnauthorized) hold.
func (e *RefusedError) Unwrap() error { return ErrUnauthorized }

func refused(reason string) error { return &RefusedError{Reason: reason} }

// ErrKeysUnavailable means the token could not be checked: the JWKS endpoint
// cannot be fetched and no key is cached, or the last fetch failed and the
// token names a key the cache does not hold. It does not wrap ErrUnauthorized;
// the API answers 503 and the caller may retry.
var ErrKeysUnavailable = errors.New("signing keys unavailable")

// unavailableError is ErrKeysUnavailable with its cause.
type unavailableError struct{ cause error }

func (e *unavailableError) Error() string {
	return ErrKeysUnavailable.Error() + ": " + e.cause.Error()
}

func (e *unavailableError) Unwrap() []error { return []error{ErrKeysUnavailable, e.cause} }

// classify turns an error of jwt.Parser into a RefusedError, keeping
// ErrKeysUnavailable (and any RefusedError raised inside the key function)
// as they are.
func classify(err error) error {
	var (
		r *RefusedError
		u *unavailableError
	)
	switch {
	case errors.As(err, &r):
		return r
	case errors.As(err, &u):
		return u
	case errors.Is(err, jwt.ErrTokenMalformed):
		return refused(ReasonMalformed)
	case errors.Is(err, jwt.ErrTokenExpired):
		return refused(ReasonExpired)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return refused(ReasonNotYetValid)
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return refused(ReasonIssuedInFuture)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return refused(ReasonIssuer)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return refused(ReasonNoExpiry)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return refused(ReasonSignature)
	default:
		// ErrTokenUnverifiable (key of the wrong type for the algorithm,
		// a JWK whose alg differs from the token's) and anything else the
		// parser may add: refuse without detail.
		return refused(ReasonSignature)
	}
}
