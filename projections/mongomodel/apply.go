package mongomodel

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver"

	"github.com/icpservice/icp/platform/groupcommit"
	"github.com/icpservice/icp/projections"
)

// maxDocBytes keeps a stored document under MongoDB's 16 MiB limit with room
// for the other fields: a larger doc is refused before it can fail a shared
// bulk write.
const maxDocBytes = 15 << 20

// maxRounds bounds the read-predict-write rounds of one batch. Rounds beyond
// the first happen only when another writer changes the same ICPs between a
// round's read and its write.
const maxRounds = 8

// errContention is returned (wrapped in projections.ErrUnavailable) when
// other writers kept changing the batch's ICPs for maxRounds rounds.
var errContention = errors.New("concurrent writers kept changing the same ICPs")

// applyReq is one Apply call waiting for the writer.
type applyReq = groupcommit.Request[projections.View, projections.Outcome]

// queue joins Apply to the writer goroutine.
func (m *Model) queue() groupcommit.Queue[projections.View, projections.Outcome] {
	return groupcommit.Queue[projections.View, projections.Outcome]{Requests: m.reqs, Closed: m.stop, Exited: m.writerDone}
}

// Apply writes each view only onto stored version view.Version-1 (nothing
// for version 1), in slice order, and returns one Outcome per view.
//
// Concurrent calls are coalesced into one ordered bulk write with majority
// write concern. Version 1 is an insert (a duplicate key means the ICP is
// already there); version v > 1 is a replace filtered on {_id, version: v-1},
// never an upsert, so a gap or a stale view is never written. When it
// returns nil every applied view is majority-committed. On error nothing may
// be assumed applied. A view MongoDB can never hold (malformed, a document
// over 15 MiB, or one the server or driver refuses as too large) fails with a
// *projections.RefusedError naming it; other engine errors wrap
// projections.ErrUnavailable.
//
// Outcomes are exact while this Model is the only writer of the batch's
// ICPs. When another writer changes one of them between this batch's read
// and its write, a view this call did write may come back as Applied false
// with Stored >= its version, which is what a retried batch reports too:
// already applied, ack it.
func (m *Model) Apply(ctx context.Context, views []projections.View) ([]projections.Outcome, error) {
	if len(views) == 0 {
		return []projections.Outcome{}, nil
	}
	for i, v := range views {
		if err := validate(v); err != nil {
			return nil, &projections.RefusedError{ID: v.ID, Version: v.Version, Reason: fmt.Sprintf("mongomodel: view %d: %v", i, err)}
		}
	}
	out, err := m.queue().Call(ctx, views)
	if errors.Is(err, groupcommit.ErrClosed) {
		return nil, unavailable("apply", ErrClosed)
	}
	return out, err
}

// validate refuses views no event fold can produce (the port's rules) and
// views MongoDB cannot hold, before they reach a shared bulk write.
func validate(v projections.View) error {
	if err := projections.ValidateView(v); err != nil {
		return err
	}
	if !utf8.ValidString(v.ID) || !utf8.ValidString(v.Tenant) || !utf8.ValidString(v.CreatedBy) {
		return errors.New("id, tenant and creator must be valid UTF-8")
	}
	if v.Deleted {
		return nil
	}
	if len(v.Doc) > maxDocBytes {
		return fmt.Errorf("doc of %d bytes exceeds %d", len(v.Doc), maxDocBytes)
	}
	for _, u := range v.UserIDs {
		if !utf8.ValidString(u) {
			return errors.New("member ids must be non-empty valid UTF-8")
		}
	}
	return nil
}

// runWriter is the coalescing loop: it takes every call queued while the
// previous bulk write ran (up to MaxBatch views) and writes them together.
// After Close it finishes what is queued, then exits.
func (m *Model) runWriter() {
	defer close(m.writerDone)
	m.queue().Serve(groupcommit.Writer[projections.View, projections.Outcome]{
		MaxBatch: m.opts.MaxBatch,
		// The caller that leaves must not abort the others' writes: the
		// batch runs on its own context, each call bounded by OpTimeout.
		Write: func(views []projections.View) ([]projections.Outcome, error) {
			return m.write(context.Background(), views)
		},
		Committed: m.committed,
	})
}

