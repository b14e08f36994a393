package api_test

import (
	"context"
	"testing"
	"time"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/esdbstore"
	"github.com/icpservice/icp/events/esdbstore/esdbtest"
	"github.com/icpservice/icp/platform/datadir"
)

// The lifecycle test again with icpd on the EventStoreDB event store: over
// real gRPC against the in-process server, and against a real server when
// ICP_TEST_ESDB_URL names one. The server is started before the service and
// outlives it, so the fold is read from it after the service has stopped.

func TestTheLifecycleOnEventStoreDBInProcessGRPCServer(t *testing.T) {
	conn := esdbtest.Start(t).ConnString()
	lifecycle(t, engines{eventStore: conn}, esdbAt(conn))
}

func TestTheLifecycleOnRealEventStoreDB(t *testing.T) {
	conn := realESDB(t)
	lifecycle(t, engines{eventStore: conn, orgSuffix: "_" + randomName()}, esdbAt(conn))
}

// esdbAt opens the EventStoreDB store at conn, after checking that the
// service kept no embedded event store beside it.
func esdbAt(conn string) func(t *testing.T, s *service) events.Store {
	return func(t *testing.T, s *service) events.Store {
		t.Helper()
		assertNoFile(t, s.dir, datadir.EventsFile)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st, err := esdbstore.Open(ctx, conn, esdbstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
}
