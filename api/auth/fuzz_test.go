package auth

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// reasons are every RefusedError reason.
var reasons = map[string]bool{
	ReasonMissing: true, ReasonTooLarge: true, ReasonMalformed: true, ReasonAlgorithm: true, ReasonNoKeyID: true,
	ReasonUnknownKey: true, ReasonSignature: true, ReasonExpired: true, ReasonNotYetValid: true,
	ReasonIssuedInFuture: true, ReasonNoExpiry: true, ReasonIssuer: true, ReasonAuthorizedParty: true,
	ReasonSubject: true, ReasonOrganisation: true,
}

// fuzzVerifier is a Clerk verifier of keyA's tokens whose JWKS endpoint
// counts its requests. The token cache is off, so every input is verified.
func fuzzVerifier(f *testing.F) (*ClerkVerifier, *jwksServer) {
	s := newJWKSServer(f, keyA())
	v := newClerk(f, s, func(c *ClerkConfig) { c.CacheSize = -1 })
	// Whatever the inputs, the JWKS is fetched once at start and at most
	// once more for unknown kids within the unknown-kid interval (an hour).
	f.Cleanup(func() {
		if n := s.requests.Load(); n > 2 {
			f.Errorf("the inputs caused %d JWKS fetches, want at most 2", n)
		}
	})
	return v, s
}

// checkOutcome holds for every input: a verified token names the user of
// its sub, anything else is a refusal (401) with a known reason, never
// ErrKeysUnavailable (the JWKS is up) and never a panic.
func checkOutcome(t *testing.T, token string, p Principal, err error, wantSub string) {
	t.Helper()
	if err == nil {
		if p.UserID == "" || p.UserID != wantSub {
			t.Fatalf("verified %q as user %q, want %q", token, p.UserID, wantSub)
		}
		return
	}
	var r *RefusedError
	if !errors.Is(err, ErrUnauthorized) || !errors.As(err, &r) || !reasons[r.Reason] {
		t.Fatalf("token %.200q: error %v, want a refusal with a known reason", token, err)
	}
	if len(token) > MaxTokenBytes && r.Reason != ReasonTooLarge {
		t.Fatalf("a token of %d bytes was refused for %q, want %q before any decoding", len(token), r.Reason, ReasonTooLarge)
	}
}

// FuzzVerifyToken feeds whole strings as tokens: malformed compact JWS,
// bad base64, headers and claims of the wrong types, forged signatures.
func FuzzVerifyToken(f *testing.F) {
	v, _ := fuzzVerifier(f)
	now := time.Now()
	valid := sign(f, keyA(), sessionClaimsAt(now))
	parts := strings.Split(valid, ".")
	b64 := base64.RawURLEncoding.EncodeToString
	for _, seed := range []string{
		"", ".", "..", "...", "a.b.c", "a.b", valid, valid + "x", valid[:len(valid)-3],
		parts[0] + "." + parts[1] + ".", parts[0] + ".." + parts[2],
		b64([]byte(`{"alg":"none","kid":"ins_key_a"}`)) + "." + parts[1] + ".",
		b64([]byte(`{"alg":"HS256","kid":"ins_key_a"}`)) + "." + parts[1] + "." + parts[2],
		b64([]byte(`{"alg":"RS256"}`)) + "." + parts[1] + "." + parts[2],
		b64([]byte(`{"alg":"RS256","kid":12}`)) + "." + parts[1] + "." + parts[2],
		b64([]byte(`{"alg":"RS256","kid":"`+strings.Repeat("k", 4000)+`"}`)) + "." + parts[1] + "." + parts[2],
		b64([]byte(`{"alg":"RS256","kid":"ins_key_unknown"}`)) + "." + parts[1] + "." + parts[2],
		b64([]byte(`{"alg":"RS256","kid":"ins_key_a","crit":["x"]}`)) + "." + parts[1] + "." + parts[2],
		b64([]byte(`[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]`)) + "." + parts[1] + "." + parts[2],
		parts[0] + "." + b64([]byte(`{"iss":1,"exp":"soon"}`)) + "." + parts[2],
		parts[0] + "." + b64([]byte(`null`)) + "." + parts[2],
		strings.Repeat("A", MaxTokenBytes+1),
		strings.Repeat(".", 1000),
		"eyJ\x00\xff.eyJ.sig",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		p, err := v.Verify(context.Background(), token)
		checkOutcome(t, token, p, err, "user_2alice")
	})
}