// committed wakes the waiters of the ICPs a batch wrote.
func (m *Model) committed(views []projections.View, out []projections.Outcome) {
	var touched []string
	for i, o := range out {
		if o.Applied {
			touched = append(touched, views[i].ID)
		}
	}
	m.wake(touched)
}

// op is one write of a round: the view it writes and whether it is an
// insert (version 1) or a version-guarded replace.
type op struct {
	view   int
	insert bool
}

// write applies views in slice order per ICP and returns their outcomes.
//
// Each round reads the stored versions it needs, predicts every pending
// view's outcome, and sends the views predicted to apply as one ordered bulk
// write. MongoDB's bulk result only counts matches, so a round whose counts
// and errors are exactly as predicted settles every outcome; otherwise
// (another writer got in between) the outcomes that are certain are kept,
// and the rest of each ICP's views go to the next round, which reads all
// their ICPs first. Versions only grow, so a view written in an uncertain
// round reads back as stored >= its version.
//
// The first round reads nothing for ICPs that only have version-1 views in
// the batch (the common batch of creates): they are assumed new, and their
// inserts go first in the bulk write so that a duplicate key stops it before
// any replace has run.
func (m *Model) write(ctx context.Context, views []projections.View) ([]projections.Outcome, error) {
	if err := m.ready(ctx); err != nil {
		return nil, err
	}
	out := make([]projections.Outcome, len(views))
	pending := make([]int, len(views))
	for i := range pending {
		pending[i] = i
	}
	fullRead := false
	for round := 0; len(pending) > 0; round++ {
		if round == maxRounds {
			return nil, unavailable("apply", errContention)
		}
		known := map[string]bool{}
		for _, i := range pending {
			if fullRead || views[i].Version > 1 {
				known[views[i].ID] = true
			}
		}
		stored, err := m.readVersions(ctx, known)
		if err != nil {
			return nil, err
		}

		predicted, ops := predict(views, pending, stored, known)
		if m.beforeWrite != nil {
			m.beforeWrite()
		}
		exact, err := m.bulkWrite(ctx, views, ops)
		if err != nil {
			return nil, err
		}

		pending, fullRead = settle(views, pending, predicted, exact, out), true
	}
	return out, nil
}

// predict decides, from the stored versions, the outcome of each pending
// view and the writes that make it so: the views whose ICP was assumed
// absent (not read) first, then the others, each in slice order.
func predict(views []projections.View, pending []int, stored map[string]uint64, known map[string]bool) (map[int]projections.Outcome, []op) {
	predicted := make(map[int]projections.Outcome, len(pending))
	var assumed, rest []op
	for _, i := range pending {
		v := views[i]
		s := stored[v.ID]
		if s != v.Version-1 {
			predicted[i] = projections.Outcome{Applied: false, Stored: s}
			continue
		}
		predicted[i] = projections.Outcome{Applied: true, Stored: s}
		stored[v.ID] = v.Version
		o := op{view: i, insert: v.Version == 1}
		if known[v.ID] {
			rest = append(rest, o)
		} else {
			assumed = append(assumed, o)
		}
	}
	return predicted, append(assumed, rest...)
}

// settle writes into out the outcomes of a round that are certain and
// returns the pending views whose outcome is not, for another round. Per
// ICP in slice order, an outcome is certain while every earlier one of that
// ICP is, and it is either a prediction not to write or a write that ran
// exactly as predicted.
func settle(views []projections.View, pending []int, predicted map[int]projections.Outcome, exact map[int]bool, out []projections.Outcome) []int {
	uncertain := map[string]bool{}
	var next []int
	for _, i := range pending {
		id := views[i].ID
		if !uncertain[id] && (!predicted[i].Applied || exact[i]) {
			out[i] = predicted[i]
			continue
		}
		uncertain[id] = true
		next = append(next, i)
	}
	return next
}

