package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/icpservice/icp/commands"
	"github.com/icpservice/icp/events"
)

// bodyBuffers recycles request body buffers: commands.Parse* copies what it
// keeps, so a buffer is free again once the body was parsed. Buffers grown
// past pooledBodyMax are left to the collector.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const pooledBodyMax = 64 << 10

func releaseBody(b *bytes.Buffer) {
	if b.Cap() <= pooledBodyMax {
		b.Reset()
		bodyBuffers.Put(b)
	}
}

// readJSONBody checks that the request carries JSON (415 otherwise) of at most
// MaxBodyBytes (413 otherwise) and reads it. The caller must releaseBody the
// buffer when done with its bytes.
func (a *api) readJSONBody(c *gin.Context) (*bytes.Buffer, error) {
	if err := checkJSONContentType(c.Request.Header.Get("Content-Type")); err != nil {
		return nil, err
	}
	limit := a.cfg.MaxBodyBytes
	tooLarge := &Error{Status: http.StatusRequestEntityTooLarge, Code: CodePayloadTooLarge,
		Message: fmt.Sprintf("the request body is larger than %d bytes", limit)}
	if c.Request.ContentLength > limit {
		return nil, tooLarge
	}
	buf := bodyBuffers.Get().(*bytes.Buffer)
	if n := c.Request.ContentLength; n > 0 {
		buf.Grow(int(n) + 1)
	}
	_, err := buf.ReadFrom(io.LimitReader(c.Request.Body, limit+1))
	switch {
	case err != nil:
		releaseBody(buf)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge
		}
		return nil, badRequest("the request body could not be read")
	case int64(buf.Len()) > limit:
		releaseBody(buf)
		return nil, tooLarge
	}
	return buf, nil
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
