package auth

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icpservice/icp/platform/datadir"
)

func TestDevKeyCreatedOncePrivately(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // not there yet
	k1, err := LoadOrCreateDevKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(datadir.DevKey(dir))
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Fatalf("key file mode %#o, want 0600", perm)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("data dir holds %d entries, want only the key (no temporary file left)", len(entries))
	}

	// A later start (icpd after icpctl token) uses the same key.
	k2, err := LoadOrCreateDevKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := k1.Mint(DevClaims{UserID: "user_alice", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if p := mustVerify(t, NewDevVerifier(k2, DevConfig{}), tok); p.UserID != "user_alice" {
		t.Fatalf("principal %+v", p)
	}
}

func TestDevKeyConcurrentFirstUseAgrees(t *testing.T) {
	dir := t.TempDir()
	const n = 3
	keys := make([]*DevKey, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keys[i], errs[i] = LoadOrCreateDevKey(dir) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if keys[i].kid != keys[0].kid {
			t.Fatalf("concurrent first uses ended with different keys (%s, %s)", keys[i].kid, keys[0].kid)
		}
	}
}

func TestDevKeyRefusesUnsafeOrBrokenFiles(t *testing.T) {
	t.Run("readable by others", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := LoadOrCreateDevKey(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(datadir.DevKey(dir), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadOrCreateDevKey(dir)
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("error %v, want a refusal that says to chmod 600", err)
		}
	})
	t.Run("not a key", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(datadir.DevKey(dir), []byte("hello"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreateDevKey(dir); err == nil || !strings.Contains(err.Error(), "PRIVATE KEY") {
			t.Fatalf("error %v, want a refusal of the file", err)
		}
	})
	t.Run("empty data dir", func(t *testing.T) {
		if _, err := LoadOrCreateDevKey(""); err == nil {
			t.Fatal("an empty data dir was accepted")
		}
	})
}

func TestDevMintValidates(t *testing.T) {
	k, err := LoadOrCreateDevKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		claims DevClaims
		want   string
	}{
		{"no user", DevClaims{TTL: time.Hour}, "user is required"},
		{"user with space", DevClaims{UserID: "a b", TTL: time.Hour}, "user"},
		{"org posing as personal", DevClaims{UserID: "u", OrgID: "personal:u", TTL: time.Hour}, "org"},
		{"admin without org", DevClaims{UserID: "u", Admin: true, TTL: time.Hour}, "admin needs an org"},
		{"zero ttl", DevClaims{UserID: "u"}, "ttl"},
		{"negative ttl", DevClaims{UserID: "u", TTL: -time.Hour}, "ttl"},
		{"ttl too long", DevClaims{UserID: "u", TTL: MaxDevTokenTTL + time.Second}, "ttl"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := k.Mint(tc.claims)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Mint = %q, %v; want an error mentioning %q", tok, err, tc.want)
			}
		})
	}
}

func TestDevTokensVerify(t *testing.T) {
	k, err := LoadOrCreateDevKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	v := NewDevVerifier(k, DevConfig{AdminUsers: []string{"user_root"}})
	tests := []struct {
		name   string
		claims DevClaims
		want   Principal
		tenant string
	}{
		{"personal", DevClaims{UserID: "user_alice", TTL: time.Hour},
			Principal{UserID: "user_alice"}, "personal:user_alice"},
		{"organisation member", DevClaims{UserID: "user_alice", OrgID: "org_acme", TTL: time.Hour},
			Principal{UserID: "user_alice", OrgID: "org_acme", OrgRole: "member"}, "org_acme"},
		{"organisation admin", DevClaims{UserID: "user_alice", OrgID: "org_acme", Admin: true, TTL: time.Hour},
			Principal{UserID: "user_alice", OrgID: "org_acme", OrgRole: "admin", Admin: true}, "org_acme"},
		{"listed admin user", DevClaims{UserID: "user_root", TTL: time.Hour},
			Principal{UserID: "user_root", Admin: true}, "personal:user_root"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := k.Mint(tc.claims)
			if err != nil {
				t.Fatal(err)
			}
			p := mustVerify(t, v, tok)
			if p != tc.want || p.Tenant() != tc.tenant {
				t.Fatalf("principal %+v (tenant %q), want %+v (%q)", p, p.Tenant(), tc.want, tc.tenant)
			}
		})
	}
}

func TestDevVerifierRefuses(t *testing.T) {
	k, err := LoadOrCreateDevKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	other, err := LoadOrCreateDevKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	v := NewDevVerifier(k, DevConfig{})
	ctx := context.Background()

	expired, err := k.sign(devSessionClaims(DevClaims{UserID: "u", TTL: time.Minute}, time.Now().Add(-time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(ctx, expired)
	wantRefused(t, err, ReasonExpired)

	fromOtherDir, err := other.Mint(DevClaims{UserID: "u", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(ctx, fromOtherDir)
	wantRefused(t, err, ReasonUnknownKey)

	// A Clerk token is not a development token, even signed by the dev key.
	clerkShaped := sessionClaimsAt(time.Now())
	_, err = v.Verify(ctx, sign(t, signingKey{kid: k.kid, key: k.private}, clerkShaped))
	wantRefused(t, err, ReasonIssuer)

	_, err = v.Verify(ctx, unsignedToken(t, "none", clerkShaped))
	wantRefused(t, err, ReasonAlgorithm)
}

// Development tokens mean nothing to a Clerk verifier.
func TestClerkRefusesDevTokens(t *testing.T) {
	k, err := LoadOrCreateDevKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := k.Mint(DevClaims{UserID: "user_alice", OrgID: "org_1", Admin: true, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	srv := newJWKSServer(t, keyA())
	_, err = newClerk(t, srv, nil).Verify(context.Background(), tok)
	wantRefused(t, err, ReasonIssuer)
}
