// Package mongomodel is the read model on MongoDB: the production engine. It
// passes the conformance suite in projections/readmodeltest.
//
// One document per ICP in one collection:
//
//	{_id: id, tenant, version, position, deleted, createdBy,
//	 members: [user ids], doc: BinData(exact JSON text)}
//
// The ICP's JSON is kept as the exact bytes it was given, in a binary field:
// never as a BSON document, which MongoDB could reject (keys with dots or
// dollars) or alter (integers beyond 2^53, number spelling). The fields the
// read model queries (tenant, members, position, version, deleted) are stored
// beside it. A tombstone keeps id, tenant, version, position, createdBy and
// deleted: true, and has neither doc nor members.
//
// Consistency: writes use majority write concern, reads go to the primary
// with majority read concern, so an acknowledged Apply survives a failover
// and every read sees it. Majority read concern needs a replica set (a
// single-node one is enough); see README.md.
package mongomodel

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"

	"github.com/icpservice/icp/projections"
)

// Defaults of Options.
const (
	DefaultDatabase   = "icp"
	DefaultCollection = "icps"
	DefaultOpTimeout  = 5 * time.Second
	DefaultPollMin    = 5 * time.Millisecond
	DefaultPollMax    = 100 * time.Millisecond
	DefaultMaxBatch   = 1000
)

// Options tune the read model. The zero value is valid.
type Options struct {
	// Database holds the collection. Default: the database named in the
	// URI's path (mongodb://host/icp), else "icp".
	Database string
	// Collection holds one document per ICP (default "icps").
	Collection string
	// OpTimeout bounds every call to the server, including server
	// selection, whatever the caller's context allows (default 5s).
	OpTimeout time.Duration
	// Lazy makes Open return without contacting the server: the first call
	// that reaches it creates the indexes, and until then every call
	// (Ping included) fails with projections.ErrUnavailable. Without Lazy,
	// Open fails with projections.ErrUnavailable when the server cannot be
	// reached within OpTimeout, and the caller retries Open.
	Lazy bool
	// PollMin and PollMax bound WaitFor's backoff between reads of the
	// stored version (defaults 5ms and 100ms). Applies made by this process
	// wake waiters at once.
	PollMin, PollMax time.Duration
	// MaxBatch caps the views of concurrent Apply calls coalesced into one
	// bulk write (default 1000).
	MaxBatch int
}

