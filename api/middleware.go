package api

import (
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/icpservice/icp/api/auth"
	"github.com/icpservice/icp/domain"
)

const contentTypeJSON = "application/json; charset=utf-8"

// recoverPanics turns a panic in a handler into a 500 that says nothing about
// the cause; the cause and the stack go to the log. http.ErrAbortHandler is
// passed on: it is how a handler asks net/http to drop the connection.
func (a *api) recoverPanics(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler { //nolint:errorlint // compared as net/http does
				panic(v)
			}
			a.logger(c).Error("panic while serving a request", append(logAttrs(c), slog.Any("panic", v), slog.String("stack", string(debug.Stack())))...)
			if !c.Writer.Written() {
				a.abort(c, &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"}, "")
			}
		}
	}()
	c.Next()
}

// authenticated runs h with the caller's actor (actorOf the verified
// token's Principal), or answers 401 (missing, malformed or refused token,
// with WWW-Authenticate: Bearer), 503 (the verifier could not check the
// token) or 429 (the caller is over the per-user rate limit).
func (a *api) authenticated(h func(c *gin.Context, actor domain.Actor)) gin.HandlerFunc {
	return func(c *gin.Context) {
		token, ok := bearerToken(c.Request.Header.Get("Authorization"))
		if !ok {
			a.abort(c, &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized,
				Message: "missing or malformed Authorization header; expected: Bearer <session token>", Challenge: "Bearer"}, "")
			return
		}
		p, err := a.verifier.Verify(c.Request.Context(), token)
		switch {
		case err == nil && p.UserID == "":
			a.abort(c, &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Message: "the token names no user", Challenge: `Bearer error="invalid_token"`}, "")
		case err == nil:
			if !a.rateLimited(c, p.UserID) {
				h(c, actorOf(p))
			}
		case errors.Is(err, auth.ErrUnauthorized):
			a.abort(c, err, "")
		default:
			a.logger(c).Warn("token verification could not be attempted", "err", err)
			a.abort(c, a.unavailable("the token could not be verified now; retry later"), "")
		}
	}
}

// bearerToken extracts the token of an "Authorization: Bearer <token>"
// header (scheme case-insensitive, RFC 7235).
func bearerToken(h string) (string, bool) {
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return "", false
	}
	t := strings.TrimSpace(h[len(scheme):])
	if t == "" || strings.ContainsAny(t, " \t") {
		return "", false
	}
	return t, true
}

// printable reports whether s is 1..max printable ASCII characters.
func printable(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
