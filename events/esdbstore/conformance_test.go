package esdbstore_test

import (
	"context"
	"os"
	"testing"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/esdbstore"
	"github.com/icpservice/icp/events/esdbstore/esdbtest"
	"github.com/icpservice/icp/events/storetest"
)

// The conformance suite names its streams "storetest-<uuid>"; the store
// looks at them in $all as it looks at "icp-" streams in production.
const suitePrefix = "storetest-"

// TestConformanceOverGRPCAgainstInProcessServer runs the event store suite
// through the unmodified EventStoreDB client, over gRPC, against the
// in-process test server (esdbtest), not against a real EventStoreDB.
func TestConformanceOverGRPCAgainstInProcessServer(t *testing.T) {
	srv := esdbtest.Start(t)
	storetest.Run(t, func(t *testing.T) events.Store {
		return openStore(t, srv.ConnString(), esdbstore.Options{StreamPrefix: suitePrefix})
	})
}

// TestConformanceAgainstRealServer runs the suite against the EventStoreDB
// whose connection string is in ICP_TEST_ESDB_URL, e.g.
// "esdb://localhost:2113?tls=false".
func TestConformanceAgainstRealServer(t *testing.T) {
	url := os.Getenv("ICP_TEST_ESDB_URL")
	if url == "" {
		t.Skip("not verified against a real EventStoreDB: set ICP_TEST_ESDB_URL")
	}
	storetest.Run(t, func(t *testing.T) events.Store {
		return openStore(t, url, esdbstore.Options{StreamPrefix: suitePrefix})
	})
}

func openStore(t testing.TB, connString string, opts esdbstore.Options) *esdbstore.Store {
	t.Helper()
	s, err := esdbstore.Open(context.Background(), connString, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", connString, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
