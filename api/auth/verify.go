package auth

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// MaxTokenBytes bounds the token a verifier reads; Clerk session tokens are
// around a kilobyte.
const MaxTokenBytes = 16 << 10

// DefaultLeeway is the clock skew allowed on exp, nbf and iat when none is
// configured.
const DefaultLeeway = 5 * time.Second

// MaxLeeway is the largest clock skew a verifier accepts as configuration.
const MaxLeeway = 5 * time.Minute

// acceptedAlgorithms are the only signing algorithms a token may use. Clerk
// signs with RS256; "none" and every HMAC algorithm are refused by
// construction, so a token signed with the public key as an HMAC secret can
// never verify.
var acceptedAlgorithms = []string{jwt.SigningMethodRS256.Alg()}

// verifier is the check shared by Clerk and development tokens: signature
// against a key set (kid required, alg RS256 only), exp required, nbf and iat
// with leeway, iss exact, then the policy's claim checks, with a cache of
// verified tokens in front.
type verifier struct {
	issuer string
	parser *jwt.Parser
	keys   keyfunc.Keyfunc
	policy policy
	cache  *tokenCache
	now    func() time.Time
}

// verifierConfig holds the settings of verifier shared by both modes.
type verifierConfig struct {
	issuer    string
	storage   jwkset.Storage
	policy    policy
	leeway    time.Duration
	cacheSize int
	cacheTTL  time.Duration
	now       func() time.Time
}

func newVerifier(cfg verifierConfig) (*verifier, error) {
	if cfg.now == nil {
		cfg.now = time.Now
	}
	keys, err := keyfunc.New(keyfunc.Options{
		Storage: cfg.storage,
		// Keys marked for encryption never verify a signature.
		UseWhitelist: []jwkset.USE{jwkset.UseSig, ""},
	})
	if err != nil {
		return nil, err
	}
	return &verifier{
		issuer: cfg.issuer,
		parser: jwt.NewParser(
			jwt.WithValidMethods(acceptedAlgorithms),
			jwt.WithLeeway(cfg.leeway),
			jwt.WithIssuer(cfg.issuer),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithTimeFunc(cfg.now),
		),
		keys:   keys,
		policy: cfg.policy,
		cache:  newTokenCache(cfg.cacheSize, cfg.cacheTTL),
		now:    cfg.now,
	}, nil
}

// Verify implements Verifier; see RefusedError for what each refusal means
// and ErrKeysUnavailable for the one error that is not a refusal.
func (v *verifier) Verify(ctx context.Context, token string) (Principal, error) {
	if token == "" {
		return Principal{}, refused(ReasonMissing)
	}
	if len(token) > MaxTokenBytes {
		return Principal{}, refused(ReasonTooLarge)
	}
	now := v.now()
	if p, ok := v.cache.get(token, now); ok {
		return p, nil
	}
	claims := &sessionClaims{}
	t, err := v.parser.ParseWithClaims(token, claims, v.keyFunc(ctx))
	if err != nil {
		if t != nil && !errors.Is(err, jwt.ErrTokenMalformed) {
			if alg, _ := t.Header["alg"].(string); !slices.Contains(acceptedAlgorithms, alg) {
				return Principal{}, refused(ReasonAlgorithm)
			}
		}
		return Principal{}, classify(err)
	}
	p, err := v.policy.principal(claims)
	if err != nil {
		return Principal{}, err
	}
	v.cache.put(token, p, claims.ExpiresAt.Time, now)
	return p, nil
}

// keyFunc finds the token's verification key. It runs after the header's alg
// was accepted and before the signature is checked, so it refuses a token
// without kid or with a foreign issuer before the key set is consulted: such
// tokens never cause a JWKS refresh.
func (v *verifier) keyFunc(ctx context.Context) jwt.Keyfunc {
	lookup := v.keys.KeyfuncCtx(ctx)
	return func(t *jwt.Token) (any, error) {
		if kid, _ := t.Header[jwkset.HeaderKID].(string); kid == "" {
			return nil, refused(ReasonNoKeyID)
		}
		if c, ok := t.Claims.(*sessionClaims); !ok || c.Issuer != v.issuer {
			return nil, refused(ReasonIssuer)
		}
		key, err := lookup(t)
		if errors.Is(err, jwkset.ErrKeyNotFound) {
			return nil, refused(ReasonUnknownKey)
		}
		return key, err
	}
}
