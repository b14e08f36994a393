package auth

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestClerkRefusesInvalidTokens(t *testing.T) {
	srv := newJWKSServer(t, keyA())
	v := newClerk(t, srv, nil)
	now := time.Now()
	with := func(change func(jwt.MapClaims)) string {
		c := sessionClaimsAt(now)
		change(c)
		return sign(t, keyA(), c)
	}
	valid := sign(t, keyA(), sessionClaimsAt(now))
	parts := strings.Split(valid, ".")

	tests := []struct {
		name, token, reason string
	}{
		{"missing", "", ReasonMissing},
		{"not a JWT", "not-a-token", ReasonMalformed},
		{"garbage segments", "a.b.c", ReasonMalformed},
		{"too large", strings.Repeat("a", MaxTokenBytes+1), ReasonTooLarge},
		{"expired", with(func(c jwt.MapClaims) {
			c["iat"], c["nbf"], c["exp"] = now.Add(-time.Hour).Unix(), now.Add(-time.Hour).Unix(), now.Add(-time.Minute).Unix()
		}), ReasonExpired},
		{"not yet valid", with(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Minute).Unix() }), ReasonNotYetValid},
		{"issued in the future", with(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Minute).Unix() }), ReasonIssuedInFuture},
		{"no expiry", with(func(c jwt.MapClaims) { delete(c, "exp") }), ReasonNoExpiry},
		{"wrong issuer", with(func(c jwt.MapClaims) { c["iss"] = "https://clerk.other.test" }), ReasonIssuer},
		{"no issuer", with(func(c jwt.MapClaims) { delete(c, "iss") }), ReasonIssuer},
		{"wrong authorized party", with(func(c jwt.MapClaims) { c["azp"] = "https://evil.test" }), ReasonAuthorizedParty},
		{"no authorized party", with(func(c jwt.MapClaims) { delete(c, "azp") }), ReasonAuthorizedParty},
		{"no subject", with(func(c jwt.MapClaims) { delete(c, "sub") }), ReasonSubject},
		{"subject with spaces", with(func(c jwt.MapClaims) { c["sub"] = "user 1" }), ReasonSubject},
		{"subject too long", with(func(c jwt.MapClaims) { c["sub"] = strings.Repeat("u", MaxIDLength+1) }), ReasonSubject},
		{"claim of the wrong type", with(func(c jwt.MapClaims) { c["exp"] = "tomorrow" }), ReasonMalformed},
		{"organisation posing as a personal tenant", with(func(c jwt.MapClaims) { c["org_id"] = "personal:user_2bob" }), ReasonOrganisation},
		{"v2 role without organisation id", with(func(c jwt.MapClaims) { c["v"], c["o"] = 2, map[string]any{"rol": "admin"} }), ReasonOrganisation},
		{"no kid", sign(t, signingKey{key: keyA().key}, sessionClaimsAt(now)), ReasonNoKeyID},
		{"unknown kid", sign(t, signingKey{kid: "ins_forged", key: outsiderKey()}, sessionClaimsAt(now)), ReasonUnknownKey},
		{"known kid, other key", sign(t, signingKey{kid: keyA().kid, key: outsiderKey()}, sessionClaimsAt(now)), ReasonSignature},
		{"tampered claims", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(
			`{"iss":"`+testIssuer+`","sub":"user_2mallory","azp":"`+testOrigin+`","exp":`+jsonNumber(now.Add(time.Hour).Unix())+`}`)) + "." + parts[2], ReasonSignature},
		{"alg none", unsignedToken(t, "none", sessionClaimsAt(now)), ReasonAlgorithm},
		{"HMAC with the public key as secret", hmacWithPublicKey(t, sessionClaimsAt(now)), ReasonAlgorithm},
		{"RS512", func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodRS512, sessionClaimsAt(now))
			tok.Header["kid"] = keyA().kid
			s, err := tok.SignedString(keyA().key)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}(), ReasonAlgorithm},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), tc.token)
			wantRefused(t, err, tc.reason)
		})
	}
	if _, err := v.Verify(context.Background(), valid); err != nil {
		t.Fatalf("the untampered token: %v", err)
	}
}

