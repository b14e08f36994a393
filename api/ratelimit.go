package api

import (
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"
)

// userLimits is the optional per-user rate limit: one token bucket per user
// id (golang.org/x/time/rate), kept for the most recently seen users only (a
// bounded LRU, so a flood of distinct users cannot grow memory). A user
// whose bucket was evicted starts again with a full bucket.
type userLimits struct {
	limit rate.Limit
	burst int

	mu    sync.Mutex
	users *simplelru.LRU[string, *rate.Limiter]
}

func newUserLimits(perSecond float64, burst, users int) *userLimits {
	lru, err := simplelru.NewLRU[string, *rate.Limiter](users, nil)
	if err != nil { // cannot happen: users > 0 after defaults
		panic(err)
	}
	return &userLimits{limit: rate.Limit(perSecond), burst: burst, users: lru}
}

// allow takes one token of user's bucket. When the bucket is empty it
// returns false and how long until a token is there; the refused request
// takes nothing.
func (u *userLimits) allow(user string, now time.Time) (bool, time.Duration) {
	u.mu.Lock()
	l, ok := u.users.Get(user)
	if !ok {
		l = rate.NewLimiter(u.limit, u.burst)
		u.users.Add(user, l)
	}
	u.mu.Unlock()
	r := l.ReserveN(now, 1)
	if !r.OK() { // cannot happen: burst >= 1
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// rateLimited answers 429 RATE_LIMITED when the caller is over the per-user
// rate, with Retry-After in whole seconds (at least 1).
func (a *api) rateLimited(c *gin.Context, user string) bool {
	if a.users == nil {
		return false
	}
	ok, wait := a.users.allow(user, time.Now())
	if ok {
		return false
	}
	secs := int(math.Ceil(wait.Seconds()))
	a.abort(c, &Error{Status: http.StatusTooManyRequests, Code: CodeRateLimited,
		Message: "too many requests from this user; retry later", RetryAfter: max(1, secs)}, "")
	return true
}
