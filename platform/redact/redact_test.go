package redact_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/icpservice/icp/platform/redact"
)

const password = "s3cr3t-P@ss"

func TestURLMasksCredentialsParsedOrNot(t *testing.T) {
	for raw, want := range map[string]string{
		"esdb://admin:s3cr3t@eventstore:2113?tls=true":        "esdb://admin:xxxxx@eventstore:2113?tls=true",
		"mongodb://icp:s3cr3t@mongo:27017/icp?replicaSet=rs0": "mongodb://icp:xxxxx@mongo:27017/icp?replicaSet=rs0",
		"nats://nats:4222":                                              "nats://nats:4222",
		"http://otel:4318/v1/traces?token=abc123":                       "http://otel:4318/v1/traces?token=xxxxx",
		"mongodb://h/?authMechanismProperties=AWS_SESSION_TOKEN:abc123": "mongodb://h/?authMechanismProperties=xxxxx",
		"nats://user:pa ss%zz@host:4222":                                "nats://xxxxx@host:4222", // does not parse
		"user:s3cr3t@host":                                              "xxxxx@host",
	} {
		if got := redact.URL(raw); got != want {
			t.Errorf("URL(%q) = %q, want %q", raw, got, want)
		}
	}
	if got, want := redact.URLs("nats://a:s3cr3t@n1:4222, nats://b:0th3r@n2:4222"), "nats://a:xxxxx@n1:4222,nats://b:xxxxx@n2:4222"; got != want {
		t.Errorf("URLs = %q, want %q", got, want)
	}
}

func TestScrubberMasksSecretsInAnyText(t *testing.T) {
	s := redact.NewScrubber("mongodb://icp:"+password+"@mongo:27017/icp", "", "nats://n:0th3r-pw@a:4222,nats://m:pw@b:4222")
	if s == nil {
		t.Fatal("no scrubber for URLs with credentials")
	}
	// A client library's error that embeds the URL, or the decoded password.
	err := fmt.Errorf("read model: %w", errors.New(`error parsing uri "mongodb://icp:`+password+`@mongo:27017/icp": auth failed for s3cr3t-P@ss`))
	clean := s.Error(err)
	if strings.Contains(clean.Error(), password) || strings.Contains(clean.Error(), "0th3r-pw") {
		t.Fatalf("error still carries a password: %v", clean)
	}
	if errors.Unwrap(clean) != err {
		t.Error("the scrubbed error does not wrap the original")
	}
	// A short password is masked with its user name, not wherever its
	// letters appear.
	if got := s.String("nats://m:pw@b:4222 upwards"); got != "nats://xxxxx@b:4222 upwards" {
		t.Errorf("short password: %q", got)
	}
	if redact.NewScrubber("nats://a:4222", "", "esdb://h:2113?tls=false") != nil {
		t.Error("a scrubber for URLs without credentials")
	}
	var none *redact.Scrubber
	if none.String("x") != "x" || none.Error(nil) != nil {
		t.Error("a nil scrubber changed its input")
	}
}

func TestHandlerMasksSecretsInEveryPartOfALine(t *testing.T) {
	s := redact.NewScrubber("esdb://admin:" + password + "@es:2113")
	var buf bytes.Buffer
	log := slog.New(s.Handler(slog.NewJSONHandler(&buf, nil))).With("conn", "esdb://admin:"+password+"@es:2113")
	log.Info("dialing esdb://admin:"+password+"@es:2113",
		"err", errors.New("connect esdb://admin:"+password+"@es:2113: refused"),
		slog.Group("cfg", "url", "esdb://admin:"+password+"@es:2113", "n", 3),
		"any", struct{ URL string }{"esdb://admin:" + password + "@es:2113"},
		"count", 7)
	out := buf.String()
	if strings.Contains(out, password) {
		t.Fatalf("log line carries the password: %s", out)
	}
	if !strings.Contains(out, `"count":7`) || !strings.Contains(out, `"n":3`) || !strings.Contains(out, `"esdb://xxxxx@es:2113"`) {
		t.Errorf("log line lost its other fields: %s", out)
	}
}
