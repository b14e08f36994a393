package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/icpservice/icp/platform/telemetry"
)

// NoRoute is the route label of every path the API has no route for.
const NoRoute = "other"

// Route returns the route pattern of a request path, so that labels stay
// few whatever ids callers send: one of the API's route templates, or
// NoRoute.
func Route(path string) string {
	const base = "/api/v1/entities/icps"
	switch {
	case path == base:
		return base
	case strings.HasPrefix(path, base+"/") && !strings.Contains(path[len(base)+1:], "/"):
		return base + "/:id"
	case path == "/healthz", path == "/readyz", path == "/openapi.json":
		return path
	default:
		return NoRoute
	}
}

// Status returns the label of a status code: the code itself when the
// service answers it, else its class ("2xx", "4xx", ...), or "other" outside
// 100 to 599. Codes come from the service, not the caller, but a closed set
// keeps a new code path from adding series unnoticed.
func Status(code int) string {
	switch code {
	case http.StatusOK, http.StatusCreated, http.StatusNoContent,
		http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound,
		http.StatusMethodNotAllowed, http.StatusConflict, http.StatusPreconditionFailed,
		http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType,
		http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusServiceUnavailable:
		return strconv.Itoa(code)
	}
	if code >= 100 && code <= 599 {
		return strconv.Itoa(code/100) + "xx"
	}
	return "other"
}

// HTTP records every request's route, method, status and latency, and counts
// answers that carry ICP-Consistency: pending to a client still waiting for
// them (read-your-writes timeouts).
//
// Every label comes from a closed set (Route, telemetry.HTTPMethod, Status),
// so no request, however invented its method or path, adds a series beyond
// those sets: the series are bounded by routes x methods x statuses.
func (m *Metrics) HTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		route, method := Route(r.URL.Path), telemetry.HTTPMethod(r.Method)
		m.httpRequests.WithLabelValues(route, method, Status(rec.status)).Inc()
		m.httpDuration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
		// A client that left before the answer did not see it: its
		// request is not a timeout of the read model.
		if rec.Header().Get("ICP-Consistency") == "pending" && r.Context().Err() == nil {
			m.consistencyDue.Inc()
		}
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wroteHeader {
		s.status, s.wroteHeader = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wroteHeader = true
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