func TestClerkLeeway(t *testing.T) {
	srv := newJWKSServer(t, keyA())
	v := newClerk(t, srv, func(c *ClerkConfig) { c.Leeway = 30 * time.Second })
	now := time.Now()
	c := sessionClaimsAt(now)
	c["exp"] = now.Add(-10 * time.Second).Unix() // expired 10s ago, within 30s
	c["nbf"] = now.Add(10 * time.Second).Unix()  // valid in 10s, within 30s
	c["iat"] = now.Add(10 * time.Second).Unix()
	mustVerify(t, v, sign(t, keyA(), c))

	c["exp"] = now.Add(-time.Minute).Unix()
	_, err := v.Verify(context.Background(), sign(t, keyA(), c))
	wantRefused(t, err, ReasonExpired)
}

func TestClerkPrincipal(t *testing.T) {
	srv := newJWKSServer(t, keyA())
	v := newClerk(t, srv, func(c *ClerkConfig) { c.AdminUsers = []string{"user_2root"} })
	now := time.Now()
	tests := []struct {
		name   string
		claims map[string]any
		want   Principal
		tenant string
	}{
		{"personal", nil, Principal{UserID: "user_2alice"}, "personal:user_2alice"},
		{"v1 organisation admin", map[string]any{"org_id": "org_1", "org_role": "org:admin", "org_slug": "acme"},
			Principal{UserID: "user_2alice", OrgID: "org_1", OrgRole: "org:admin", Admin: true}, "org_1"},
		{"v1 organisation member", map[string]any{"org_id": "org_1", "org_role": "org:member"},
			Principal{UserID: "user_2alice", OrgID: "org_1", OrgRole: "org:member"}, "org_1"},
		{"v2 organisation admin", map[string]any{"v": 2, "o": map[string]any{"id": "org_2", "rol": "admin", "slg": "acme"}, "fva": []int{0, -1}},
			Principal{UserID: "user_2alice", OrgID: "org_2", OrgRole: "admin", Admin: true}, "org_2"},
		{"v2 organisation member", map[string]any{"v": 2, "o": map[string]any{"id": "org_2", "rol": "member"}},
			Principal{UserID: "user_2alice", OrgID: "org_2", OrgRole: "member"}, "org_2"},
		{"v2 without organisation", map[string]any{"v": 2},
			Principal{UserID: "user_2alice"}, "personal:user_2alice"},
		{"admin role without organisation is no admin", map[string]any{"org_role": "org:admin"},
			Principal{UserID: "user_2alice"}, "personal:user_2alice"},
		{"listed admin user, personal", map[string]any{"sub": "user_2root"},
			Principal{UserID: "user_2root", Admin: true}, "personal:user_2root"},
		{"listed admin user, organisation member", map[string]any{"sub": "user_2root", "org_id": "org_1", "org_role": "org:member"},
			Principal{UserID: "user_2root", OrgID: "org_1", OrgRole: "org:member", Admin: true}, "org_1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := sessionClaimsAt(now)
			for k, val := range tc.claims {
				c[k] = val
			}
			p := mustVerify(t, v, sign(t, keyA(), c))
			if p != tc.want {
				t.Fatalf("principal %+v, want %+v", p, tc.want)
			}
			if p.Tenant() != tc.tenant {
				t.Fatalf("tenant %q, want %q", p.Tenant(), tc.tenant)
			}
		})
	}
}

func TestClerkConfiguredAdminRoles(t *testing.T) {
	srv := newJWKSServer(t, keyA())
	v := newClerk(t, srv, func(c *ClerkConfig) { c.AdminRoles = []string{"org:owner"} })
	c := sessionClaimsAt(time.Now())
	c["org_id"], c["org_role"] = "org_1", "org:admin"
	if p := mustVerify(t, v, sign(t, keyA(), c)); p.Admin {
		t.Fatalf("org:admin is an admin though only org:owner is configured: %+v", p)
	}
	c["org_role"] = "org:owner"
	if p := mustVerify(t, v, sign(t, keyA(), c)); !p.Admin {
		t.Fatalf("org:owner is no admin: %+v", p)
	}
}

func TestClerkAuthorizedPartyIgnoresTrailingSlash(t *testing.T) {
	srv := newJWKSServer(t, keyA())
	v := newClerk(t, srv, func(c *ClerkConfig) { c.AuthorizedParties = []string{"https://a.test/", "https://b.test"} })
	c := sessionClaimsAt(time.Now())
	for _, azp := range []string{"https://a.test", "https://b.test/"} {
		c["azp"] = azp
		mustVerify(t, v, sign(t, keyA(), c))
	}
	c["azp"] = "/"
	_, err := v.Verify(context.Background(), sign(t, keyA(), c))
	wantRefused(t, err, ReasonAuthorizedParty)
}

