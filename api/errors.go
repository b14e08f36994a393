package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/icpservice/icp/api/auth"
	"github.com/icpservice/icp/commands"
	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/platform/telemetry"
	"github.com/icpservice/icp/projections"
)

// Error codes: the stable catalogue clients program against. Each code goes
// with one HTTP status (see the contract's error table).
const (
	CodeBadRequest           = "BAD_REQUEST"            // 400
	CodeUnauthorized         = "UNAUTHORIZED"           // 401
	CodeForbidden            = "FORBIDDEN"              // 403
	CodeNotFound             = "NOT_FOUND"              // 404
	CodeMethodNotAllowed     = "METHOD_NOT_ALLOWED"     // 405
	CodeConflict             = "CONFLICT"               // 409
	CodeIdempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED" // 409
	CodePreconditionFailed   = "PRECONDITION_FAILED"    // 412
	CodePayloadTooLarge      = "PAYLOAD_TOO_LARGE"      // 413
	CodeUnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE" // 415
	CodeRateLimited          = "RATE_LIMITED"           // 429
	CodeInternal             = "INTERNAL_ERROR"         // 500
	CodeUnavailable          = "UNAVAILABLE"            // 503
)

// Error is one error answer: its status, code, message and, for validation
// errors, the details.
type Error struct {
	Status  int
	Code    string
	Message string
	Details []commands.Detail
	// RetryAfter, when > 0, is sent as Retry-After (seconds).
	RetryAfter int
	// Challenge, when set, is sent as WWW-Authenticate.
	Challenge string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// errorBody is the JSON form: {"error":{"code","message"[,"details"]}}.
type errorBody struct {
	Error errorFields `json:"error"`
}

type errorFields struct {
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Details []commands.Detail `json:"details,omitempty"`
}

func badRequest(msg string, details ...commands.Detail) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Message: msg, Details: details}
}

// maxEchoed is how many characters of an id, a path or a method a message
// repeats.
const maxEchoed = 64

func notFound(id string) *Error {
	return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "ICP not found: " + commands.Excerpt(id, maxEchoed)}
}

// errorFor is the one mapping from what went wrong to the answer. id is the
// ICP the request was about ("" if none), for the not-found message. Errors
// that are not part of the catalogue become 500 without their text; those
// and unavailable stores are logged to log.
func (a *api) errorFor(log *slog.Logger, err error, id string) *Error {
	var (
		e  *Error
		ve *commands.ValidationError
		tl *commands.TooLargeError
	)
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &ve):
		return badRequest(ve.Message, ve.Details...)
	case errors.As(err, &tl):
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: CodePayloadTooLarge, Message: tl.Error() + ": make the ICP smaller"}
	case errors.Is(err, domain.ErrNotFound), errors.Is(err, projections.ErrNotFound):
		return notFound(id)
	case errors.Is(err, domain.ErrForbidden):
		return &Error{Status: http.StatusForbidden, Code: CodeForbidden, Message: "you do not have access to this ICP"}
	case errors.Is(err, commands.ErrIdempotencyKeyReused):
		return &Error{Status: http.StatusConflict, Code: CodeIdempotencyKeyReused, Message: commands.ErrIdempotencyKeyReused.Error()}
	case errors.Is(err, domain.ErrConflict):
		return &Error{Status: http.StatusConflict, Code: CodeConflict, Message: domain.ErrConflict.Error()}
	case errors.Is(err, domain.ErrPreconditionFailed):
		return &Error{Status: http.StatusPreconditionFailed, Code: CodePreconditionFailed, Message: "If-Match does not match the ICP's current version"}
	case errors.Is(err, auth.ErrUnauthorized):
		return &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Message: err.Error(), Challenge: `Bearer error="invalid_token"`}
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads this answer.
		return a.unavailable("the request was cancelled")
	case errors.Is(err, events.ErrUnavailable), errors.Is(err, projections.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		log.Warn("backing store unavailable", "err", err)
		return a.unavailable("a backing store is unavailable; retry later")
	default:
		log.Error("unexpected error", "err", err)
		return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"}
	}
}

func (a *api) unavailable(msg string) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: msg, RetryAfter: a.retryAfter}
}

// abort answers err (through errorFor) and stops the handler chain.
func (a *api) abort(c *gin.Context, err error, id string) {
	log := a.logger(c)
	e := a.errorFor(log, err, id)
	h := c.Writer.Header()
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	if e.Challenge != "" {
		h.Set("WWW-Authenticate", e.Challenge)
	}
	body, merr := errorJSON(e)
	if merr != nil { // cannot happen: strings only
		log.Error("encode error body", "err", merr)
		body = []byte(`{"error":{"code":"INTERNAL_ERROR","message":"internal error"}}`)
	}
	c.Abort()
	c.Data(e.Status, contentTypeJSON, body)
}

// MaxErrorBodyBytes bounds every error answer: its body is shorter than this
// whatever the request (the contract: under 64 KiB).
const MaxErrorBodyBytes = 64 << 10

// The most bytes each text of an error answer takes once encoded as JSON.
// With at most commands.MaxDetails details they keep a body below
// MaxErrorBodyBytes (TestErrorBodiesStayBoundedWhateverTheyCarry).
const (
	maxCodeJSON          = 64
	maxMessageJSON       = 2 << 10
	maxDetailPathJSON    = 256
	maxDetailMessageJSON = 768
)

// errorJSON is the body of the error answer e: {"error":{"code","message"
// [,"details"]}}. It is where every error answer is bounded, whoever built
// e: at most commands.MaxDetails details (the last saying how many more
// problems were found), each text cut to its budget on a character boundary
// with "…" marking the cut.
func errorJSON(e *Error) ([]byte, error) {
	f := errorFields{Code: clipJSON(e.Code, maxCodeJSON), Message: clipJSON(e.Message, maxMessageJSON)}
	if len(e.Details) > 0 {
		ds := commands.CapDetails(e.Details, 0)
		f.Details = make([]commands.Detail, len(ds))
		for i, d := range ds {
			f.Details[i] = commands.Detail{Path: clipJSON(d.Path, maxDetailPathJSON), Message: clipJSON(d.Message, maxDetailMessageJSON)}
		}
	}
	return jsonBytes(errorBody{Error: f})
}

// clipJSON returns s when its JSON encoding (quotes aside) takes at most max
// bytes, else its longest prefix on a character boundary that fits with the
// mark "…" after it.
func clipJSON(s string, max int) string {
	const mark = "…"
	n, cut := 0, -1
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		w := jsonWidth(r, size)
		if cut < 0 && n+w > max-len(mark) {
			cut = i
		}
		if n += w; n > max {
			return s[:cut] + mark
		}
		i += size
	}
	return s
}

// jsonWidth bounds how many bytes the JSON encoding of the character r (size
// bytes of UTF-8) takes in the service's JSON, where HTML characters are not
// escaped: six for what may be written as \uXXXX (control characters, an
// invalid byte, U+2028 and U+2029), two for a quote or a backslash, else its
// own size.
func jsonWidth(r rune, size int) int {
	switch {
	case r == utf8.RuneError && size == 1, r < 0x20, r == '\u2028', r == '\u2029':
		return 6
	case r == '"', r == '\\':
		return 2
	default:
		return size
	}
}

// logAttrs is the request's identity for logs: never the token or the body.
func logAttrs(c *gin.Context) []any {
	return []any{slog.String("method", telemetry.HTTPMethod(c.Request.Method)), slog.String("path", c.FullPath())}
}
