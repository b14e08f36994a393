package config

import (
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"
)

func parse(t *testing.T, args []string, env map[string]string) Config {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var c Config
	p, err := kong.New(&c)
	if err != nil {
		t.Fatal(err)
	}
	// kong runs Validate itself after parsing; only other parse errors
	// are the test's concern here.
	if _, err := p.Parse(args); err != nil && c.Validate() == nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	return c
}

func TestDefaultsAndEnvironmentTwins(t *testing.T) {
	c := parse(t, []string{"--dev"}, nil)
	if c.Addr != "127.0.0.1:8080" || c.DataDir != "./data" || c.ConsistencyWait != 5*time.Second || c.MaxBodyBytes != 1<<20 {
		t.Fatalf("defaults: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("dev defaults must be valid: %v", err)
	}
	if c.StreamMaxBytes != 4<<30 {
		t.Fatalf("ICP_EVENTS size bound %d by default, want 4 GiB", c.StreamMaxBytes)
	}
	if c := parse(t, []string{"--dev"}, map[string]string{"ICP_STREAM_MAX_BYTES": "-1"}); c.StreamMaxBytes != -1 || c.Validate() != nil {
		t.Fatalf("ICP_STREAM_MAX_BYTES=-1 read as %d (valid: %v)", c.StreamMaxBytes, c.Validate())
	}
	t.Run("env", func(t *testing.T) {
		c := parse(t, nil, map[string]string{"ICP_ADDR": "127.0.0.1:9999", "ICP_DATA_DIR": "/tmp/x", "ICP_DEV": "true"})
		if c.Addr != "127.0.0.1:9999" || c.DataDir != "/tmp/x" || !c.Dev {
			t.Fatalf("env twins not read: %+v", c)
		}
	})
	c = parse(t, nil, map[string]string{"ICP_AUTH_JWKS_URL": "https://clerk.example.com/.well-known/jwks.json", "ICP_AUTH_ISSUER": "https://clerk.example.com", "ICP_AUTH_AUTHORIZED_PARTIES": "https://app.example.com,https://admin.example.com"})
	if err := c.Validate(); err != nil {
		t.Fatalf("clerk config must be valid: %v", err)
	}
	if len(c.AuthAuthorizedParties) != 2 {
		t.Fatalf("authorized parties: %v", c.AuthAuthorizedParties)
	}
}

func TestValidateListsEveryProblem(t *testing.T) {
	c := parse(t, []string{"--dev", "--addr=0.0.0.0:8080", "--data-dir=", "--max-body-bytes=10", "--consistency-wait=-1s", "--auth-authorized-parties=not-an-origin", "--memory-limit-mib=-1", "--stream-max-bytes=0"}, nil)
	err := c.Validate()
	if err == nil {
		t.Fatal("invalid configuration accepted")
	}
	for _, want := range []string{"non-loopback", "--data-dir", "--max-body-bytes", "--consistency-wait", "not-an-origin", "--memory-limit-mib", "--stream-max-bytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}

func TestNoAuthenticationSaysHowToChoose(t *testing.T) {
	err := parse(t, nil, nil).Validate()
	if err == nil || !strings.Contains(err.Error(), "--dev") || !strings.Contains(err.Error(), "ICP_AUTH_JWKS_URL") {
		t.Fatalf("want a message naming both choices, got %v", err)
	}
	err = parse(t, []string{"--dev", "--auth-issuer", "https://x"}, nil).Validate()
	if err == nil || !strings.Contains(err.Error(), "exclusive") {
		t.Fatalf("dev plus clerk must be refused, got %v", err)
	}
	err = parse(t, []string{"--auth-issuer", "https://x"}, nil).Validate()
	if err == nil || !strings.Contains(err.Error(), "ICP_AUTH_JWKS_URL is required") {
		t.Fatalf("issuer without JWKS must be refused, got %v", err)
	}
}

// A URL refused by validation is shown without its password.
func TestValidateHidesPasswords(t *testing.T) {
	c := parse(t, []string{"--dev", "--read-model=postgres://icp:hunter2@db/icp", "--nats=http://relay:hunter3@nats:4222", "--event-store=esdb://u:hunter4@"}, nil)
	err := c.Validate()
	if err == nil {
		t.Fatal("invalid URLs accepted")
	}
	for _, secret := range []string{"hunter2", "hunter3", "hunter4"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("the error shows a password:\n%v", err)
		}
	}
	if !strings.Contains(err.Error(), "--read-model") || !strings.Contains(err.Error(), "--nats") || !strings.Contains(err.Error(), "--event-store") {
		t.Errorf("the error does not name every refused URL:\n%v", err)
	}
}

// The embedded NATS server listens on loopback only, by default on the
// documented 127.0.0.1:4222; NATS credentials apply to --nats only.
func TestEmbeddedNATSAddressAndCredentials(t *testing.T) {
	if c := parse(t, []string{"--dev"}, nil); c.EmbeddedNATSAddr != "127.0.0.1:4222" {
		t.Fatalf("default embedded NATS address %q", c.EmbeddedNATSAddr)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--embedded-nats-addr=0.0.0.0:4222"}, "non-loopback"},
		{[]string{"--embedded-nats-addr=nats.example.com:4222"}, "non-loopback"},
		{[]string{"--embedded-nats-addr=127.0.0.1"}, "want host:port"},
		{[]string{"--nats-creds=/x.creds"}, "apply to --nats"},
		{[]string{"--nats=nats://n:4222", "--nats-creds=/x.creds", "--nats-user=relay"}, "exclusive"},
		{[]string{"--nats=nats://n:4222", "--nats-password=pw"}, "needs --nats-user"},
		{[]string{"--nats=nats://n:4222", "--nats-creds=/no/such.creds"}, "no such file"},
	} {
		err := parse(t, append([]string{"--dev"}, tc.args...), nil).Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
	if err := parse(t, []string{"--dev", "--embedded-nats-addr=[::1]:4333"}, nil).Validate(); err != nil {
		t.Errorf("IPv6 loopback refused: %v", err)
	}
	if err := parse(t, []string{"--dev", "--nats=nats://n:4222", "--roles=relay", "--nats-user=relay"}, map[string]string{"ICP_NATS_PASSWORD": "pw"}).Validate(); err != nil {
		t.Errorf("user and password from the environment refused: %v", err)
	}
}