func (o Options) withDefaults(uriDatabase string) (Options, error) {
	var problems []string
	if o.OpTimeout < 0 {
		problems = append(problems, "OpTimeout must not be negative")
	}
	if o.PollMin < 0 || o.PollMax < 0 {
		problems = append(problems, "PollMin and PollMax must not be negative")
	}
	if o.PollMin > 0 && o.PollMax > 0 && o.PollMin > o.PollMax {
		problems = append(problems, "PollMin must not exceed PollMax")
	}
	if o.MaxBatch < 0 {
		problems = append(problems, "MaxBatch must not be negative")
	}
	if o.Database == "" {
		o.Database = uriDatabase
	}
	if o.Database == "" {
		o.Database = DefaultDatabase
	}
	if o.Collection == "" {
		o.Collection = DefaultCollection
	}
	// MongoDB's own rules for names; checked here so that a typo is a
	// configuration error at start, not a failed write later.
	if strings.ContainsAny(o.Database, `/\. "$`+"\x00") || len(o.Database) > 63 {
		problems = append(problems, fmt.Sprintf("database name %q is not valid in MongoDB", o.Database))
	}
	if strings.HasPrefix(o.Collection, "system.") || strings.ContainsAny(o.Collection, "$\x00") {
		problems = append(problems, fmt.Sprintf("collection name %q is not valid in MongoDB", o.Collection))
	}
	if len(problems) > 0 {
		return Options{}, fmt.Errorf("mongomodel: invalid options: %s", strings.Join(problems, "; "))
	}
	if o.OpTimeout == 0 {
		o.OpTimeout = DefaultOpTimeout
	}
	if o.PollMin == 0 {
		o.PollMin = min(DefaultPollMin, max(o.PollMax, time.Nanosecond))
	}
	if o.PollMax == 0 {
		o.PollMax = max(DefaultPollMax, o.PollMin)
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	return o, nil
}

// Model is the MongoDB read model. It is safe for concurrent use.
type Model struct {
	opts   Options
	client *mongo.Client
	coll   *mongo.Collection // primary, majority read and write concerns

	prepMu   sync.Mutex
	prepared atomic.Bool // indexes exist

	reqs       chan *applyReq
	stop       chan struct{} // closed by Close
	writerDone chan struct{}
	closeOnce  sync.Once
	closeErr   error

	waitMu  sync.Mutex
	waiters map[string][]chan struct{}

	// beforeWrite, when set by tests, runs between a round's read of the
	// stored versions and its bulk write.
	beforeWrite func()
}

var _ projections.ReadModel = (*Model)(nil)

// ErrClosed is returned (wrapped in projections.ErrUnavailable) by calls made
// after Close. It wraps projections.ErrClosed.
var ErrClosed = fmt.Errorf("mongomodel: %w", projections.ErrClosed)

// Open connects to the MongoDB at uri (mongodb:// or mongodb+srv://) and
// makes sure the collection's indexes exist (idempotently).
//
// An invalid uri or Options is an error that does not wrap
// projections.ErrUnavailable: fix the configuration. A server that cannot be
// reached within Options.OpTimeout (or before ctx ends) is an error wrapping
// projections.ErrUnavailable: retry Open later, or set Options.Lazy to get a
// Model at once whose calls fail with projections.ErrUnavailable until the
// server is reachable.
func Open(ctx context.Context, uri string, opts Options) (*Model, error) {
	cs, err := connstring.ParseAndValidate(uri)
	if err != nil {
		return nil, fmt.Errorf("mongomodel: invalid MongoDB URI: %w", err)
	}
	o, err := opts.withDefaults(cs.Database)
	if err != nil {
		return nil, err
	}
	co := options.Client().ApplyURI(uri)
	if err := co.Validate(); err != nil {
		return nil, fmt.Errorf("mongomodel: invalid MongoDB URI: %w", err)
	}
	if !cs.ServerSelectionTimeoutSet {
		co.SetServerSelectionTimeout(o.OpTimeout)
	}
	client, err := mongo.Connect(co) // no I/O: the driver connects in the background
	if err != nil {
		return nil, fmt.Errorf("mongomodel: %w", err)
	}
	// Collection-level concerns override any w= or readConcernLevel= in
	// the URI: the read model's guarantees do not depend on the URI.
	coll := client.Database(o.Database).Collection(o.Collection, options.Collection().
		SetReadPreference(readpref.Primary()).
		SetReadConcern(readconcern.Majority()).
		SetWriteConcern(writeconcern.Majority()))
	m := &Model{
		opts:       o,
		client:     client,
		coll:       coll,
		reqs:       make(chan *applyReq, 4096),
		stop:       make(chan struct{}),
		writerDone: make(chan struct{}),
		waiters:    map[string][]chan struct{}{},
	}
	if !o.Lazy {
		if err := m.ready(ctx); err != nil {
			dctx, cancel := context.WithTimeout(context.Background(), o.OpTimeout)
			defer cancel()
			_ = client.Disconnect(dctx)
			return nil, fmt.Errorf("open %s.%s: %w", o.Database, o.Collection, err)
		}
	}
	go m.runWriter()
	return m, nil
}

// ListIndex is the index List reads: the live ICPs of one tenant and member
// in (position, _id) order, so pages come from the index without a sort in
// memory. Tombstones have no members, so they are not in it.
const ListIndex = "tenant_members_position_id"

var listIndex = mongo.IndexModel{
	Keys: bson.D{
		{Key: "tenant", Value: 1}, {Key: "members", Value: 1},
		{Key: "position", Value: 1}, {Key: "_id", Value: 1},
	},
	Options: options.Index().SetName(ListIndex),
}

// ready creates the indexes once per Model; until it succeeds every call
// tries again, so a Lazy model starts working as soon as the server is up.
func (m *Model) ready(ctx context.Context) error {
	if m.prepared.Load() {
		return nil
	}
	m.prepMu.Lock()
	defer m.prepMu.Unlock()
	if m.prepared.Load() {
		return nil
	}
	ctx, cancel := m.opCtx(ctx)
	defer cancel()
	if _, err := m.coll.Indexes().CreateOne(ctx, listIndex); err != nil {
		return unavailable("create indexes", err)
	}
	m.prepared.Store(true)
	return nil
}

// opCtx bounds one call to the server by OpTimeout.
func (m *Model) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, m.opts.OpTimeout)
}

