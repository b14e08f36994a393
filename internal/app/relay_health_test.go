package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/icpservice/icp/internal/natsauth"
)

// A message anyone publishes on the event subjects of icpd's NATS does not
// stop the pipeline: later creates are read back at once (no
// ICP-Consistency: pending), icpd stays ready, and the relay reports no lag.
func TestStrayMessageOnTheBusDoesNotStopCreates(t *testing.T) {
	dir := t.TempDir()
	// A consistency wait far above how long a create takes when the
	// pipeline flows: a create that waited it out answers pending.
	a := runApp(t, "--dev", "--addr=127.0.0.1:0", "--embedded-nats-addr=127.0.0.1:0", "--admin-addr=127.0.0.1:0", "--data-dir="+dir, "--log-level=warn", "--consistency-wait=20s")
	waitFor(t, 30*time.Second, "icpd ready", func() bool { return a.Ready(context.Background()) == nil })

	token := devToken(t, dir, "user_s")
	client := &http.Client{Timeout: 30 * time.Second}
	createConsistent := func(name string) {
		t.Helper()
		body := `{"name":"` + name + `","leadProviderCriteria":[{"provider":"baseProvider","filters":{"job_title":["CTO"]}}]}`
		req, _ := http.NewRequest(http.MethodPost, "http://"+a.Addr()+"/api/v1/entities/icps", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusCreated || !json.Valid(b) {
			t.Fatalf("create %s: %d %s", name, resp.StatusCode, b)
		}
		if c := resp.Header.Get("ICP-Consistency"); c == "pending" {
			t.Fatalf("create %s answered ICP-Consistency: pending: the pipeline stopped", name)
		}
	}
	createConsistent("before")

	// icpd's own credentials: the only ones the embedded server lets
	// publish on the event subjects, so the stray comes from a holder of
	// them (a misused tool, say).
	nc, err := nats.Connect(a.NATSURL(), nats.UserCredentials(natsauth.ServiceCredsPath(dir)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Publish("icp.events.Foo", []byte("not an event")); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"after 1", "after 2", "after 3"} {
		createConsistent(name)
	}
	if err := a.Ready(context.Background()); err != nil {
		t.Errorf("icpd not ready after a stray message: %v", err)
	}
	resp, err := http.Get("http://" + a.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, line := range []string{"icp_relay_diverged 0", "icp_relay_corrupt 0", "icp_relay_lag_positions 0"} {
		if !strings.Contains(string(metrics), "\n"+line+"\n") {
			t.Errorf("metrics lack %q", line)
		}
	}
}
