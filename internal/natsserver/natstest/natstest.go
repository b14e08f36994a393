// Package natstest starts the embedded NATS server for tests of the parts
// that run on the bus: a real JetStream server, never a mock, stored under
// the test's own directory and shut down when the test ends. It is imported
// by tests only.
package natstest

import (
	"path/filepath"
	"testing"

	"github.com/icpservice/icp/internal/natsserver"
)

// Start starts a server without authentication whose JetStream storage is
// dir/nats, and shuts it down when t ends. It fails t when the server does
// not start.
func Start(t testing.TB, dir string) *natsserver.Server {
	t.Helper()
	srv, err := natsserver.Start(natsserver.Config{StoreDir: filepath.Join(dir, "nats")})
	if err != nil {
		t.Fatalf("start NATS: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}
