package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

const (
	testIssuer = "https://clerk.example.test"
	testOrigin = "https://app.example.test"
)

// testKeys are generated once per test binary: RSA key generation is the
// slowest step of these tests.
var testKeys = sync.OnceValue(func() []*rsa.PrivateKey {
	keys := make([]*rsa.PrivateKey, 3)
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		keys[i] = k
	}
	return keys
})

// signingKey is a test key with the kid the JWKS announces it under.
type signingKey struct {
	kid string
	key *rsa.PrivateKey
}

func keyA() signingKey { return signingKey{kid: "ins_key_a", key: testKeys()[0]} }
func keyB() signingKey { return signingKey{kid: "ins_key_b", key: testKeys()[1]} }

// outsiderKey is in no JWKS.
func outsiderKey() *rsa.PrivateKey { return testKeys()[2] }

// jwksServer serves a JWKS whose keys the test can change, counts the
// requests it receives, and can be made to fail.
type jwksServer struct {
	*httptest.Server
	requests atomic.Int64
	failing  atomic.Bool
	mu       sync.Mutex
	body     []byte
}

func newJWKSServer(t testing.TB, keys ...signingKey) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.setKeys(t, keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if s.failing.Load() {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		s.mu.Lock()
		body := s.body
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

// setKeys replaces the published key set, as Clerk does on a rotation.
func (s *jwksServer) setKeys(t testing.TB, keys ...signingKey) {
	t.Helper()
	set := jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{}}
	for _, k := range keys {
		jwk, err := jwkset.NewJWKFromKey(&k.key.PublicKey, jwkset.JWKOptions{
			Metadata: jwkset.JWKMetadataOptions{KID: k.kid, ALG: jwkset.AlgRS256, USE: jwkset.UseSig},
		})
		if err != nil {
			t.Fatal(err)
		}
		set.Keys = append(set.Keys, jwk.Marshal())
	}
	body, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.body = body
	s.mu.Unlock()
}

func (s *jwksServer) url() string { return s.URL + "/.well-known/jwks.json" }

// newClerk returns a verifier of s's tokens with testIssuer and testOrigin,
// and lets cfg adjust the rest.
func newClerk(t testing.TB, s *jwksServer, adjust func(*ClerkConfig)) *ClerkVerifier {
	t.Helper()
	cfg := ClerkConfig{
		JWKSURL:                s.url(),
		Issuer:                 testIssuer,
		AuthorizedParties:      []string{testOrigin},
		JWKSUnknownKIDInterval: time.Hour,
		Logger:                 discardLogger(),
	}
	if adjust != nil {
		adjust(&cfg)
	}
	v, err := NewClerkVerifier(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// sessionClaimsAt are the claims of a valid Clerk session token issued at
// now, with no organisation.
func sessionClaimsAt(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": testIssuer,
		"sub": "user_2alice",
		"azp": testOrigin,
		"sid": "sess_1",
		"iat": now.Unix(),
		"nbf": now.Unix() - 10,
		"exp": now.Add(time.Minute).Unix(),
	}
}

func sign(t testing.TB, k signingKey, claims jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	if k.kid != "" {
		tok.Header["kid"] = k.kid
	}
	s, err := tok.SignedString(k.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// wantRefused fails unless err is a refusal with the reason.
func wantRefused(t testing.TB, err error, reason string) {
	t.Helper()
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("error %v: want a refusal (%q)", err, reason)
	}
	var r *RefusedError
	if !errors.As(err, &r) || r.Reason != reason {
		t.Fatalf("error %v: want reason %q", err, reason)
	}
}

func mustVerify(t testing.TB, v Verifier, token string) Principal {
	t.Helper()
	p, err := v.Verify(context.Background(), token)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return p
}
