package api_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/esdbstore"
	"github.com/icpservice/icp/events/esdbstore/esdbtest"
	"github.com/icpservice/icp/platform/datadir"
	"github.com/icpservice/icp/projections"
	"github.com/icpservice/icp/projections/mongomodel"
	"github.com/icpservice/icp/projections/mongomodel/mongotest"
)

// The end-to-end tests again, with icpd on its production adapters: the
// EventStoreDB event store (the relay and the projector following it) and
// the MongoDB read model. Where no real server can run, each engine is
// reached over its real wire protocol through an in-process server
// (esdbtest's gRPC server; FerretDB, which says nothing about MongoDB's
// majority reads or speed); the same tests run against real servers when
// their addresses are given, and say so when skipped. Afterwards each test
// checks that the data really lives on the engine it names.

// realESDBEnv names the environment variable holding the connection string
// of a real EventStoreDB, e.g. esdb://localhost:2113?tls=false.
const realESDBEnv = "ICP_TEST_ESDB_URL"

func TestEndToEndOnEventStoreDBInProcessGRPCServer(t *testing.T) {
	runOn(t, engines{eventStore: esdbtest.Start(t).ConnString()})
}

func TestEndToEndOnMongoDBInProcessFerretDB(t *testing.T) {
	runOn(t, engines{readModel: mongotest.Start(t)})
}

func TestEndToEndOnEventStoreDBInProcessGRPCServerAndMongoDBInProcessFerretDB(t *testing.T) {
	runOn(t, engines{eventStore: esdbtest.Start(t).ConnString(), readModel: mongotest.Start(t)})
}

func TestEndToEndOnRealEventStoreDB(t *testing.T) {
	runOn(t, engines{eventStore: realESDB(t), orgSuffix: "_" + randomName()})
}

func TestEndToEndOnRealMongoDB(t *testing.T) {
	runOn(t, engines{readModel: ownDatabase(t, mongotest.RealURI(t))})
}

func TestEndToEndOnRealEventStoreDBAndRealMongoDB(t *testing.T) {
	conn := realESDB(t)
	runOn(t, engines{eventStore: conn, readModel: ownDatabase(t, mongotest.RealURI(t)), orgSuffix: "_" + randomName()})
}

// runOn runs endToEnd on a service using e's engines, then stops it and
// checks that the first ICP it created is where e says: in the EventStoreDB
// stream (folding to the ICP served) and in the MongoDB read model (as the
// bytes served), with no embedded SQLite file for either part.
func runOn(t *testing.T, e engines) {
	t.Helper()
	s := startServiceOn(t, e)
	id, body := endToEnd(t, s)
	s.stop()
	if id == "" {
		t.Fatal("no ICP was created")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if e.eventStore != "" {
		assertNoFile(t, s.dir, datadir.EventsFile)
		st, err := esdbstore.Open(ctx, e.eventStore, esdbstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		recs, err := st.ReadStream(ctx, events.StreamID(id), 0)
		if err != nil {
			t.Fatalf("EventStoreDB stream of %s: %v", id, err)
		}
		var state *domain.State
		for _, r := range recs {
			if state, err = events.EvolveRecorded(state, r); err != nil {
				t.Fatal(err)
			}
		}
		v, err := projections.ViewOf(state)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1 || string(v.Doc) != body {
			t.Errorf("EventStoreDB holds %d events for %s, folding to %s\nserved %s", len(recs), id, v.Doc, body)
		}
	}
	if e.readModel != "" {
		assertNoFile(t, s.dir, datadir.ReadModelFile)
		m, err := mongomodel.Open(ctx, e.readModel, mongomodel.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		v, err := m.Get(ctx, id)
		if err != nil {
			t.Fatalf("MongoDB read model, %s: %v", id, err)
		}
		if v.Version != 1 || string(v.Doc) != body {
			t.Errorf("MongoDB holds %s at version %d as %s\nserved %s", id, v.Version, v.Doc, body)
		}
	}
}

func assertNoFile(t *testing.T, dir, name string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the data directory holds %s (%v): the embedded store was used", name, err)
	}
}

// realESDB returns the connection string of a real EventStoreDB given in
// ICP_TEST_ESDB_URL, or skips the test saying that it was not verified
// against one. Such a server may hold the events of earlier runs: tests on
// it give their organisations a suffix of their own.
func realESDB(t *testing.T) string {
	t.Helper()
	conn := os.Getenv(realESDBEnv)
	if conn == "" {
		t.Skip("not verified against a real EventStoreDB: set " + realESDBEnv)
	}
	return conn
}

func randomName() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ownDatabase returns uri naming a new database of its own, dropped when the
// test ends (after a service started later has stopped).
func ownDatabase(t *testing.T, uri string) string {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatalf("%s: %v", mongotest.RealMongoEnv, err)
	}
	db := "icpe2e_" + randomName()
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
