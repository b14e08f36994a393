package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Route returns the route pattern of a request path, so that labels stay
// few whatever ids callers send.
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
		return "other"
	}
}

// HTTP records every request's route, method, status and latency, and counts
// answers that carry ICP-Consistency: pending to a client still waiting for
// them (read-your-writes timeouts).
func (m *Metrics) HTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		route := Route(r.URL.Path)
		m.httpRequests.WithLabelValues(route, r.Method, strconv.Itoa(rec.status)).Inc()
		m.httpDuration.WithLabelValues(route, r.Method).Observe(time.Since(start).Seconds())
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
