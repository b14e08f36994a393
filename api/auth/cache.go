package auth

import (
	"crypto/sha256"
	"time"
	"unsafe"

	lru "github.com/hashicorp/golang-lru/v2"
)

// tokenCache remembers the Principal of recently verified tokens so a client
// that sends the same session token on every request pays for one RSA
// verification, not one per request. It is bounded (least recently used
// entries go first) and keyed by the token's SHA-256, so it holds no token.
// An entry is served only before min(the token's exp, verification + ttl):
// a cached answer is never more lenient than verifying again, except that a
// key removed from the JWKS stops a token only after at most ttl. Refusals are
// never cached.
type tokenCache struct {
	entries *lru.Cache[[sha256.Size]byte, cachedPrincipal]
	ttl     time.Duration
}

type cachedPrincipal struct {
	principal Principal
	until     time.Time
}

// newTokenCache returns nil (no caching) when size or ttl is not positive.
func newTokenCache(size int, ttl time.Duration) *tokenCache {
	if size <= 0 || ttl <= 0 {
		return nil
	}
	entries, err := lru.New[[sha256.Size]byte, cachedPrincipal](size)
	if err != nil { // only for a size <= 0, excluded above
		panic(err)
	}
	return &tokenCache{entries: entries, ttl: ttl}
}

func (c *tokenCache) get(token string, now time.Time) (Principal, bool) {
	if c == nil {
		return Principal{}, false
	}
	key := tokenKey(token)
	e, ok := c.entries.Get(key)
	if !ok {
		return Principal{}, false
	}
	if !now.Before(e.until) {
		c.entries.Remove(key)
		return Principal{}, false
	}
	return e.principal, true
}

func (c *tokenCache) put(token string, p Principal, exp, now time.Time) {
	if c == nil {
		return
	}
	until := now.Add(c.ttl)
	if exp.Before(until) {
		until = exp
	}
	if !now.Before(until) {
		return
	}
	c.entries.Add(tokenKey(token), cachedPrincipal{principal: p, until: until})
}

// tokenKey is the token's SHA-256, hashed from the string's own bytes:
// converting a session token (most are longer than a kilobyte's half) to a
// []byte first copied it on every request. Sum256 only reads its input.
func tokenKey(token string) [sha256.Size]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
}
