package app_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/icpservice/icp/api/auth"
	"github.com/icpservice/icp/internal/app"
	"github.com/icpservice/icp/internal/config"
)

// runApp starts the whole service with the command-line args, running until
// the test ends; then it stops it and fails the test if Run returned an
// error. It fails the test at once if the configuration or the start fails.
func runApp(t *testing.T, args ...string) *app.App {
	t.Helper()
	cfg, err := config.Load(args)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return a
}

// devToken mints a development token of user with the key of icpd --dev's
// data directory dir (created there if it is not yet), valid for an hour.
func devToken(t *testing.T, dir, user string) string {
	t.Helper()
	key, err := auth.LoadOrCreateDevKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	token, err := key.Mint(auth.DevClaims{UserID: user, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return token
}