func unavailable(op string, err error) error {
	return fmt.Errorf("%w: mongomodel %s: %w", projections.ErrUnavailable, op, err)
}

func (m *Model) closed() bool {
	select {
	case <-m.stop:
		return true
	default:
		return false
	}
}

// record is the stored document of one ICP.
type record struct {
	ID        string   `bson:"_id,omitempty"`
	Tenant    string   `bson:"tenant"`
	Version   int64    `bson:"version"`
	Position  int64    `bson:"position"`
	Deleted   bool     `bson:"deleted"`
	CreatedBy string   `bson:"createdBy"`
	Members   []string `bson:"members,omitempty"`
	Doc       []byte   `bson:"doc,omitempty"` // BSON binary: the exact JSON bytes
}

// recordOf is the document stored for v. A live view stores its doc and its
// members (the field is left out when there are none); a tombstone stores
// neither.
func recordOf(v projections.View) record {
	r := record{
		ID: v.ID, Tenant: v.Tenant, Version: int64(v.Version), Position: int64(v.Position),
		Deleted: v.Deleted, CreatedBy: v.CreatedBy,
	}
	if !v.Deleted {
		r.Members = append([]string{}, v.UserIDs...)
		r.Doc = v.Doc
	}
	return r
}

func (r record) view() (projections.View, error) {
	if r.Version < 1 || r.Position < 0 {
		return projections.View{}, fmt.Errorf("stored ICP %s has version %d and position %d", r.ID, r.Version, r.Position)
	}
	if !r.Deleted && len(r.Doc) == 0 {
		return projections.View{}, fmt.Errorf("stored ICP %s is live without a doc", r.ID)
	}
	v := projections.View{
		ID: r.ID, Tenant: r.Tenant, Version: uint64(r.Version), Position: uint64(r.Position),
		Deleted: r.Deleted, CreatedBy: r.CreatedBy,
	}
	if !r.Deleted {
		v.UserIDs = r.Members
		if v.UserIDs == nil {
			v.UserIDs = []string{}
		}
		v.Doc = r.Doc
	}
	return v, nil
}

// Get returns the view of one ICP, tombstones included, read from the
// primary with majority read concern. projections.ErrNotFound when the id
// was never applied.
func (m *Model) Get(ctx context.Context, id string) (projections.View, error) {
	if m.closed() {
		return projections.View{}, unavailable("get", ErrClosed)
	}
	if err := m.ready(ctx); err != nil {
		return projections.View{}, err
	}
	ctx, cancel := m.opCtx(ctx)
	defer cancel()
	var r record
	err := m.coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&r)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return projections.View{}, projections.ErrNotFound
	}
	if err != nil {
		return projections.View{}, unavailable("get", err)
	}
	v, err := r.view()
	if err != nil {
		return projections.View{}, fmt.Errorf("mongomodel get: %w", err)
	}
	return v, nil
}

