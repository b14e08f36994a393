package auth

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkVerify measures Verify on a Clerk token: "cached" is a client
// sending the same session token again (the common case), "uncached" a full
// RS256 verification every time, "many-clients" 1,024 clients each reusing
// its own token.
func BenchmarkVerify(b *testing.B) {
	srv := newJWKSServer(b, keyA())
	now := time.Now()
	claims := sessionClaimsAt(now)
	claims["exp"] = now.Add(time.Hour).Unix()
	claims["v"], claims["o"] = 2, map[string]any{"id": "org_1", "rol": "admin"}
	token := sign(b, keyA(), claims)
	ctx := context.Background()

	for _, tc := range []struct {
		name      string
		cacheSize int
	}{{"cached", 0}, {"uncached", -1}} {
		v := newClerk(b, srv, func(c *ClerkConfig) { c.CacheSize = tc.cacheSize })
		if _, err := v.Verify(ctx, token); err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, token); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"-parallel", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := v.Verify(ctx, token); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}

	v := newClerk(b, srv, nil)
	const distinct = 1024
	tokens := make([]string, distinct)
	for i := range tokens {
		claims["sid"] = fmt.Sprintf("sess_%d", i)
		tokens[i] = sign(b, keyA(), claims)
	}
	b.Run("many-clients", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, err := v.Verify(ctx, tokens[i%distinct]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
