package app_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/icpservice/icp/internal/app"
	"github.com/icpservice/icp/internal/config"
	"github.com/icpservice/icp/platform/datadir"
)

// A start that fails late, after the stores, the embedded NATS server, the
// relay and the projector are up, closes all of them again: the same data
// directory and API address start cleanly right after, with nothing held by
// the failed start. The failure is a config.Fault naming the setting.
func TestFailedStartClosesWhatItOpened(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, datadir.DevKeyFile)
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg, err := config.Load([]string{"--dev", "--addr=" + addr, "--admin-addr=", "--data-dir=" + dir, "--log-level=warn"})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	a, err := app.New(context.Background(), cfg, log)
	var fault *config.Fault
	if a != nil || !errors.As(err, &fault) || fault.Flag != "data-dir" {
		t.Fatalf("New with an unreadable dev key: %v, %v; want a data-dir fault", a, err)
	}

	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	a, err = app.New(context.Background(), cfg, log)
	if err != nil {
		t.Fatalf("New after the failed start: %v (something stayed open)", err)
	}
	if a.Addr() != addr {
		t.Fatalf("listening on %s, want %s", a.Addr(), addr)
	}
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}
}
