package app_test

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestMetricsExistAndMove scrapes the admin listener before and after a few
// creates: every documented metric is exposed, and the ones on the create
// path grow.
func TestMetricsExistAndMove(t *testing.T) {
	dir := t.TempDir()
	a := runApp(t, "--dev", "--addr=127.0.0.1:0", "--embedded-nats-addr=127.0.0.1:0", "--admin-addr=127.0.0.1:0", "--data-dir="+dir, "--log-level=warn")

	scrape := func() string {
		resp, err := http.Get("http://" + a.AdminAddr() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	value := func(text, series string) float64 {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` ([0-9.e+-]+)$`).FindStringSubmatch(text)
		if m == nil {
			return -1
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	waitFor(t, 30*time.Second, "admin readyz", func() bool {
		resp, err := http.Get("http://" + a.AdminAddr() + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	before := scrape()
	for _, name := range []string{
		"icp_nats_connected", "icp_event_store_head_position", "icp_relay_active", "icp_relay_published_total",
		"icp_relay_lag_positions", "icp_relay_lag_seconds", "icp_projector_applied_total",
		"icp_projector_dead_lettered_total", "icp_projector_lag_messages", "icp_read_model_commits_total",
		"icp_read_model_written_total", "icp_read_your_writes_timeouts_total",
		"icp_event_store_append_conflicts_total", "icp_event_store_append_duration_seconds_count",
		"icp_relay_diverged", "icp_relay_corrupt", "icp_relay_passed_over_foreign_total", "icp_relay_passed_over_oversized_total",
	} {
		if value(before, name) < 0 {
			t.Errorf("metric %s is not exposed", name)
		}
	}
	if value(before, "icp_nats_connected") != 1 {
		t.Error("icp_nats_connected should be 1")
	}

	token := devToken(t, dir, "user_m")
	client := &http.Client{Timeout: 10 * time.Second}
	for i := 0; i < 3; i++ {
		if _, ok := create(client, "http://"+a.Addr(), token, "metrics"); !ok {
			t.Fatal("create failed")
		}
	}
	// The projector counts an event once its batch is written, which may
	// be just after the waiting request was answered: the counters are
	// read until they have all moved.
	moved := []string{
		"icp_event_store_head_position", "icp_relay_published_total", "icp_projector_applied_total",
		"icp_read_model_written_total", "icp_event_store_append_duration_seconds_count",
		`icp_http_requests_total{method="POST",route="/api/v1/entities/icps",status="201"}`,
		`icp_http_request_duration_seconds_count{method="POST",route="/api/v1/entities/icps"}`,
	}
	var after string
	allMoved := func() bool {
		after = scrape()
		for _, series := range moved {
			if value(after, series) < max(value(before, series), 0)+3 {
				return false
			}
		}
		return true
	}
	waitFor(t, 10*time.Second, "every counter to move by the 3 creates", allMoved)
	if value(after, "icp_relay_active") != 1 {
		t.Error("the only relay should be active")
	}
}
