package mongomodel_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/icpservice/icp/projections"
	"github.com/icpservice/icp/projections/mongomodel"
	"github.com/icpservice/icp/projections/mongomodel/mongotest"
	"github.com/icpservice/icp/projections/readmodeltest"
)

// Differences between FerretDB (v1.24, SQLite backend) and MongoDB that
// touch what the adapter uses, and why the tests still mean something:
//
//   - FerretDB accepts and ignores read and write concerns and has no
//     replica set: majority reads and writes are only exercised for real
//     against MongoDB (TestConformanceOnRealMongoDB).
//   - FerretDB pushes down to SQLite only a filter that is exactly {_id: x}:
//     the version-guarded replaces and the list query scan the collection,
//     and indexes are created but barely used. Speed measured here says
//     nothing about MongoDB's.
//   - FerretDB may reorder a document's fields; the adapter never relies on
//     field order (the ICP's JSON is a binary field, compared by bytes).
//
// Nothing in the adapter works around a FerretDB quirk.

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func freshDatabase() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "icptest_" + hex.EncodeToString(b)
}

// open opens a read model at uri, on its own new database unless opts names
// one, closed when the test ends.
func open(t *testing.T, uri string, opts mongomodel.Options) *mongomodel.Model {
	t.Helper()
	if opts.Database == "" {
		opts.Database = freshDatabase()
	}
	m, err := mongomodel.Open(testCtx(t), uri, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// rawClient is a plain driver client, to look at what the adapter stored.
func rawClient(t *testing.T, uri string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

func dropDatabase(t *testing.T, uri, db string) {
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
}

// ferretTimeout replaces the 5s default OpTimeout on FerretDB: it scans the
// collection for every version-guarded replace, which under -race on a
// shared machine can make one coalesced bulk write take seconds.
const ferretTimeout = 20 * time.Second

// conformance runs the suite with a new database per case; drop removes it
// afterwards (FerretDB's files go with the test's temporary directory).
func conformance(t *testing.T, uri string, drop bool, opts mongomodel.Options) {
	readmodeltest.Run(t, func(t *testing.T) projections.ReadModel {
		o := opts
		o.Database = freshDatabase()
		if drop {
			t.Cleanup(func() { dropDatabase(t, uri, o.Database) })
		}
		return open(t, uri, o)
	})
}

func TestConformanceOnFerretDB(t *testing.T) {
	conformance(t, mongotest.Start(t), false, mongomodel.Options{OpTimeout: ferretTimeout})
}

func TestConformanceOnRealMongoDB(t *testing.T) {
	conformance(t, mongotest.RealURI(t), true, mongomodel.Options{})
}

func view(id string, version uint64, doc string, users ...string) projections.View {
	return projections.View{
		ID: id, Tenant: "org_a", Version: version, Position: 7,
		UserIDs: users, Doc: []byte(doc), CreatedBy: "user_creator",
	}
}

func mustApply(t *testing.T, m projections.ReadModel, views ...projections.View) []projections.Outcome {
	t.Helper()
	out, err := m.Apply(testCtx(t), views)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return out
}

func wantOutcomes(t *testing.T, got []projections.Outcome, want ...projections.Outcome) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("outcomes %+v, want %+v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("outcomes %+v, want %+v", got, want)
		}
	}
}

// freePort returns a loopback address nothing listens on.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

func TestOpenUnreachableIsUnavailable(t *testing.T) {
	uri := "mongodb://" + freePort(t) + "/icp"
	start := time.Now()
	_, err := mongomodel.Open(testCtx(t), uri, mongomodel.Options{OpTimeout: 300 * time.Millisecond})
	if !errors.Is(err, projections.ErrUnavailable) {
		t.Fatalf("Open on a closed port: err = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Open took %v to report an unreachable server, OpTimeout is 300ms", d)
	}
}

func TestLazyOpenWorksOnceServerIsUp_OnFerretDB(t *testing.T) {
	addr := freePort(t)
	// Frequent heartbeats let the driver notice the server soon after it
	// comes up.
	uri := "mongodb://" + addr + "/?heartbeatFrequencyMS=500"
	m := open(t, uri, mongomodel.Options{Lazy: true, OpTimeout: 300 * time.Millisecond})
	if err := m.Ping(testCtx(t)); !errors.Is(err, projections.ErrUnavailable) {
		t.Fatalf("Ping before the server is up: err = %v, want ErrUnavailable", err)
	}
	id := uuid.NewString()
	if _, err := m.Apply(testCtx(t), []projections.View{view(id, 1, `{"a":1}`, "user_1")}); !errors.Is(err, projections.ErrUnavailable) {
		t.Fatalf("Apply before the server is up: err = %v, want ErrUnavailable", err)
	}

	mongotest.StartAt(t, addr)
	// Disconnect before the server stops, or it waits for our connections.
	t.Cleanup(func() { _ = m.Close() })
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := m.Ping(testCtx(t))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Ping after the server came up: %v", err)
		}
	}
	wantOutcomes(t, mustApply(t, m, view(id, 1, `{"a":1}`, "user_1")), projections.Outcome{Applied: true})
	if got, err := m.Get(testCtx(t), id); err != nil || string(got.Doc) != `{"a":1}` {
		t.Fatalf("Get = %+v, %v", got, err)
	}
}

