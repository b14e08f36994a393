package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/projections"
)

// The chunks a streamed list is read in: each is one short read of the read
// model, and what the handler holds at once. A chunk ends at whichever bound
// comes first (a single larger ICP comes alone). TestListMemoryIsFlat checks
// that what a list request holds stays within a few chunks.
const (
	listChunkViews = 256
	listChunkBytes = 256 << 10
)

// streamList writes the caller's whole list (after the position cursor after)
// as a bare JSON array, chunk by chunk as the read model gives them
// (projections.EachChunk states which ICPs a list that meets concurrent
// writes includes), so the handler's memory does not grow with the list and
// no read of the read model stays open while the client reads.
//
// The bytes are those of a list answered at once: '[', the documents joined
// by ',', ']'. Each chunk but the last is flushed to the client before the
// next is written, so a list that fits one chunk goes out in one piece (with
// Content-Length when small).
//
// Failures: one before the first chunk is written is answered as any error
// (503 UNAVAILABLE, ...). One after it cannot change the status any more, so
// the handler aborts the connection (panic with http.ErrAbortHandler, which
// recoverPanics passes on to net/http): the client sees a body cut short
// without its closing ']' and, over HTTP/1.1, without the terminating chunk;
// never a complete-looking 200. Gin's own Recovery middleware must not be
// put in front: it takes http.ErrAbortHandler for a broken pipe, swallows it
// and returns, and net/http then ends the chunked body as if it were whole
// (TestListFailingMidwayAbortsTheConnection would fail).
func (a *api) streamList(c *gin.Context, actor domain.Actor, after uint64) {
	ctx := c.Request.Context()
	w := c.Writer
	started := false
	var writeErr error
	write := func(b []byte) {
		if writeErr == nil {
			_, writeErr = w.Write(b)
		}
	}
	err := projections.EachChunk(ctx, a.rm, actor.Tenant, actor.UserID, after, listChunkViews, listChunkBytes, func(views []projections.View) error {
		// Access is checked against the event store chunk by chunk: a
		// member removed or an ICP deleted while the read model lags is
		// dropped here (see fresh).
		views, err := a.fresh(ctx, views, actor)
		if err != nil {
			return err
		}
		if len(views) == 0 {
			return nil
		}
		if !started {
			started = true
			w.Header().Set("Content-Type", contentTypeJSON)
			w.WriteHeader(http.StatusOK)
			write(openBracket)
		} else {
			w.Flush()
			write(comma)
		}
		for i, v := range views {
			if i > 0 {
				write(comma)
			}
			write(v.Doc)
		}
		return writeErr
	})
	switch {
	case err == nil && !started:
		c.Data(http.StatusOK, contentTypeJSON, emptyList)
	case err == nil:
		write(closeBracket)
	case !started:
		a.abort(c, err, "")
	default:
		if writeErr == nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
			level := slog.LevelError
			if errors.Is(err, projections.ErrUnavailable) {
				level = slog.LevelWarn
			}
			a.logger(c).Log(ctx, level, "list failed after its answer began; connection aborted", "err", err)
		}
		panic(http.ErrAbortHandler)
	}
}

var (
	openBracket  = []byte{'['}
	closeBracket = []byte{']'}
	comma        = []byte{','}
	emptyList    = []byte("[]")
)
