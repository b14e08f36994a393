package telemetry

import "strings"

// OtherMethod stands for every HTTP method the service does not serve.
const OtherMethod = "other"

// HTTPMethod returns the name under which a request's method is logged,
// traced and counted: the method itself when the API serves it (GET, HEAD,
// POST, PATCH, DELETE, OPTIONS), else OtherMethod. A client can send any
// token as a method; mapping them to one closed set keeps metric series,
// span names and log fields from growing with what callers invent.
func HTTPMethod(m string) string {
	switch m {
	case "GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS":
		return m
	default:
		return OtherMethod
	}
}

// maxPathAttr bounds the request path a span or log line keeps.
const maxPathAttr = 256

// ClipPath returns a request path bounded to 256 bytes of valid UTF-8, for
// span attributes and messages: a path is as long as the client makes it
// (up to the server's header limit).
func ClipPath(p string) string {
	if len(p) > maxPathAttr {
		p = p[:maxPathAttr] + "…"
	}
	return strings.ToValidUTF8(p, "\uFFFD")
}
