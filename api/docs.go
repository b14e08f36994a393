package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/icpservice/icp/api/openapi"
)

// openAPI answers the service's OpenAPI document, embedded at build time. It
// needs no token: it describes the API and holds no data.
func (a *api) openAPI(c *gin.Context) {
	c.Data(http.StatusOK, contentTypeJSON, openapi.Document())
}
