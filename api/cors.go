package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-contrib/cors"
	"github.com/gin-gonic/gin"
)

// DefaultCORSMaxAge is how long a browser may reuse a preflight answer when
// Config.CORSMaxAge is 0.
const DefaultCORSMaxAge = 10 * time.Minute

// normaliseOrigin returns an origin as browsers send it (scheme://host[:port],
// lowercase, no path), or an error when s is not one.
func normaliseOrigin(s string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("%q is not an origin like https://app.example.com", s)
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

// corsPolicy lets the configured browser origins call the API: preflights
// from them are answered 204 with the methods and headers the contract uses,
// and answers to them expose the headers clients read (ETag, Location, Link,
// Retry-After, ICP-Consistency, the request ids). A request from any other
// origin is refused with 403 in the error shape before anything runs. No
// credentials mode: the API authenticates with bearer tokens, not cookies.
// gin-contrib/cors writes the headers; the refusal is ours so that it
// answers in the error catalogue's shape.
type corsPolicy struct {
	origins map[string]bool
	headers gin.HandlerFunc
}

func newCORSPolicy(origins []string, cfg Config) *corsPolicy {
	p := &corsPolicy{origins: make(map[string]bool, len(origins))}
	for _, o := range origins {
		if n, err := normaliseOrigin(o); err == nil { // validated by Config.Validate
			p.origins[n] = true
		}
	}
	p.headers = cors.New(cors.Config{
		AllowOriginFunc: p.allowed,
		AllowMethods:    []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete},
		AllowHeaders: []string{"Authorization", "Content-Type", HeaderIdempotencyKey, "If-Match",
			HeaderRequestID, HeaderCorrelationID, "Traceparent", "Tracestate"},
		ExposeHeaders: []string{"ETag", "Location", "Link", "Retry-After", HeaderConsistency,
			HeaderRequestID, HeaderCorrelationID},
		MaxAge: cfg.CORSMaxAge,
	})
	return p
}

func (p *corsPolicy) allowed(origin string) bool { return p.origins[strings.ToLower(origin)] }

// cors is the CORS middleware: same-origin and non-browser requests (no
// Origin) pass untouched.
func (a *api) cors(c *gin.Context) {
	origin := c.Request.Header.Get("Origin")
	if origin == "" || origin == "http://"+c.Request.Host || origin == "https://"+c.Request.Host {
		return
	}
	if !a.corsPolicy.allowed(origin) {
		msg := "cross-origin requests from this origin are not allowed"
		if printable(origin, 100) {
			msg = "cross-origin requests from " + origin + " are not allowed"
		}
		a.abort(c, &Error{Status: http.StatusForbidden, Code: CodeForbidden, Message: msg}, "")
		return
	}
	a.corsPolicy.headers(c)
}