func TestInvalidConfigurationIsNotUnavailable(t *testing.T) {
	for name, c := range map[string]struct {
		uri  string
		opts mongomodel.Options
	}{
		"not a mongodb uri":    {uri: "http://localhost:27017", opts: mongomodel.Options{}},
		"negative timeout":     {uri: "mongodb://localhost:1/icp", opts: mongomodel.Options{OpTimeout: -1}},
		"database with a dot":  {uri: "mongodb://localhost:1/icp", opts: mongomodel.Options{Database: "a.b"}},
		"poll bounds reversed": {uri: "mongodb://localhost:1/icp", opts: mongomodel.Options{PollMin: time.Second, PollMax: time.Millisecond}},
		"system collection":    {uri: "mongodb://localhost:1/icp", opts: mongomodel.Options{Collection: "system.views"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := mongomodel.Open(testCtx(t), c.uri, c.opts)
			if err == nil || errors.Is(err, projections.ErrUnavailable) {
				t.Fatalf("Open: err = %v, want a configuration error", err)
			}
		})
	}
}

// TestStoredShape_OnFerretDB pins the stored document that operators query
// and that the indexes serve: the ICP's JSON as exact bytes in a binary
// field, the queried fields beside it, tombstones without doc and members.
func TestStoredShape_OnFerretDB(t *testing.T) {
	uri := mongotest.Start(t)
	db := freshDatabase()
	m := open(t, uri, mongomodel.Options{Database: db})
	// Opening again on the same collection finds the indexes in place.
	open(t, uri, mongomodel.Options{Database: db})

	id := uuid.NewString()
	doc := `{"filters":{"a.b":1,"$gt":123456789012345678901234567890}}`
	mustApply(t, m, view(id, 1, doc, "user_1", "user_2"))
	coll := rawClient(t, uri).Database(db).Collection(mongomodel.DefaultCollection)

	var live bson.M
	if err := coll.FindOne(testCtx(t), bson.D{{Key: "_id", Value: id}}).Decode(&live); err != nil {
		t.Fatal(err)
	}
	bin, ok := live["doc"].(bson.Binary)
	if !ok || !bytes.Equal(bin.Data, []byte(doc)) {
		t.Fatalf("stored doc = %#v, want the exact JSON bytes as binary", live["doc"])
	}
	if live["tenant"] != "org_a" || live["version"] != int64(1) || live["position"] != int64(7) || live["deleted"] != false {
		t.Fatalf("stored fields = %v", live)
	}
	if members, ok := live["members"].(bson.A); !ok || len(members) != 2 || members[0] != "user_1" || members[1] != "user_2" {
		t.Fatalf("stored members = %#v", live["members"])
	}

	tomb := projections.View{ID: id, Tenant: "org_a", Version: 2, Position: 7, Deleted: true, CreatedBy: "user_creator"}
	mustApply(t, m, tomb)
	var dead bson.M
	if err := coll.FindOne(testCtx(t), bson.D{{Key: "_id", Value: id}}).Decode(&dead); err != nil {
		t.Fatal(err)
	}
	if _, has := dead["doc"]; has {
		t.Fatalf("tombstone keeps its doc: %v", dead)
	}
	if _, has := dead["members"]; has {
		t.Fatalf("tombstone keeps its members: %v", dead)
	}
	if dead["deleted"] != true || dead["version"] != int64(2) || dead["tenant"] != "org_a" || dead["position"] != int64(7) {
		t.Fatalf("tombstone fields = %v", dead)
	}

	specs, err := coll.Indexes().ListSpecifications(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, s := range specs {
		if s.Name == mongomodel.ListIndex {
			found = true
		}
	}
	if !found {
		t.Fatalf("no list index among %v", specs)
	}
}

func TestRedeliveredCreatesReportStoredVersion_OnFerretDB(t *testing.T) {
	m := open(t, mongotest.Start(t), mongomodel.Options{})
	a, b, c := uuid.NewString(), uuid.NewString(), uuid.NewString()
	mustApply(t, m, view(a, 1, `{"n":"a"}`, "user_1"), view(c, 1, `{"n":"c"}`, "user_1"), view(c, 2, `{"n":"c2"}`, "user_1"))
	out := mustApply(t, m, view(a, 1, `{"n":"a-again"}`, "user_1"), view(b, 1, `{"n":"b"}`, "user_1"), view(c, 1, `{"n":"c-again"}`, "user_1"))
	wantOutcomes(t, out,
		projections.Outcome{Applied: false, Stored: 1},
		projections.Outcome{Applied: true, Stored: 0},
		projections.Outcome{Applied: false, Stored: 2})
	if got, _ := m.Get(testCtx(t), a); string(got.Doc) != `{"n":"a"}` {
		t.Fatalf("a redelivered create overwrote the doc: %s", got.Doc)
	}
}

func TestInvalidViewsAreRefusedBeforeWriting_OnFerretDB(t *testing.T) {
	m := open(t, mongotest.Start(t), mongomodel.Options{})
	good := view(uuid.NewString(), 1, `{"ok":true}`, "user_1")
	for name, bad := range map[string]projections.View{
		"no id":        view("", 1, `{}`),
		"no tenant":    {ID: uuid.NewString(), Version: 1, Doc: []byte(`{}`)},
		"version 0":    view(uuid.NewString(), 0, `{}`),
		"invalid json": view(uuid.NewString(), 1, `{"a":`),
		"no doc":       view(uuid.NewString(), 1, ``),
		"empty member": view(uuid.NewString(), 1, `{}`, ""),
		"huge version": view(uuid.NewString(), 1<<63, `{}`),
		// Over MongoDB's 16 MiB document limit with the other fields.
		"huge doc": view(uuid.NewString(), 1, `"`+strings.Repeat("a", 15<<20)+`"`),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := m.Apply(testCtx(t), []projections.View{good, bad})
			if !errors.Is(err, projections.ErrRefused) || errors.Is(err, projections.ErrUnavailable) {
				t.Fatalf("Apply: err = %v, want a refusal, not an unavailability", err)
			}
			if !projections.RefusedView(err, bad.ID) || (bad.ID != good.ID && projections.RefusedView(err, good.ID)) {
				t.Fatalf("Apply: refusal %v does not name the refused view", err)
			}
		})
	}
	if _, err := m.Get(testCtx(t), good.ID); !errors.Is(err, projections.ErrNotFound) {
		t.Fatalf("a batch refused for one bad view wrote another: err = %v", err)
	}
}

