package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"

	"github.com/MicahParks/jwkset"
	"golang.org/x/sync/singleflight"
)

// jwksStore is the key set of a Clerk instance: the keys of the last good
// fetch of its JWKS, refreshed in the background and on an unknown kid.
//
// The fetching, the periodic refresh and the rate limit of unknown-kid
// refreshes are jwkset's HTTP client (client). This type adds what it lacks:
//   - concurrent misses share one refresh attempt and then look again, so the
//     requests that race in with a newly rotated kid all succeed instead of
//     only the one that won the rate limiter;
//   - it knows whether the last fetch failed, so "the key is not in the
//     instance's JWKS" (a refusal) is told apart from "the JWKS cannot be
//     read and the key is not cached" (ErrKeysUnavailable).
type jwksStore struct {
	jwkset.Storage // the HTTP client; KeyRead is replaced below

	cache     *recordingStorage
	refreshes singleflight.Group
}

// KeyRead returns the key with the kid from the last good fetch; on a miss
// it triggers (or joins) one rate-limited refresh and looks again. A kid
// still unknown afterwards is jwkset.ErrKeyNotFound when the instance's JWKS
// was read and lacks it, and ErrKeysUnavailable when no key is cached or the
// last fetch failed.
func (s *jwksStore) KeyRead(ctx context.Context, kid string) (jwkset.JWK, error) {
	if jwk, err := s.cache.KeyRead(ctx, kid); !errors.Is(err, jwkset.ErrKeyNotFound) {
		return jwk, err
	}
	done := s.refreshes.DoChan("refresh", func() (any, error) {
		// The refresh serves every caller that joins it: it must not end
		// when the first caller goes away. jwkset bounds it by its
		// RateLimitWaitMax.
		_, err := s.Storage.KeyRead(context.WithoutCancel(ctx), kid)
		return nil, err
	})
	select {
	case <-done:
	case <-ctx.Done():
		return jwkset.JWK{}, &unavailableError{cause: ctx.Err()}
	}
	jwk, err := s.cache.KeyRead(ctx, kid)
	if !errors.Is(err, jwkset.ErrKeyNotFound) {
		return jwk, err
	}
	if last := s.cache.lastFetchErr.Load(); last != nil {
		return jwkset.JWK{}, &unavailableError{cause: *last}
	}
	if all, _ := s.cache.KeyReadAll(ctx); len(all) == 0 {
		return jwkset.JWK{}, &unavailableError{cause: errors.New("the JWKS holds no usable key")}
	}
	return jwkset.JWK{}, err
}

// recordingStorage is the memory the HTTP client fetches into; it records
// whether the last fetch succeeded. jwkset replaces the whole set on each
// good fetch (KeyReplaceAll) and reports each failed one to the refresh error
// handler (fetchFailed).
type recordingStorage struct {
	jwkset.Storage
	lastFetchErr atomic.Pointer[error]
}

func (r *recordingStorage) KeyReplaceAll(ctx context.Context, given []jwkset.JWK) error {
	if err := r.Storage.KeyReplaceAll(ctx, given); err != nil {
		return err
	}
	r.lastFetchErr.Store(nil)
	return nil
}

func (r *recordingStorage) fetchFailed(err error) {
	err = fmt.Errorf("fetching the JWKS: %w", err)
	r.lastFetchErr.Store(&err)
}

// maxJWKSBytes bounds a JWKS response body. jwkset decodes the body without a
// limit, so the transport below cuts it: a misbehaving endpoint cannot make
// the service buffer an unbounded document.
const maxJWKSBytes = 1 << 20

type limitedBodyTransport struct{ base http.RoundTripper }

func (t limitedBodyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = limitedBody{Reader: io.LimitReader(resp.Body, maxJWKSBytes), Closer: resp.Body}
	return resp, nil
}

type limitedBody struct {
	io.Reader
	io.Closer
}
