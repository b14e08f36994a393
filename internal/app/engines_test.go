package app_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/esdbstore"
	"github.com/icpservice/icp/events/esdbstore/esdbtest"
	"github.com/icpservice/icp/projections"
	"github.com/icpservice/icp/projections/mongomodel"
	"github.com/icpservice/icp/projections/mongomodel/mongotest"
)

// The crash test again, with icpd on its production adapters. The servers
// run in this test process, so they survive the SIGKILLs of the icpd child
// as a real server would: the in-process MongoDB-wire server (FerretDB) for
// the read model, the in-process EventStoreDB gRPC server for the event
// store. Neither models a real server's durability; what these tests show
// is that icpd itself loses and repeats nothing when it is killed between
// its writes to them.

func TestKilledMidStreamLosesNoAcknowledgedCreateWithMongoDBReadModelOnInProcessFerretDB(t *testing.T) {
	t.Parallel()
	killMidStream(t, onMongoDB(mongotest.Start(t)))
}

// TestKilledMidStreamLosesNoAcknowledgedCreateWithRealMongoDBReadModel uses a
// database of its own on the server given in ICP_TEST_MONGO_URI and drops
// it afterwards.
func TestKilledMidStreamLosesNoAcknowledgedCreateWithRealMongoDBReadModel(t *testing.T) {
	t.Parallel()
	killMidStream(t, onMongoDB(ownDatabase(t, mongotest.RealURI(t))))
}

func TestKilledMidStreamLosesNoAcknowledgedCreateWithEventStoreDBOnInProcessGRPCServer(t *testing.T) {
	t.Parallel()
	killMidStream(t, onEventStoreDB(esdbtest.Start(t).ConnString()))
}

// ownDatabase returns uri naming a new database of its own, dropped when the
// test ends.
func ownDatabase(t *testing.T, uri string) string {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatalf("%s: %v", mongotest.RealMongoEnv, err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	db := "icpcrash_" + hex.EncodeToString(b)
	u.Path = "/" + db
	t.Cleanup(func() {
		c, err := mongo.Connect(options.Client().ApplyURI(uri))
		if err != nil {
			t.Errorf("connect to drop %s: %v", db, err)
			return
		}
		defer func() { _ = c.Disconnect(context.Background()) }()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Database(db).Drop(ctx); err != nil {
			t.Errorf("drop %s: %v", db, err)
		}
	})
	return u.String()
}

// onMongoDB keeps the read model at uri, the event store embedded.
func onMongoDB(uri string) backing {
	b := embedded
	b.flags = append(b.flags, "--read-model="+uri)
	// FerretDB inserts slowly, and each create waits for the read model;
	// creates are still in flight at each kill.
	b.perKill = 30
	b.openModel = func(t *testing.T, _ string) projections.ReadModel {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// FerretDB scans a collection for guarded writes; under -race on a
		// shared machine one call can take seconds.
		m, err := mongomodel.Open(ctx, uri, mongomodel.Options{OpTimeout: 20 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close() })
		return m
	}
	return b
}

// onEventStoreDB keeps the events at the EventStoreDB of conn, the read model
// embedded.
func onEventStoreDB(conn string) backing {
	b := embedded
	b.flags = append(b.flags, "--event-store="+conn)
	b.openStore = func(t *testing.T, _ string) events.Store {
		st, err := esdbstore.Open(context.Background(), conn, esdbstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	return b
}
