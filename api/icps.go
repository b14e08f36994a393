package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/icpservice/icp/commands"
	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/projections"
)

// Response headers of the ICP resource.
const (
	// HeaderConsistency is "pending" on a 201 sent before the read model
	// showed the new ICP.
	HeaderConsistency = "ICP-Consistency"
	// HeaderIdempotencyKey makes a create safe to retry.
	HeaderIdempotencyKey = "Idempotency-Key"
	// MaxIdempotencyKeyLength is the longest Idempotency-Key accepted.
	MaxIdempotencyKeyLength = 255
)

// create records a new ICP and answers 201 with it.
//
// Once Create returned, the event is durable: from then on the answer is 201
// whatever happens, because an error would invite a retry that creates a
// second ICP. The handler waits (at most ConsistencyWait) until the read model
// shows the ICP, so that the caller's next get or list sees it; past the wait
// it still answers 201, with ICP-Consistency: pending. The body is encoded
// like the read model's document, so it equals what a get returns.
func (a *api) create(c *gin.Context, actor domain.Actor) {
	key, err := idempotencyKey(c.Request.Header)
	if err != nil {
		a.abort(c, err, "")
		return
	}
	buf, err := a.readJSONBody(c)
	if err != nil {
		a.abort(c, err, "")
		return
	}
	cmd, err := commands.ParseCreate(buf.Bytes(), actor.UserID)
	releaseBody(buf)
	if err != nil {
		a.abort(c, err, "")
		return
	}
	res, err := a.write(c, func(ctx context.Context) (commands.Result, error) {
		return a.cmds.Create(ctx, actor, cmd, key, requestMeta(ctx))
	})
	if err != nil {
		a.abort(c, err, "")
		return
	}

	// Durable from here on: answer 201 whatever happens.
	id := res.State.ICP.ID
	body := res.Doc // the event's own bytes, when this call recorded it
	if body == nil {
		if body, err = events.MarshalJSON(res.State.ICP); err != nil { // cannot happen: the value came from a decoded event
			a.logger(c).Error("encode created ICP", "id", id, "err", err)
			body = []byte(`{"id":"` + id + `"}`)
		}
	}
	a.awaitReadModel(c, id, res.State.Version)
	h := c.Writer.Header()
	h.Set("Location", BasePath+"/"+id)
	h.Set("ETag", etag(res.State.Version))
	c.Data(http.StatusCreated, contentTypeJSON, body)
}

// awaitReadModel waits, at most ConsistencyWait, until the read model holds
// ICP id at version (or later), so that the caller's next read sees the
// change; past the wait, or when the read model cannot tell, it marks the
// answer ICP-Consistency: pending. It never fails: the change is durable.
func (a *api) awaitReadModel(c *gin.Context, id string, version uint64) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), a.cfg.ConsistencyWait)
	err := a.rm.WaitFor(ctx, id, version)
	cancel()
	if err != nil {
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			a.logger(c).Warn("read model wait failed after a change", "id", id, "err", err)
		}
		c.Writer.Header().Set(HeaderConsistency, "pending")
	}
}

// update applies a partial update and answers 200 with the whole ICP as
// updated (once durable, always 200; consistency as for create).
func (a *api) update(c *gin.Context, actor domain.Actor) {
	raw := c.Param("id")
	id, ok := normaliseID(raw)
	if !ok {
		a.abort(c, domain.ErrNotFound, raw)
		return
	}
	ifMatch := parseIfMatch(c.Request.Header)
	buf, err := a.readJSONBody(c)
	if err != nil {
		a.abort(c, err, raw)
		return
	}
	cmd, err := commands.ParseUpdate(buf.Bytes())
	releaseBody(buf)
	if err != nil {
		a.abort(c, err, raw)
		return
	}
	res, err := a.write(c, func(ctx context.Context) (commands.Result, error) {
		return a.cmds.Update(ctx, actor, id, cmd, ifMatch, requestMeta(ctx))
	})
	if err != nil {
		a.abort(c, err, raw)
		return
	}
	// Durable from here on (or nothing to change): answer 200.
	body, err := events.MarshalJSON(res.State.ICP)
	if err != nil { // cannot happen: the same value was just encoded into the event
		a.logger(c).Error("encode updated ICP", "id", id, "err", err)
		body = []byte(`{"id":"` + id + `"}`)
	}
	a.awaitReadModel(c, id, res.State.Version)
	c.Header("ETag", etag(res.State.Version))
	c.Data(http.StatusOK, contentTypeJSON, body)
}

// remove deletes an ICP and answers 204 (once durable, always 204; it waits
// for the read model as create does, so the ICP is gone from the caller's
// next get and list).
func (a *api) remove(c *gin.Context, actor domain.Actor) {
	raw := c.Param("id")
	id, ok := normaliseID(raw)
	if !ok {
		a.abort(c, domain.ErrNotFound, raw)
		return
	}
	ifMatch := parseIfMatch(c.Request.Header)
	res, err := a.write(c, func(ctx context.Context) (commands.Result, error) {
		return a.cmds.Delete(ctx, actor, id, ifMatch, requestMeta(ctx))
	})
	if err != nil {
		a.abort(c, err, raw)
		return
	}
	a.awaitReadModel(c, id, res.State.Version)
	c.Status(http.StatusNoContent)
}

