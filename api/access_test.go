package api_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/icpservice/icp/api"
	"github.com/icpservice/icp/api/auth"
	"github.com/icpservice/icp/events"
)

// A user id in the configured admin list of every verifier below: an admin of
// whichever organisation the token names.
const listedAdmin = "user_boss"

// tokenShape is one way a caller proves who it is: a verifier and a function
// that mints its tokens (admin: the token states the organisation's admin
// role).
type tokenShape struct {
	name     string
	verifier auth.Verifier
	mint     func(t *testing.T, user, org string, admin bool) string
}

const clerkTestIssuer = "https://clerk.icp.test"

// clerkTestKey is generated once per test binary (RSA generation is slow).
var clerkTestKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// clerkShapes returns a real Clerk verifier over a JWKS served by httptest,
// and the two shapes of Clerk session tokens it accepts: v1 (org_id,
// org_role "org:admin") and v2 (v 2, o.id, o.rol "admin").
func clerkShapes(t *testing.T) (v1, v2 tokenShape) {
	t.Helper()
	const kid = "ins_icp_test"
	key := clerkTestKey()
	jwk, err := jwkset.NewJWKFromKey(&key.PublicKey, jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: jwkset.AlgRS256, USE: jwkset.UseSig},
	})
	if err != nil {
		t.Fatal(err)
	}
	set, err := json.Marshal(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{jwk.Marshal()}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(set)
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := auth.NewClerkVerifier(ctx, auth.ClerkConfig{
		JWKSURL:    srv.URL + "/.well-known/jwks.json",
		Issuer:     clerkTestIssuer,
		AdminUsers: []string{listedAdmin},
		Logger:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(t *testing.T, user string, org jwt.MapClaims) string {
		now := time.Now()
		claims := jwt.MapClaims{"iss": clerkTestIssuer, "sub": user, "sid": "sess_1", "azp": "https://app.icp.test",
			"iat": now.Unix(), "nbf": now.Unix() - 5, "exp": now.Add(time.Hour).Unix()}
		for k, v := range org {
			claims[k] = v
		}
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	v1 = tokenShape{name: "Clerk v1 claims", verifier: v, mint: func(t *testing.T, user, org string, admin bool) string {
		if org == "" {
			return sign(t, user, nil)
		}
		role := "org:member"
		if admin {
			role = "org:admin"
		}
		return sign(t, user, jwt.MapClaims{"org_id": org, "org_role": role, "org_slug": "acme"})
	}}
	v2 = tokenShape{name: "Clerk v2 claims", verifier: v, mint: func(t *testing.T, user, org string, admin bool) string {
		if org == "" {
			return sign(t, user, jwt.MapClaims{"v": 2})
		}
		role := "member"
		if admin {
			role = "admin"
		}
		return sign(t, user, jwt.MapClaims{"v": 2, "o": map[string]any{"id": org, "rol": role, "slg": "acme"}})
	}}
	return v1, v2
}

// devShape is development mode: tokens minted with the local key (v2 claims).
func devShape(t *testing.T) tokenShape {
	t.Helper()
	key, err := auth.LoadOrCreateDevKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return tokenShape{
		name:     "development tokens",
		verifier: auth.NewDevVerifier(key, auth.DevConfig{AdminUsers: []string{listedAdmin}}),
		mint: func(t *testing.T, user, org string, admin bool) string {
			tok, err := key.Mint(auth.DevClaims{UserID: user, OrgID: org, Admin: admin, TTL: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			return tok
		},
	}
}

// TestAccessFollowsMembershipAndTheOrganisationsAdmins runs the contract's
// access rules through HTTP with each token shape: members and admins of the
// ICP's organisation may get, patch and delete it; others in the tenant get
// 403; other tenants, and everyone for a missing ICP, 404. Admin rights come
// from the role claim or the configured admin list, hold only in the
// organisation the token names, and never add ICPs to a list.
func TestAccessFollowsMembershipAndTheOrganisationsAdmins(t *testing.T) {
	v1, v2 := clerkShapes(t)
	for _, shape := range []tokenShape{v1, v2, devShape(t)} {
		t.Run(shape.name, func(t *testing.T) { accessMatrix(t, shape) })
	}
}

func accessMatrix(t *testing.T, shape tokenShape) {
	e := newEnv(t, envOpts{project: true, verifier: shape.verifier})
	alice := shape.mint(t, "user_alice", "org_acme", false)
	newICP := func(t *testing.T) string {
		r := e.do(req{method: http.MethodPost, path: api.BasePath, token: alice, body: `{"name":"Shared","leadProviderCriteria":[],"userIds":["user_bob"]}`})
		if r.status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		return idOf(t, r.body)
	}
	const missing = api.BasePath + "/00000000-0000-4000-8000-000000000000"
	for _, c := range []struct {
		name  string
		token string
		want  int // 200: may get, patch and delete; else the refusal's status
	}{
		{"the creator", alice, 200},
		{"a member listed in userIds", shape.mint(t, "user_bob", "org_acme", false), 200},
		{"an admin by role, not listed", shape.mint(t, "user_root", "org_acme", true), 200},
		{"an admin by the configured list, not listed", shape.mint(t, listedAdmin, "org_acme", false), 200},
		{"a member of the organisation not listed", shape.mint(t, "user_carol", "org_acme", false), 403},
		{"an admin of another organisation", shape.mint(t, "user_eve", "org_evil", true), 404},
		{"a listed admin acting in another organisation", shape.mint(t, listedAdmin, "org_evil", false), 404},
		{"the creator in her personal scope", shape.mint(t, "user_alice", "", false), 404},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := newICP(t)
			path := api.BasePath + "/" + id
			get := e.do(req{method: http.MethodGet, path: path, token: c.token})
			patch := e.do(req{method: http.MethodPatch, path: path, token: c.token, body: `{"leadsPerList":7}`})
			del := e.do(req{method: http.MethodDelete, path: path, token: c.token})
			if c.want == 200 {
				if get.status != 200 || get.header.Get("ETag") != `"1"` {
					t.Fatalf("get: %d ETag %q %s", get.status, get.header.Get("ETag"), get.body)
				}
				if patch.status != 200 || patch.header.Get("ETag") != `"2"` || !strings.Contains(patch.body, `"leadsPerList":7`) {
					t.Fatalf("patch: %d ETag %q %s", patch.status, patch.header.Get("ETag"), patch.body)
				}
				if del.status != http.StatusNoContent {
					t.Fatalf("delete: %d %s", del.status, del.body)
				}
				assertError(t, e.do(req{method: http.MethodGet, path: path, token: alice}), 404, "NOT_FOUND")
				// The history stays in the event store.
				evs, err := e.store.ReadStream(context.Background(), events.StreamID(id), 0)
				if err != nil || len(evs) != 3 || evs[0].Type != events.TypeICPCreated || evs[1].Type != events.TypeICPUpdated || evs[2].Type != events.TypeICPDeleted {
					t.Fatalf("stream after delete: %d events, %v", len(evs), err)
				}
			} else {
				code := map[int]string{403: "FORBIDDEN", 404: "NOT_FOUND"}[c.want]
				assertError(t, get, c.want, code)
				assertError(t, patch, c.want, code)
				assertError(t, del, c.want, code)
				g := e.do(req{method: http.MethodGet, path: path, token: alice})
				if g.status != 200 || g.header.Get("ETag") != `"1"` {
					t.Fatalf("the refused calls changed the ICP: %d ETag %q %s", g.status, g.header.Get("ETag"), g.body)
				}
			}
			assertError(t, e.do(req{method: http.MethodGet, path: missing, token: c.token}), 404, "NOT_FOUND")
			assertError(t, e.do(req{method: http.MethodPatch, path: missing, token: c.token, body: `{"name":"x"}`}), 404, "NOT_FOUND")
			assertError(t, e.do(req{method: http.MethodDelete, path: missing, token: c.token}), 404, "NOT_FOUND")
		})
	}

	t.Run("admin rights add nothing to a list", func(t *testing.T) {
		id := newICP(t)
		mine := e.do(req{method: http.MethodGet, path: api.BasePath, token: alice})
		if mine.status != 200 || !strings.Contains(mine.body, id) {
			t.Fatalf("the creator's list lacks %s: %s", id, mine.body)
		}
		for _, who := range []struct{ name, token string }{
			{"an admin by role", shape.mint(t, "user_root", "org_acme", true)},
			{"an admin by the configured list", shape.mint(t, listedAdmin, "org_acme", false)},
		} {
			if l := e.do(req{method: http.MethodGet, path: api.BasePath, token: who.token}); l.status != 200 || l.body != "[]" {
				t.Errorf("%s lists ICPs it is not a member of: %d %s", who.name, l.status, l.body)
			}
		}
		root := shape.mint(t, "user_root", "org_acme", true)
		own := e.do(req{method: http.MethodPost, path: api.BasePath, token: root, body: `{"name":"Root's","leadProviderCriteria":[]}`})
		if own.status != http.StatusCreated {
			t.Fatalf("create: %d %s", own.status, own.body)
		}
		if l := e.do(req{method: http.MethodGet, path: api.BasePath, token: root}); l.body != "["+own.body+"]" {
			t.Errorf("an admin's list: %s, want only its own ICP", l.body)
		}
	})
}