// TestWaitForSeesAnotherWriter_OnFerretDB: the waiter's Model never wrote
// the version, so only a read of the stored data can end the wait.
func TestWaitForSeesAnotherWriter_OnFerretDB(t *testing.T) {
	uri := mongotest.Start(t)
	db := freshDatabase()
	writer := open(t, uri, mongomodel.Options{Database: db})
	waiter := open(t, uri, mongomodel.Options{Database: db})
	id := uuid.NewString()
	done := make(chan error, 1)
	go func() { done <- waiter.WaitFor(testCtx(t), id, 2) }()
	mustApply(t, writer, view(id, 1, `{}`, "user_1"))
	select {
	case err := <-done:
		t.Fatalf("WaitFor(2) returned %v with version 1 stored", err)
	default:
	}
	mustApply(t, writer, view(id, 2, `{}`, "user_1"))
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("WaitFor: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitFor did not see another Model's write")
	}
}

func TestClosedModelIsUnavailable_OnFerretDB(t *testing.T) {
	m := open(t, mongotest.Start(t), mongomodel.Options{})
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := testCtx(t)
	if _, err := m.Apply(ctx, []projections.View{view(uuid.NewString(), 1, `{}`)}); !errors.Is(err, projections.ErrUnavailable) {
		t.Fatalf("Apply after Close: %v", err)
	}
	if _, err := m.Get(ctx, uuid.NewString()); !errors.Is(err, projections.ErrUnavailable) {
		t.Fatalf("Get after Close: %v", err)
	}
	if err := m.Ping(ctx); !errors.Is(err, projections.ErrUnavailable) {
		t.Fatalf("Ping after Close: %v", err)
	}
	if err := m.WaitFor(ctx, uuid.NewString(), 1); !errors.Is(err, projections.ErrUnavailable) {
		t.Fatalf("WaitFor after Close: %v", err)
	}
}
