package api

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"
)

// healthz answers 200 while the process serves HTTP (liveness).
func (a *api) healthz(c *gin.Context) {
	c.Data(http.StatusOK, contentTypeJSON, []byte(`{"status":"ok"}`))
}

// readyz answers 200 when Deps.Ready reports the service can serve, else 503
// with the reason (readiness: take the instance out of rotation).
func (a *api) readyz(c *gin.Context) {
	if a.ready != nil {
		ctx, cancel := context.WithTimeout(c.Request.Context(), a.cfg.ReadyTimeout)
		err := a.ready(ctx)
		cancel()
		if err != nil {
			a.abort(c, a.unavailable("not ready: "+err.Error()), "")
			return
		}
	}
	c.Data(http.StatusOK, contentTypeJSON, []byte(`{"status":"ready"}`))
}
