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
// (readiness: take the instance out of rotation). The answer never says why:
// the reason names internal parts and their errors, which are not the
// caller's to see. It is logged at Debug, and an operator reads it on the
// admin listener's /readyz.
func (a *api) readyz(c *gin.Context) {
	if a.ready != nil {
		ctx, cancel := context.WithTimeout(c.Request.Context(), a.cfg.ReadyTimeout)
		err := a.ready(ctx)
		cancel()
		if err != nil {
			a.logger(c).Debug("not ready", "err", err)
			a.abort(c, a.unavailable("the service is not ready; retry later"), "")
			return
		}
	}
	c.Data(http.StatusOK, contentTypeJSON, []byte(`{"status":"ready"}`))
}