func TestClerkWithoutAuthorizedPartiesAcceptsAnyAzp(t *testing.T) {
	srv := newJWKSServer(t, keyA())
	v := newClerk(t, srv, func(c *ClerkConfig) { c.AuthorizedParties = nil })
	c := sessionClaimsAt(time.Now())
	c["azp"] = "https://anywhere.test"
	mustVerify(t, v, sign(t, keyA(), c))
	delete(c, "azp")
	mustVerify(t, v, sign(t, keyA(), c))
}

func TestClerkConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  ClerkConfig
		want string
	}{
		{"no URL", ClerkConfig{Issuer: testIssuer}, "JWKS URL"},
		{"plain http to a remote host", ClerkConfig{JWKSURL: "http://clerk.example.test/.well-known/jwks.json", Issuer: testIssuer}, "https"},
		{"no issuer", ClerkConfig{JWKSURL: "https://clerk.example.test/.well-known/jwks.json"}, "issuer is required"},
		{"negative leeway", ClerkConfig{JWKSURL: "https://clerk.example.test/jwks", Issuer: testIssuer, Leeway: -time.Second}, "leeway"},
		{"huge leeway", ClerkConfig{JWKSURL: "https://clerk.example.test/jwks", Issuer: testIssuer, Leeway: time.Hour}, "leeway"},
		{"empty admin role", ClerkConfig{JWKSURL: "https://clerk.example.test/jwks", Issuer: testIssuer, AdminRoles: []string{""}}, "empty role"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewClerkVerifier(t.Context(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// The tokens of an unknown kid cost at most one JWKS fetch per interval, and
// are refused without waiting for the next one.
func TestClerkUnknownKIDFloodDoesNotHammerJWKS(t *testing.T) {
	srv := newJWKSServer(t, keyA())
	v := newClerk(t, srv, nil) // one unknown-kid refresh per hour
	if got := srv.requests.Load(); got != 1 {
		t.Fatalf("%d JWKS requests at start, want 1", got)
	}
	now := time.Now()
	const flood = 1000
	errs := make(chan error, flood)
	start := time.Now()
	for i := range flood {
		go func() {
			// The signature is never checked for an unknown kid: forging
			// costs the attacker nothing, so neither does it here.
			tok := forgedToken(t, "ins_forged_"+jsonNumber(int64(i)), sessionClaimsAt(now))
			_, err := v.Verify(context.Background(), tok)
			errs <- err
		}()
	}
	for range flood {
		wantRefused(t, <-errs, ReasonUnknownKey)
	}
	if got := srv.requests.Load(); got != 2 {
		t.Fatalf("%d JWKS requests after %d forged kids, want 2 (start + one refresh)", got, flood)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("refusing the flood took %s: forged kids are queueing for the rate limiter", d)
	}
	// Known keys are unaffected.
	mustVerify(t, v, sign(t, keyA(), sessionClaimsAt(now)))
	if got := srv.requests.Load(); got != 2 {
		t.Fatalf("%d JWKS requests, want still 2", got)
	}
}

// A key rotated into the JWKS is accepted on the first token that uses it,
// including by every request racing in with it.
func TestClerkRotatedKeyAcceptedOnFirstUse(t *testing.T) {
	srv := newJWKSServer(t, keyA())
	v := newClerk(t, srv, nil)
	now := time.Now()
	srv.setKeys(t, keyA(), keyB())

	const racers = 40
	errs := make(chan error, racers)
	for i := range racers {
		go func() {
			c := sessionClaimsAt(now)
			c["sid"] = "sess_" + jsonNumber(int64(i)) // distinct tokens: no cache hits
			_, err := v.Verify(context.Background(), sign(t, keyB(), c))
			errs <- err
		}()
	}
	for range racers {
		if err := <-errs; err != nil {
			t.Fatalf("a token of the rotated key: %v", err)
		}
	}
	if got := srv.requests.Load(); got != 2 {
		t.Fatalf("%d JWKS requests, want 2 (start + one refresh shared by all)", got)
	}
	mustVerify(t, v, sign(t, keyA(), sessionClaimsAt(now)))
}

// A JWKS that cannot be fetched with no key cached is not the caller's fault:
// Verify answers ErrKeysUnavailable, not a refusal, and recovers on its own.
func TestClerkJWKSUnavailable(t *testing.T) {
	srv := newJWKSServer(t, keyA())
	srv.failing.Store(true)
	v := newClerk(t, srv, func(c *ClerkConfig) { c.JWKSUnknownKIDInterval = 20 * time.Millisecond })
	tok := sign(t, keyA(), sessionClaimsAt(time.Now()))

	_, err := v.Verify(context.Background(), tok)
	if !errors.Is(err, ErrKeysUnavailable) || errors.Is(err, ErrUnauthorized) {
		t.Fatalf("error %v: want ErrKeysUnavailable, not a refusal", err)
	}

	srv.failing.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err = v.Verify(context.Background(), tok); err == nil {
			break
		}
		if !errors.Is(err, ErrKeysUnavailable) {
			t.Fatalf("while the JWKS recovers: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %v 5s after the JWKS recovered", err)
		}
		<-tick.C
	}

	// Down again: cached keys keep working; an unknown kid cannot be told
	// forged from rotated, so it is unavailable rather than refused.
	srv.failing.Store(true)
	mustVerify(t, v, sign(t, keyA(), sessionClaimsAt(time.Now())))
	deadline = time.Now().Add(5 * time.Second)
	for {
		_, err = v.Verify(context.Background(), sign(t, keyB(), sessionClaimsAt(time.Now())))
		if errors.Is(err, ErrKeysUnavailable) && !errors.Is(err, ErrUnauthorized) {
			break
		}
		wantRefused(t, err, ReasonUnknownKey) // until a refresh has seen the failure
		if time.Now().After(deadline) {
			t.Fatal("an unknown kid is still refused 5s after the JWKS went down")
		}
		<-tick.C
	}
}

// A token with a foreign issuer or no kid is refused before the key set is
// consulted, so it cannot be used to cause JWKS fetches.
func TestClerkForeignTokensCauseNoFetch(t *testing.T) {
	srv := newJWKSServer(t, keyA())
	v := newClerk(t, srv, nil)
	c := sessionClaimsAt(time.Now())
	c["iss"] = "https://clerk.other.test"
	_, err := v.Verify(context.Background(), sign(t, signingKey{kid: "ins_other", key: outsiderKey()}, c))
	wantRefused(t, err, ReasonIssuer)
	if got := srv.requests.Load(); got != 1 {
		t.Fatalf("%d JWKS requests, want 1", got)
	}
}

// A verified token is remembered, but never past its exp.
func TestClerkCacheNeverOutlivesExpiry(t *testing.T) {
	srv := newJWKSServer(t, keyA())
	clock := time.Now()
	v := newClerk(t, srv, func(c *ClerkConfig) {
		c.Leeway = time.Second
		c.CacheTTL = time.Hour
		c.now = func() time.Time { return clock }
	})
	tok := sign(t, keyA(), sessionClaimsAt(clock)) // exp: clock + 1 minute
	mustVerify(t, v, tok)
	clock = clock.Add(59 * time.Second)
	mustVerify(t, v, tok)
	clock = clock.Add(3 * time.Second)
	_, err := v.Verify(context.Background(), tok)
	wantRefused(t, err, ReasonExpired)
}

func jsonNumber(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// unsignedToken builds a token with the given alg and an empty signature.
func unsignedToken(t *testing.T, alg string, claims jwt.MapClaims) string {
	t.Helper()
	return rawToken(t, map[string]string{"alg": alg, "typ": "JWT", "kid": keyA().kid}, claims, "")
}

// forgedToken claims RS256 with kid and carries a made-up signature.
func forgedToken(t *testing.T, kid string, claims jwt.MapClaims) string {
	t.Helper()
	sig := base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("x", 256)))
	return rawToken(t, map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid}, claims, sig)
}

func rawToken(t *testing.T, h map[string]string, claims jwt.MapClaims, sig string) string {
	t.Helper()
	header, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + sig
}

// hmacWithPublicKey is the classic key-confusion attack: HS256 keyed with
// the bytes of the RSA public key the verifier trusts.
func hmacWithPublicKey(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&keyA().key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	tok.Header["kid"] = keyA().kid
	s, err := tok.SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
