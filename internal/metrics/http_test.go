package metrics_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/icpservice/icp/internal/metrics"
)

// series counts the series of the registry's icp_ families.
func series(t *testing.T, m *metrics.Metrics) int {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "icp_") {
			n += len(mf.GetMetric())
		}
	}
	return n
}

// TestInventedMethodsPathsAndStatusesAddNoSeries sends thousands of requests
// with methods, paths and status codes nobody serves: after the first of
// each kind, the registry holds no new series.
func TestInventedMethodsPathsAndStatusesAddNoSeries(t *testing.T) {
	m := metrics.New()
	// The handler answers the status the path asks for, as a handler with a
	// new code path might.
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code := http.StatusNotFound
		if s := r.URL.Query().Get("status"); s != "" {
			code, _ = strconv.Atoi(s)
		}
		w.WriteHeader(code)
	})
	srv := httptest.NewServer(m.HTTP(h))
	defer srv.Close()
	client := srv.Client()

	send := func(i int) {
		t.Helper()
		status := []int{404, 299, 418, 599}[i%4]
		req, err := http.NewRequest(fmt.Sprintf("INVENTED%d", i), fmt.Sprintf("%s/made/up/%d/path%d?status=%d", srv.URL, i, i*7, status), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	for i := range 4 { // one of each invented status, each with a new method and path
		send(i)
	}
	first := series(t, m)
	if first == 0 {
		t.Fatal("the first requests recorded no series")
	}
	for i := 4; i < 3000; i++ {
		send(i)
	}
	if got := series(t, m); got != first {
		t.Fatalf("3000 invented methods and paths left %d series, want the %d the first ones made", got, first)
	}

	// What was recorded is under the closed labels.
	mfs, _ := m.Registry.Gather()
	var total float64
	for _, mf := range mfs {
		if mf.GetName() != "icp_http_requests_total" {
			continue
		}
		for _, s := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["method"] != "other" || labels["route"] != metrics.NoRoute {
				t.Errorf("series %v: want method other and route %s", labels, metrics.NoRoute)
			}
			switch labels["status"] {
			case "404", "2xx", "4xx", "5xx":
			default:
				t.Errorf("status label %q, want 404 or a class", labels["status"])
			}
			total += s.GetCounter().GetValue()
		}
	}
	if total != 3000 {
		t.Errorf("counted %v requests, want 3000", total)
	}
}

func TestLabelsOfServedRequestsKeepTheirNames(t *testing.T) {
	for _, c := range []struct{ method, want string }{
		{"GET", "GET"}, {"POST", "POST"}, {"PATCH", "PATCH"}, {"DELETE", "DELETE"}, {"OPTIONS", "OPTIONS"}, {"HEAD", "HEAD"},
		{"get", "other"}, {"PROPFIND", "other"}, {"PUT", "other"},
	} {
		m := metrics.New()
		srv := httptest.NewServer(m.HTTP(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusCreated) })))
		req, _ := http.NewRequest(c.method, srv.URL+"/api/v1/entities/icps/0190a0b4-0000-7000-8000-000000000000", nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		srv.Close()
		if got := onlyLabel(t, m, "method"); got != c.want {
			t.Errorf("method %q: label %q, want %q", c.method, got, c.want)
		}
		if r := onlyLabel(t, m, "route"); r != "/api/v1/entities/icps/:id" {
			t.Errorf("route label %q", r)
		}
		if s := onlyLabel(t, m, "status"); s != "201" {
			t.Errorf("status label %q", s)
		}
	}
}

// onlyLabel returns the value of label on the only series of
// icp_http_requests_total.
func onlyLabel(t *testing.T, m *metrics.Metrics, label string) string {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "icp_http_requests_total" {
			continue
		}
		if len(mf.GetMetric()) != 1 {
			t.Fatalf("%d series, want 1", len(mf.GetMetric()))
		}
		for _, l := range mf.GetMetric()[0].GetLabel() {
			if l.GetName() == label {
				return l.GetValue()
			}
		}
	}
	t.Fatalf("no series with label %s", label)
	return ""
}

func TestStatusLabelsAreAClosedSet(t *testing.T) {
	for code, want := range map[int]string{200: "200", 201: "201", 503: "503", 429: "429", 299: "2xx", 418: "4xx", 599: "5xx", 103: "1xx", 99: "other", 600: "other", 999: "other"} {
		if got := metrics.Status(code); got != want {
			t.Errorf("Status(%d) = %q, want %q", code, got, want)
		}
	}
}
