package api

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/semaphore"

	"github.com/icpservice/icp/commands"
	"github.com/icpservice/icp/events"
)

// requestBody is a request's body as read, and the share of the bodies'
// budget (Config.MaxInflightBodyBytes) it holds until releaseBody.
type requestBody struct {
	*bytes.Buffer
	budget *semaphore.Weighted
	held   int64
	// limited reads the request's body up to the limit; kept here, in the
	// pooled value, so that reading a body allocates no reader.
	limited io.LimitedReader
}

// bodyBuffers recycles request bodies: commands.Parse* copies what it keeps,
// so a buffer is free again once the body was parsed. Buffers grown past
// pooledBodyMax are left to the collector.
var bodyBuffers = sync.Pool{New: func() any { return &requestBody{Buffer: new(bytes.Buffer)} }}

const pooledBodyMax = 64 << 10

// releaseBody gives the body's bytes back to the budget and its buffer to the
// pool. The caller must not use b afterwards.
func releaseBody(b *requestBody) {
	if b.held > 0 {
		b.budget.Release(b.held)
	}
	b.budget, b.held = nil, 0
	if b.Cap() <= pooledBodyMax {
		b.Reset()
		bodyBuffers.Put(b)
	}
}

// errBodyBudget ends the reading of a body that outgrew the bodies' budget.
var errBodyBudget = errors.New("api: request bodies' budget exhausted")

// budgetedReader takes a share of the bodies' budget for each chunk it
// reads, for bodies whose length is not declared.
type budgetedReader struct {
	r    io.Reader
	body *requestBody
}

func (br budgetedReader) Read(p []byte) (int, error) {
	n, err := br.r.Read(p)
	if n > 0 {
		if !br.body.budget.TryAcquire(int64(n)) {
			return n, errBodyBudget
		}
		br.body.held += int64(n)
	}
	return n, err
}

// readJSONBody checks that the request carries JSON (415 otherwise) of at most
// bodyLimit (413 otherwise) and reads it, within the budget of bodies held
// at once (503 with Retry-After when it is spent: a body of declared length
// takes its share before anything is read, one of unknown length as it
// arrives). The caller must releaseBody the body when done with its bytes.
//
// The budget is its own semaphore rather than the write slots: bodies are
// read before a write takes its slot (a slow sender must not hold a slot
// that writes are queueing for), and the slots bound a count, not bytes.
func (a *api) readJSONBody(c *gin.Context) (*requestBody, error) {
	if err := checkJSONContentType(c.Request.Header.Get("Content-Type")); err != nil {
		return nil, err
	}
	limit := a.bodyLimit()
	if c.Request.ContentLength > limit {
		return nil, bodyTooLarge(limit)
	}
	buf := bodyBuffers.Get().(*requestBody)
	buf.budget = a.bodies
	var src io.Reader = c.Request.Body
	if n := c.Request.ContentLength; n > 0 {
		if !a.bodies.TryAcquire(n) {
			releaseBody(buf)
			return nil, a.bodiesBusy(c)
		}
		buf.held = n
		// Room for the body and the read that finds its end, so that
		// ReadFrom never grows the buffer for a body of declared length.
		buf.Grow(int(n) + bytes.MinRead)
	} else if n < 0 {
		src = budgetedReader{r: src, body: buf}
	}
	buf.limited = io.LimitedReader{R: src, N: limit + 1}
	_, err := buf.ReadFrom(&buf.limited)
	buf.limited = io.LimitedReader{}
	switch {
	case errors.Is(err, errBodyBudget):
		releaseBody(buf)
		return nil, a.bodiesBusy(c)
	case err != nil:
		releaseBody(buf)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, bodyTooLarge(limit)
		}
		return nil, badRequest("the request body could not be read")
	case int64(buf.Len()) > limit:
		releaseBody(buf)
		return nil, bodyTooLarge(limit)
	}
	return buf, nil
}

// bodyTooLarge is the answer to a body larger than limit bytes.
func bodyTooLarge(limit int64) error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Code: CodePayloadTooLarge,
		Message: "the request body is larger than " + strconv.FormatInt(limit, 10) + " bytes"}
}

// bodiesBusy is the answer to a body refused for want of room in the bodies'
// budget.
func (a *api) bodiesBusy(c *gin.Context) error {
	a.logger(c).Warn("request body refused: the budget of bodies held at once is spent", "max_inflight_body_bytes", a.cfg.MaxInflightBodyBytes)
	return a.unavailable("too many request bodies are being received; nothing was recorded; retry later")
}

// checkJSONContentType accepts application/json with any parameters (such as
// charset=utf-8); a charset other than UTF-8 is refused, since JSON is UTF-8.
func checkJSONContentType(ct string) error {
	if ct == "application/json" || ct == "application/json; charset=utf-8" {
		return nil
	}
	unsupported := &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMediaType,
		Message: "the request body must be JSON: send Content-Type: application/json"}
	if ct == "" {
		return unsupported
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return unsupported
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		unsupported.Message = "the request body must be JSON in UTF-8, not charset " + commands.Quote(cs)
		return unsupported
	}
	return nil
}

// jsonBytes encodes v as the service writes all JSON (no HTML escaping).
func jsonBytes(v any) ([]byte, error) { return events.MarshalJSON(v) }