// parseIfMatch reads If-Match as the versions it allows: nil when the header
// is absent or "*" (no precondition beyond existence); otherwise the versions
// of its strong ETags "N". Weak or malformed entries can match nothing, so a
// header with only those yields an empty list: 412 on any version.
func parseIfMatch(h http.Header) []uint64 {
	vals := h.Values("If-Match")
	if len(vals) == 0 {
		return nil
	}
	versions := []uint64{}
	for _, v := range vals {
		for tag := range strings.SplitSeq(v, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" {
				return nil
			}
			if len(tag) < 3 || tag[0] != '"' || tag[len(tag)-1] != '"' {
				continue
			}
			if n, err := strconv.ParseUint(tag[1:len(tag)-1], 10, 64); err == nil && n > 0 {
				versions = append(versions, n)
			}
		}
	}
	return versions
}

// idempotencyKey returns the request's Idempotency-Key ("" when absent), or a
// 400 when it is not 1..255 printable ASCII characters or given twice.
func idempotencyKey(h http.Header) (string, error) {
	vals := h[HeaderIdempotencyKey]
	switch {
	case len(vals) == 0:
		return "", nil
	case len(vals) > 1:
		return "", badRequest("give Idempotency-Key at most once")
	case !printable(vals[0], MaxIdempotencyKeyLength):
		return "", badRequest("Idempotency-Key must be 1 to 255 printable ASCII characters")
	}
	return vals[0], nil
}

// get answers one ICP as the read model holds it, byte for byte.
func (a *api) get(c *gin.Context, actor domain.Actor) {
	raw := c.Param("id")
	v, err := a.visible(c.Request.Context(), raw, actor)
	if err != nil {
		a.abort(c, err, raw)
		return
	}
	c.Header("ETag", etag(v.Version))
	c.Data(http.StatusOK, contentTypeJSON, v.Doc)
}

// visible returns the live view of ICP id that actor may read, by the
// domain's access rule (domain.Authorize): ErrNotFound for a malformed id, an
// unknown or deleted ICP, or another tenant's (never 403, so ids of other
// tenants leak nothing); ErrForbidden for an ICP of actor's tenant that actor
// is not a member of, unless actor is an admin. Membership and deletion are
// those of the event store: a view the read model has not brought up to the
// store's version is replaced by the store's (fresh1), so an acknowledged
// removal or delete holds at once.
func (a *api) visible(ctx context.Context, rawID string, actor domain.Actor) (projections.View, error) {
	id, ok := normaliseID(rawID)
	if !ok {
		return projections.View{}, domain.ErrNotFound
	}
	v, err := a.rm.Get(ctx, id)
	if err != nil {
		return projections.View{}, err
	}
	// Deleted and another tenant are both final: no store can undo them.
	// Membership is decided on the store's version below.
	if err := domain.Authorize(actor, v.Tenant, v.Deleted, v.UserIDs); errors.Is(err, domain.ErrNotFound) {
		return projections.View{}, err
	}
	if v, err = a.fresh1(ctx, v); err != nil { // access while the read model lags: see fresh.go
		return projections.View{}, err
	}
	if err := domain.Authorize(actor, v.Tenant, v.Deleted, v.UserIDs); err != nil {
		return projections.View{}, err
	}
	return v, nil
}

// normaliseID returns id as the lowercase UUID the service stores, and false
// when it is not a UUID in the 8-4-4-4-12 form.
func normaliseID(id string) (string, bool) {
	if len(id) != 36 {
		return "", false
	}
	lower := true
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return "", false
			}
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
		case c >= 'A' && c <= 'F':
			lower = false
		default:
			return "", false
		}
	}
	if lower {
		return id, true
	}
	b := []byte(id)
	for i, c := range b {
		if c >= 'A' && c <= 'F' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b), true
}

// list answers the caller's ICPs in its tenant as a bare JSON array, oldest
// first (by the position of their creation): the whole list streamed chunk
// by chunk (see streamList), or with limit one page read at once, at most
// MaxPageLimit ICPs, with a Link to the next.
func (a *api) list(c *gin.Context, actor domain.Actor) {
	pg, err := parsePage(c.Request.URL.RawQuery)
	if err != nil {
		a.abort(c, err, "")
		return
	}
	if pg.limit == 0 {
		a.streamList(c, actor, pg.after)
		return
	}
	fetch := pg.limit + 1 // one more tells whether another page follows
	views, err := a.rm.List(c.Request.Context(), actor.Tenant, actor.UserID, pg.after, fetch)
	if err != nil {
		a.abort(c, err, "")
		return
	}
	if len(views) > pg.limit {
		views = views[:pg.limit]
		c.Header("Link", "<"+BasePath+"?cursor="+encodeCursor(views[len(views)-1].Position)+"&limit="+strconv.Itoa(pg.limit)+`>; rel="next"`)
	}
	// After the cursor was taken from the read model's page: fresh may drop
	// views, and the next page starts after the last one read, dropped or not.
	if views, err = a.fresh(c.Request.Context(), views, actor); err != nil {
		a.abort(c, err, "")
		return
	}
	// The documents are written one by one rather than joined first, so the
	// page is held once, not twice.
	c.Status(http.StatusOK)
	c.Header("Content-Type", contentTypeJSON)
	w := c.Writer
	_, err = w.Write(openBracket)
	for i := 0; i < len(views) && err == nil; i++ {
		if i > 0 {
			if _, err = w.Write(comma); err != nil {
				break
			}
		}
		_, err = w.Write(views[i].Doc)
	}
	if err == nil {
		_, _ = w.Write(closeBracket)
	}
}

// etag is the ETag of an ICP at version v: "v".
func etag(v uint64) string { return `"` + strconv.FormatUint(v, 10) + `"` }