// bulkWrite sends ops as one ordered bulk write and reports, by view index,
// which ops certainly ran as predicted. A duplicate key stops an ordered
// bulk write: the ops before it ran, the rest did not. Replaces are exact
// only when the bulk write matched as many documents as replaces ran; any
// other error fails the batch.
func (m *Model) bulkWrite(ctx context.Context, views []projections.View, ops []op) (map[int]bool, error) {
	exact := make(map[int]bool, len(ops))
	if len(ops) == 0 {
		return exact, nil
	}
	models := make([]mongo.WriteModel, len(ops))
	for k, o := range ops {
		v := views[o.view]
		rec := recordOf(v)
		if o.insert {
			models[k] = mongo.NewInsertOneModel().SetDocument(rec)
			continue
		}
		rec.ID = "" // omitted: a replacement keeps the stored _id
		models[k] = mongo.NewReplaceOneModel().
			SetFilter(bson.D{{Key: "_id", Value: v.ID}, {Key: "version", Value: int64(v.Version - 1)}}).
			SetReplacement(rec)
	}
	wctx, cancel := m.opCtx(ctx)
	defer cancel()
	res, err := m.coll.BulkWrite(wctx, models, options.BulkWrite().SetOrdered(true))
	ran := len(ops)
	if refused := refusal(err, views, ops); refused != nil {
		return nil, refused
	}
	if err != nil {
		var bwe mongo.BulkWriteException
		if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) != 1 ||
			!isDuplicateKey(bwe.WriteErrors[0].Code) || res == nil {
			return nil, unavailable("apply", err)
		}
		ran = bwe.WriteErrors[0].Index
		if ran < 0 || ran >= len(ops) || !ops[ran].insert {
			return nil, unavailable("apply", err)
		}
	}
	var inserts, replaces int64
	for _, o := range ops[:ran] {
		if o.insert {
			inserts++
		} else {
			replaces++
		}
	}
	insertsExact := res.InsertedCount == inserts
	replacesExact := res.MatchedCount == replaces
	for _, o := range ops[:ran] {
		exact[o.view] = (o.insert && insertsExact) || (!o.insert && replacesExact)
	}
	return exact, nil
}

// codeBSONObjectTooLarge is the server's error code for a document over
// its size limit.
const codeBSONObjectTooLarge = 10334

// refusal returns a *projections.RefusedError when err is MongoDB refusing
// one document of the bulk write for good (too large), and it
// can tell which: the write error's index names the op, and a refusal by
// the driver (an inserted document too large, found before sending) names
// the view only when the write held one. Otherwise nil: err is handled as
// a failure of the whole write.
func refusal(err error, views []projections.View, ops []op) error {
	if err == nil {
		return nil
	}
	var bwe mongo.BulkWriteException
	if errors.As(err, &bwe) && len(bwe.WriteErrors) == 1 {
		we := bwe.WriteErrors[0]
		if we.Code == codeBSONObjectTooLarge && we.Index >= 0 && we.Index < len(ops) {
			v := views[ops[we.Index].view]
			return &projections.RefusedError{ID: v.ID, Version: v.Version, Reason: fmt.Sprintf("mongomodel: server error %d: %s", we.Code, we.Message)}
		}
	}
	if errors.Is(err, driver.ErrDocumentTooLarge) && len(ops) == 1 {
		v := views[ops[0].view]
		return &projections.RefusedError{ID: v.ID, Version: v.Version, Reason: "mongomodel: " + err.Error()}
	}
	return nil
}

func isDuplicateKey(code int) bool {
	return code == 11000 || code == 11001 || code == 12582
}

// readVersions returns the stored version of each id in ids (absent: not
// stored), read from the primary with majority read concern, so a version
// it reports is durable.
func (m *Model) readVersions(ctx context.Context, ids map[string]bool) (map[string]uint64, error) {
	stored := make(map[string]uint64, len(ids))
	if len(ids) == 0 {
		return stored, nil
	}
	list := make([]string, 0, len(ids))
	for id := range ids {
		list = append(list, id)
	}
	rctx, cancel := m.opCtx(ctx)
	defer cancel()
	cur, err := m.coll.Find(rctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: list}}}},
		options.Find().SetProjection(bson.D{{Key: "version", Value: 1}}))
	if err != nil {
		return nil, unavailable("read versions", err)
	}
	var got []struct {
		ID      string `bson:"_id"`
		Version int64  `bson:"version"`
	}
	if err := cur.All(rctx, &got); err != nil {
		return nil, unavailable("read versions", err)
	}
	for _, g := range got {
		if g.Version < 1 {
			return nil, fmt.Errorf("mongomodel: stored ICP %s has version %d", g.ID, g.Version)
		}
		stored[g.ID] = uint64(g.Version)
	}
	return stored, nil
}
