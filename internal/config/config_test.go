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
	c := parse(t, []string{"--dev", "--addr=0.0.0.0:8080", "--data-dir=", "--max-body-bytes=10", "--consistency-wait=-1s", "--auth-authorized-parties=not-an-origin", "--memory-limit-mib=-1"}, nil)
	err := c.Validate()
	if err == nil {
		t.Fatal("invalid configuration accepted")
	}
	for _, want := range []string{"non-loopback", "--data-dir", "--max-body-bytes", "--consistency-wait", "not-an-origin", "--memory-limit-mib"} {
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