// List returns the live ICPs of tenant that list user as a member, ordered
// by Position (then id), after the exclusive cursor after, at most limit
// (<= 0: all), read from the primary with majority read concern.
func (m *Model) List(ctx context.Context, tenant, user string, after uint64, limit int) ([]projections.View, error) {
	if m.closed() {
		return nil, unavailable("list", ErrClosed)
	}
	if after >= math.MaxInt64 {
		return []projections.View{}, nil // no stored position is beyond it
	}
	if err := m.ready(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := m.opCtx(ctx)
	defer cancel()
	fo := options.Find().SetSort(listOrder)
	if limit > 0 {
		fo.SetLimit(int64(limit))
	}
	cur, err := m.coll.Find(ctx, listFilter(tenant, user, after), fo)
	if err != nil {
		return nil, unavailable("list", err)
	}
	var recs []record
	if err := cur.All(ctx, &recs); err != nil {
		return nil, unavailable("list", err)
	}
	out := make([]projections.View, 0, len(recs))
	for _, r := range recs {
		v, err := r.view()
		if err != nil {
			return nil, fmt.Errorf("mongomodel list: %w", err)
		}
		out = append(out, v)
	}
	return out, nil
}

// listFilter selects a member's live ICPs after a position; with listOrder
// it is served by ListIndex.
func listFilter(tenant, user string, after uint64) bson.D {
	return bson.D{
		{Key: "tenant", Value: tenant},
		{Key: "members", Value: user},
		{Key: "position", Value: bson.D{{Key: "$gt", Value: int64(after)}}},
		{Key: "deleted", Value: false},
	}
}

var listOrder = bson.D{{Key: "position", Value: 1}, {Key: "_id", Value: 1}}

// chunkBatch is the most documents one reply of a ListChunk query carries:
// documents past a chunk's maxBytes are read and dropped, so a small batch
// bounds that waste and the memory the driver holds for one reply.
const chunkBatch = 32

// ListChunk returns the next chunk of a member's list (see
// projections.ReadModel), read from the primary with majority read concern
// in one query whose cursor is closed before it returns (killCursors when
// the chunk ended before the query's last batch), so no server cursor nor
// its memory outlives the call. The driver holds at most one reply of
// chunkBatch documents (and never more than MongoDB's 16 MiB per reply).
func (m *Model) ListChunk(ctx context.Context, tenant, user string, after uint64, maxViews, maxBytes int) ([]projections.View, error) {
	if m.closed() {
		return nil, unavailable("list", ErrClosed)
	}
	if after >= math.MaxInt64 {
		return []projections.View{}, nil // no stored position is beyond it
	}
	maxViews, maxBytes = max(1, maxViews), max(1, maxBytes)
	if err := m.ready(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := m.opCtx(ctx)
	defer cancel()
	fo := options.Find().SetSort(listOrder).SetLimit(int64(maxViews)).SetBatchSize(int32(min(maxViews, chunkBatch)))
	cur, err := m.coll.Find(ctx, listFilter(tenant, user, after), fo)
	if err != nil {
		return nil, unavailable("list", err)
	}
	defer func() { _ = cur.Close(ctx) }()
	out := []projections.View{}
	size := 0
	for cur.Next(ctx) {
		var r record
		if err := cur.Decode(&r); err != nil {
			return nil, unavailable("list", err)
		}
		v, err := r.view()
		if err != nil {
			return nil, fmt.Errorf("mongomodel list: %w", err)
		}
		if len(out) > 0 && size+len(v.Doc) > maxBytes {
			break
		}
		size += len(v.Doc)
		out = append(out, v)
	}
	if err := cur.Err(); err != nil {
		return nil, unavailable("list", err)
	}
	return out, nil
}

// Ping reports whether the primary is reachable now (and the indexes exist).
func (m *Model) Ping(ctx context.Context) error {
	if m.closed() {
		return unavailable("ping", ErrClosed)
	}
	if err := m.ready(ctx); err != nil {
		return err
	}
	ctx, cancel := m.opCtx(ctx)
	defer cancel()
	if err := m.client.Ping(ctx, readpref.Primary()); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

// Close finishes the Apply calls already queued, refuses new calls, wakes
// waiters (they return an error) and disconnects. It is idempotent.
func (m *Model) Close() error {
	m.closeOnce.Do(func() {
		close(m.stop)
		<-m.writerDone
		ctx, cancel := context.WithTimeout(context.Background(), m.opts.OpTimeout)
		defer cancel()
		m.closeErr = m.client.Disconnect(ctx)
	})
	return m.closeErr
}
