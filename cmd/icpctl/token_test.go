package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/icpservice/icp/api/auth"
)

func TestTokenPrintsAVerifiableToken(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	var stdout, stderr bytes.Buffer
	code := run([]string{"token", "--data-dir", dir, "--user", "user_alice", "--org", "org_acme", "--admin", "--ttl", "10m"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	out := stdout.String()
	token, ok := strings.CutSuffix(out, "\n")
	if !ok || strings.ContainsAny(token, " \n") || token == "" {
		t.Fatalf("stdout %q: want the token and one newline", out)
	}
	if !strings.Contains(stderr.String(), "created the development key") {
		t.Fatalf("stderr %q: want a note that the key was created", stderr.String())
	}

	key, err := auth.LoadOrCreateDevKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	p, err := auth.NewDevVerifier(key, auth.DevConfig{}).Verify(context.Background(), token)
	if err != nil {
		t.Fatalf("the printed token does not verify: %v", err)
	}
	want := auth.Principal{UserID: "user_alice", OrgID: "org_acme", OrgRole: "admin", Admin: true}
	if p != want {
		t.Fatalf("principal %+v, want %+v", p, want)
	}

	// Once the key exists, the command prints the token and nothing else.
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"token", "--data-dir", dir, "--user", "user_bob"}, &stdout, &stderr); code != 0 || stderr.Len() != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	p, err = auth.NewDevVerifier(key, auth.DevConfig{}).Verify(context.Background(), strings.TrimSuffix(stdout.String(), "\n"))
	if err != nil || p != (auth.Principal{UserID: "user_bob"}) || p.Tenant() != "personal:user_bob" {
		t.Fatalf("second token: %+v, %v", p, err)
	}
}

func TestTokenRefusesInvalidFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no user", []string{}, "--user is required"},
		{"zero ttl", []string{"--user", "u", "--ttl", "0s"}, "ttl 0s"},
		{"negative ttl", []string{"--user", "u", "--ttl=-5m"}, "ttl -5m0s"},
		{"ttl over a week", []string{"--user", "u", "--ttl", "200h"}, "at most 168h"},
		{"unparsable ttl", []string{"--user", "u", "--ttl", "soon"}, "--ttl"},
		{"admin without org", []string{"--user", "u", "--admin"}, "admin needs an org"},
		{"user with spaces", []string{"--user", "a b"}, "user \"a b\""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"token", "--data-dir", dir}, tc.args...), &stdout, &stderr)
			if code == 0 {
				t.Fatalf("exit 0, stdout %q", stdout.String())
			}
			if stdout.Len() != 0 {
				t.Fatalf("stdout %q: want nothing that could pass for a token", stdout.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("stderr %q: want it to mention %q", stderr.String(), tc.want)
			}
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("a refused request created %s", dir)
			}
		})
	}
}

func TestHelpExitsZero(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"token", "--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(stdout.String(), "--user") {
		t.Fatalf("help %q does not list --user", stdout.String())
	}
}
