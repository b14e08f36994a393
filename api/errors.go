package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/icpservice/icp/api/auth"
	"github.com/icpservice/icp/commands"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/internal/telemetry"
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

func notFound(id string) *Error {
	if len(id) > 100 {
		id = id[:100] + "..."
	}
	return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "ICP not found: " + id}
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
	case errors.Is(err, commands.ErrNotFound), errors.Is(err, projections.ErrNotFound):
		return notFound(id)
	case errors.Is(err, commands.ErrForbidden):
		return &Error{Status: http.StatusForbidden, Code: CodeForbidden, Message: "you do not have access to this ICP"}
	case errors.Is(err, commands.ErrIdempotencyKeyReused):
		return &Error{Status: http.StatusConflict, Code: CodeIdempotencyKeyReused, Message: commands.ErrIdempotencyKeyReused.Error()}
	case errors.Is(err, commands.ErrConflict):
		return &Error{Status: http.StatusConflict, Code: CodeConflict, Message: commands.ErrConflict.Error()}
	case errors.Is(err, commands.ErrPreconditionFailed):
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
	body, merr := jsonBytes(errorBody{Error: errorFields{Code: e.Code, Message: e.Message, Details: e.Details}})
	if merr != nil { // cannot happen: strings only
		log.Error("encode error body", "err", merr)
		body = []byte(`{"error":{"code":"INTERNAL_ERROR","message":"internal error"}}`)
	}
	c.Abort()
	c.Data(e.Status, contentTypeJSON, body)
}

// logAttrs is the request's identity for logs: never the token or the body.
func logAttrs(c *gin.Context) []any {
	return []any{slog.String("method", telemetry.HTTPMethod(c.Request.Method)), slog.String("path", c.FullPath())}
}
