package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/icpservice/icp/platform/datadir"
	"github.com/icpservice/icp/platform/private"
)

// Development mode constants.
const (
	// DevIssuer is the iss of development tokens.
	DevIssuer = "icp-dev"
	// MaxDevTokenTTL is the longest lifetime Mint accepts.
	MaxDevTokenTTL = 7 * 24 * time.Hour
	// devKeyBits is the size of a new development key.
	devKeyBits = 2048
	// maxDevKeyFileBytes bounds what LoadOrCreateDevKey reads.
	maxDevKeyFileBytes = 64 << 10
)

// DevKey is the development-mode signing key: it mints tokens shaped like
// Clerk v2 session tokens, and NewDevVerifier accepts them.
type DevKey struct {
	private *rsa.PrivateKey
	kid     string
	public  jwkset.JWK
	path    string
}

// LoadOrCreateDevKey returns the key in datadir.DevKey(dataDir), creating the
// directory (0700) and the key on first use. Creation is atomic: the key is
// written to a temporary file and linked into place only if no key exists,
// so concurrent first uses (icpd and icpctl token) agree on one key and no
// reader ever sees a partial file. An existing key file that is readable or
// writable by group or others is refused, as is one that is not an RSA key
// of at least 2048 bits.
func LoadOrCreateDevKey(dataDir string) (*DevKey, error) {
	if dataDir == "" {
		return nil, errors.New("auth: dev key: data directory is empty")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("auth: dev key: %w", err)
	}
	path := datadir.DevKey(dataDir)
	k, err := readDevKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if err := createDevKey(path); err != nil {
		return nil, err
	}
	return readDevKey(path)
}

// Path is the file the key is kept in.
func (k *DevKey) Path() string { return k.path }

func createDevKey(path string) error {
	key, err := rsa.GenerateKey(rand.Reader, devKeyBits)
	if err != nil {
		return fmt.Errorf("auth: dev key: generate: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("auth: dev key: encode: %w", err)
	}
	// The first creator wins and later ones read its key.
	if err := private.WriteNew(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		return fmt.Errorf("auth: dev key: %w", err)
	}
	return nil
}

func readDevKey(path string) (*DevKey, error) {
	data, err := private.ReadFile(path, maxDevKeyFileBytes)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("auth: dev key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("auth: dev key %s: not a PEM \"PRIVATE KEY\" block", path)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("auth: dev key %s: %w", path, err)
	}
	key, ok := parsed.(*rsa.PrivateKey)
	if !ok || key.N.BitLen() < devKeyBits {
		return nil, fmt.Errorf("auth: dev key %s: want an RSA key of at least %d bits", path, devKeyBits)
	}
	return newDevKey(key, path)
}

func newDevKey(key *rsa.PrivateKey, path string) (*DevKey, error) {
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("auth: dev key: %w", err)
	}
	sum := sha256.Sum256(der)
	kid := "dev_" + base64.RawURLEncoding.EncodeToString(sum[:12])
	public, err := jwkset.NewJWKFromKey(&key.PublicKey, jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: jwkset.AlgRS256, USE: jwkset.UseSig},
	})
	if err != nil {
		return nil, fmt.Errorf("auth: dev key: %w", err)
	}
	return &DevKey{private: key, kid: kid, public: public, path: path}, nil
}

// DevClaims say who a development token is for.
type DevClaims struct {
	// UserID is the sub: 1 to MaxIDLength printable ASCII characters
	// without spaces. Required.
	UserID string
	// OrgID is the active organisation (optional; the same rules as UserID,
	// and it must not start with "personal:").
	OrgID string
	// Admin makes the caller an admin of OrgID (role "admin"); it needs OrgID.
	Admin bool
	// TTL is the token's lifetime: more than zero, at most MaxDevTokenTTL.
	TTL time.Duration
}

// Validate reports the first invalid field, named as icpctl token's flags
// are (user, org, admin, ttl).
func (c DevClaims) Validate() error {
	switch {
	case c.UserID == "":
		return errors.New("user is required")
	case !validID(c.UserID):
		return fmt.Errorf("user %q: want 1 to %d printable characters without spaces", c.UserID, MaxIDLength)
	case c.OrgID != "" && !validOrgID(c.OrgID):
		return fmt.Errorf("org %q: want 1 to %d printable characters without spaces, not starting with %q", c.OrgID, MaxIDLength, personalPrefix)
	case c.Admin && c.OrgID == "":
		return errors.New("admin needs an org: a caller is an admin of an organisation")
	case c.TTL <= 0 || c.TTL > MaxDevTokenTTL:
		return fmt.Errorf("ttl %s: want more than 0 and at most %gh", c.TTL, MaxDevTokenTTL.Hours())
	}
	return nil
}

// Mint signs a token shaped like a Clerk v2 session token: iss DevIssuer,
// sub, iat and nbf now, exp now + TTL, v 2, and when OrgID is set the o
// object with id and rol ("admin" when Admin, else "member"). It refuses
// claims that fail Validate.
func (k *DevKey) Mint(c DevClaims) (string, error) {
	if err := c.Validate(); err != nil {
		return "", fmt.Errorf("auth: dev token: %w", err)
	}
	return k.sign(devSessionClaims(c, time.Now()))
}

func devSessionClaims(c DevClaims, now time.Time) *sessionClaims {
	claims := &sessionClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    DevIssuer,
			Subject:   c.UserID,
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(c.TTL)),
		},
		Version: 2,
	}
	if c.OrgID != "" {
		role := "member"
		if c.Admin {
			role = "admin"
		}
		claims.Org = &orgClaim{ID: c.OrgID, Role: role}
	}
	return claims
}

func (k *DevKey) sign(claims jwt.Claims) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	t.Header[jwkset.HeaderKID] = k.kid
	s, err := t.SignedString(k.private)
	if err != nil {
		return "", fmt.Errorf("auth: dev token: %w", err)
	}
	return s, nil
}
