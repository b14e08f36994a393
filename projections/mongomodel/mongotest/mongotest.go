// Package mongotest runs an in-process MongoDB-wire server for tests: FerretDB
// on its SQLite backend, listening on loopback. Only tests import it, so the
// icpd binary does not link FerretDB.
//
// FerretDB speaks MongoDB's wire protocol but is not MongoDB: it ignores read
// and write concerns, has no replica set, no change streams, and its speed
// says nothing about MongoDB's. Tests that pass here are checked against a
// real MongoDB by setting ICP_TEST_MONGO_URI (see RealURI).
package mongotest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// RealMongoEnv names the environment variable holding the URI of a real
// MongoDB (a replica set, for majority reads) to run the same tests against.
const RealMongoEnv = "ICP_TEST_MONGO_URI"

// RealURI returns the URI of a real MongoDB given in ICP_TEST_MONGO_URI, or
// skips the test saying that it was not verified against one.
func RealURI(t testing.TB) string {
	t.Helper()
	uri := os.Getenv(RealMongoEnv)
	if uri == "" {
		t.Skip("not verified against a real MongoDB: set " + RealMongoEnv)
	}
	return uri
}

// Start runs FerretDB in-process on 127.0.0.1 at addr ("127.0.0.1:0" picks
// a free port), storing its databases under a temporary directory, and
// returns its MongoDB URI. The server stops when the test ends.
func Start(t testing.TB) string {
	t.Helper()
	return StartAt(t, "127.0.0.1:0")
}

// StartAt is Start on a given loopback address, for tests of a server that
// comes up after its client.
func StartAt(t testing.TB, addr string) string {
	t.Helper()
	dir := t.TempDir()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("mongotest: start FerretDB: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	// MongoDBURI waits until the listener is bound.
	return f.MongoDBURI()
}
