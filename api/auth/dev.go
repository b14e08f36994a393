package auth

import (
	"context"

	"github.com/MicahParks/jwkset"
)

// DevConfig configures the development-mode verifier.
type DevConfig struct {
	// AdminRoles are the organisation roles that make the caller an admin
	// (default DefaultAdminRoles, which holds the "admin" that Mint writes).
	AdminRoles []string
	// AdminUsers are user ids that are admins wherever they act.
	AdminUsers []string
}

// NewDevVerifier accepts the tokens key mints, with the checks and the
// claims-to-Principal rules of ClerkVerifier (RS256 with the key's kid, exp
// required, nbf and iat with DefaultLeeway, iss DevIssuer, no azp check). It
// never returns ErrKeysUnavailable: the key set is the one local key.
func NewDevVerifier(key *DevKey, cfg DevConfig) Verifier {
	keys := jwkset.NewMemoryStorage()
	if err := keys.KeyWrite(context.Background(), key.public); err != nil {
		panic("auth: dev key set: " + err.Error()) // a memory write cannot fail
	}
	v, err := newVerifier(verifierConfig{
		issuer:    DevIssuer,
		storage:   keys,
		policy:    newPolicy(nil, cfg.AdminRoles, cfg.AdminUsers),
		leeway:    DefaultLeeway,
		cacheSize: DefaultCacheSize,
		cacheTTL:  DefaultCacheTTL,
	})
	if err != nil {
		panic("auth: dev verifier: " + err.Error()) // only for a nil key set
	}
	return v
}