// FuzzVerifyHeaderAndClaims builds tokens from a fuzzed header and claims,
// signed with the instance's key when signed is set: the claims' checks
// (sub, organisation, azp, times) then run on whatever the claims hold.
func FuzzVerifyHeaderAndClaims(f *testing.F) {
	v, _ := fuzzVerifier(f)
	now := time.Now()
	good, _ := json.Marshal(sessionClaimsAt(now))
	for _, s := range []struct {
		header, claims string
		signed         bool
	}{
		{`{"alg":"RS256","kid":"ins_key_a","typ":"JWT"}`, string(good), true},
		{`{"alg":"RS256","kid":"ins_key_a"}`, string(good), false},
		{`{"alg":"RS256","kid":"ins_key_b"}`, string(good), true},
		{`{"alg":"RS256","kid":""}`, string(good), true},
		{`{"alg":"RS256","kid":null}`, string(good), true},
		{`{"alg":"RS256","kid":{"a":1}}`, string(good), true},
		{`{"alg":"RS256","kid":"../../etc/passwd"}`, string(good), true},
		{`{"alg":"PS256","kid":"ins_key_a"}`, string(good), true},
		{`{"alg":"none","kid":"ins_key_a"}`, string(good), false},
		{`{"alg":"RS256","kid":"ins_key_a"}`, `{"iss":"` + testIssuer + `","sub":"user_x","exp":1}`, true},
		{`{"alg":"RS256","kid":"ins_key_a"}`, `{"iss":"` + testIssuer + `","sub":"","exp":9999999999,"azp":"` + testOrigin + `"}`, true},
		{`{"alg":"RS256","kid":"ins_key_a"}`, `{"iss":"` + testIssuer + `","sub":"user_x","exp":9999999999,"azp":"` + testOrigin + `","o":{"id":"org_1","rol":"admin"}}`, true},
		{`{"alg":"RS256","kid":"ins_key_a"}`, `{"iss":"` + testIssuer + `","sub":"user_x","exp":9999999999,"azp":"` + testOrigin + `","org_id":7,"org_role":["a"]}`, true},
		{`{"alg":"RS256","kid":"ins_key_a"}`, `{"iss":"` + testIssuer + `","sub":"user x\n","exp":1e300,"nbf":-1e300,"iat":"x"}`, true},
		{`{"alg":"RS256","kid":"ins_key_a"}`, `{}`, true},
		{`{"alg":"RS256","kid":"ins_key_a"}`, `not json`, true},
	} {
		f.Add(s.header, s.claims, s.signed)
	}
	key := keyA().key
	f.Fuzz(func(t *testing.T, header, claims string, signed bool) {
		b64 := base64.RawURLEncoding.EncodeToString
		input := b64([]byte(header)) + "." + b64([]byte(claims))
		sig := "c2ln"
		if signed {
			sum := sha256.Sum256([]byte(input))
			raw, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
			if err != nil {
				t.Fatal(err)
			}
			sig = b64(raw)
		}
		token := input + "." + sig
		p, err := v.Verify(context.Background(), token)
		// Only a token signed with the instance's key can verify, and
		// then as the user its claims name.
		var c struct {
			Sub string `json:"sub"`
		}
		_ = json.Unmarshal([]byte(claims), &c)
		if err == nil && !signed {
			t.Fatalf("an unsigned token verified: header %q claims %q", header, claims)
		}
		checkOutcome(t, token, p, err, c.Sub)
	})
}
