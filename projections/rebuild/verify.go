package rebuild

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/projections"
)

// Scanner walks a read model in id order, page by page
// (sqlitemodel.Model.Scan).
type Scanner interface {
	// Scan returns up to limit views, tombstones included, with ids sorting
	// bytewise after after, in that order.
	Scan(ctx context.Context, after string, limit int) ([]projections.View, error)
}

// Live is the read model an audit checks.
type Live interface {
	Scanner
	Get(ctx context.Context, id string) (projections.View, error)
}

// Kind classifies a difference between the history and the read model.
type Kind string

// Kinds of difference.
const (
	// Missing: the history has the ICP, the read model does not.
	Missing Kind = "missing"
	// Extra: the read model has an ICP the history does not (or one whose
	// creation could never be applied).
	Extra Kind = "extra"
	// WrongVersion: both have it, at different versions.
	WrongVersion Kind = "version"
	// Tombstone: same version, but only one of them has it deleted.
	Tombstone Kind = "tombstone"
	// Content: same version and deletion, different fields or document.
	Content Kind = "content"
)

// Difference is one ICP on which the read model and the history disagree.
type Difference struct {
	ID     string
	Kind   Kind
	Detail string
}

func (d Difference) String() string { return fmt.Sprintf("%s %s: %s", d.Kind, d.ID, d.Detail) }

// VerifyOptions tune Verify. The zero value is valid.
type VerifyOptions struct {
	// Settle is how long a difference may take to go away before it is
	// reported: a running projector applies events after the history was
	// replayed, and a read model that is merely behind catches up. 0
	// rechecks each difference once.
	Settle time.Duration
	// PollInterval is the pause between rechecks (default 100ms).
	PollInterval time.Duration
	// PageSize is the number of views read per Scan (default 2048).
	PageSize int
	// MaxDifferences bounds the differences kept, listed and settled
	// (default DefaultMaxDifferences); beyond it differing ICPs are only
	// counted (VerifyResult.Differing).
	MaxDifferences int
	// Progress, when set, is called after each page compared with the
	// number of ICPs compared so far.
	Progress func(compared uint64)
}

// DefaultMaxDifferences is VerifyOptions.MaxDifferences's default.
const DefaultMaxDifferences = 10_000

// VerifyResult is the outcome of an audit.
type VerifyResult struct {
	// Compared counts the ICPs looked at (in either model).
	Compared uint64
	// Differences lists the ICPs that still differed after settling, by
	// id: at most VerifyOptions.MaxDifferences of them.
	Differences []Difference
	// Differing counts every ICP found differing: those listed, and those
	// beyond MaxDifferences, which were rechecked once, not settled.
	Differing uint64
}

// Verify compares replayed, a read model rebuilt from the history (up to
// some head), with live, ICP by ICP, in one pass over both in id order, a
// page at a time. Each ICP on which they differ is checked again, with its
// page, against the history as the store holds it now (its stream folded
// with the replay's rules) and the live read model as it is now; those that
// still differ are checked again until they agree or opts.Settle has
// passed: so events recorded after the replay, and a projector catching up,
// are not reported. Memory does not grow with the read models: a page of
// each, and at most opts.MaxDifferences differences. An error means the
// audit could not be completed.
func Verify(ctx context.Context, store events.Store, replayed Scanner, live Live, opts VerifyOptions) (VerifyResult, error) {
	a := audit{ctx: ctx, store: store, live: live, opts: opts.withDefaults()}
	if err := a.pass(replayed); err != nil {
		return a.res, err
	}
	if err := a.settle(); err != nil {
		return a.res, err
	}
	a.res.Differences = a.still
	a.res.Differing = uint64(len(a.still)) + a.unlisted
	slices.SortFunc(a.res.Differences, func(x, y Difference) int { return strings.Compare(x.ID, y.ID) })
	return a.res, nil
}

// withDefaults returns o with its zero fields set to their defaults.
func (o VerifyOptions) withDefaults() VerifyOptions {
	if o.PollInterval <= 0 {
		o.PollInterval = 100 * time.Millisecond
	}
	if o.PageSize <= 0 {
		o.PageSize = 2048
	}
	if o.MaxDifferences <= 0 {
		o.MaxDifferences = DefaultMaxDifferences
	}
	return o
}

// audit is the state of one Verify.
type audit struct {
	ctx   context.Context
	store events.Store
	live  Live
	opts  VerifyOptions

	res        VerifyResult
	candidates []string     // differing in the pass, not rechecked yet
	still      []Difference // differing at their first recheck, at most MaxDifferences
	unlisted   uint64       // differing beyond MaxDifferences
}

// pass walks replayed and the live read model together in id order,
// collecting the ICPs on which they differ, and rechecks them a page at a
// time (recheckCandidates).
func (a *audit) pass(replayed Scanner) error {
	want := &pager{s: replayed, size: a.opts.PageSize}
	got := &pager{s: a.live, size: a.opts.PageSize}
	for {
		w, err := want.peek(a.ctx)
		if err != nil {
			return fmt.Errorf("verify: replayed read model: %w", err)
		}
		g, err := got.peek(a.ctx)
		if err != nil {
			return fmt.Errorf("verify: live read model: %w", err)
		}
		if w == nil && g == nil {
			break
		}
		a.res.Compared++
		switch {
		case g == nil || (w != nil && w.ID < g.ID):
			a.candidates = append(a.candidates, w.ID)
			want.next()
		case w == nil || g.ID < w.ID:
			a.candidates = append(a.candidates, g.ID)
			got.next()
		default:
			if _, _, same := Compare(w, g); !same {
				a.candidates = append(a.candidates, w.ID)
			}
			want.next()
			got.next()
		}
		if a.res.Compared%uint64(a.opts.PageSize) == 0 {
			if err := a.recheckCandidates(); err != nil {
				return err
			}
		}
	}
	return a.recheckCandidates()
}

// recheckCandidates rechecks the candidates gathered so far, keeping those
// that still differ, and reports progress.
func (a *audit) recheckCandidates() error {
	for _, id := range a.candidates {
		d, err := recheck(a.ctx, a.store, a.live, id)
		if err != nil {
			return err
		}
		switch {
		case d == nil:
		case len(a.still) < a.opts.MaxDifferences:
			a.still = append(a.still, *d)
		default:
			a.unlisted++
		}
	}
	a.candidates = a.candidates[:0]
	if a.opts.Progress != nil {
		a.opts.Progress(a.res.Compared)
	}
	return nil
}

// settle rechecks the differences still kept every PollInterval, dropping
// those that went away, until none is left or Settle has passed.
func (a *audit) settle() error {
	deadline := time.Now().Add(a.opts.Settle)
	for len(a.still) > 0 && time.Now().Before(deadline) {
		t := time.NewTimer(a.opts.PollInterval)
		select {
		case <-a.ctx.Done():
			t.Stop()
			return a.ctx.Err()
		case <-t.C:
		}
		next := a.still[:0]
		for _, old := range a.still {
			d, err := recheck(a.ctx, a.store, a.live, old.ID)
			if err != nil {
				return err
			}
			if d != nil {
				next = append(next, *d)
			}
		}
		a.still = next
	}
	return nil
}

// recheck compares one ICP as the store and the live read model hold it now.
func recheck(ctx context.Context, store events.Store, live Live, id string) (*Difference, error) {
	var want *projections.View
	recs, err := store.ReadStream(ctx, events.StreamID(id), 0)
	switch {
	case errors.Is(err, events.ErrStreamNotFound):
	case err != nil:
		return nil, fmt.Errorf("verify: read the history of %s: %w", id, err)
	default:
		s, err := FoldStream(recs)
		if err != nil {
			return nil, fmt.Errorf("verify: %s: %w", id, err)
		}
		if s != nil {
			v, err := projections.ViewOf(s)
			if err != nil {
				return nil, fmt.Errorf("verify: view of %s: %w", id, err)
			}
			want = &v
		}
	}
	var got *projections.View
	v, err := live.Get(ctx, id)
	switch {
	case errors.Is(err, projections.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("verify: read %s from the read model: %w", id, err)
	default:
		got = &v
	}
	kind, detail, same := Compare(want, got)
	if same {
		return nil, nil
	}
	return &Difference{ID: id, Kind: kind, Detail: detail}, nil
}

// Compare reports whether the read model's view got (nil: none) is what the
// history says, want (nil: no ICP), and if not, how they differ.
func Compare(want, got *projections.View) (kind Kind, detail string, same bool) {
	switch {
	case want == nil && got == nil:
		return "", "", true
	case got == nil:
		return Missing, fmt.Sprintf("the history has it at version %d, the read model does not", want.Version), false
	case want == nil:
		return Extra, fmt.Sprintf("the read model has it at version %d, the history has no such ICP", got.Version), false
	case want.Version != got.Version:
		return WrongVersion, fmt.Sprintf("the read model has version %d, the history version %d", got.Version, want.Version), false
	case want.Deleted != got.Deleted:
		return Tombstone, fmt.Sprintf("at version %d the read model says deleted=%t, the history deleted=%t", got.Version, got.Deleted, want.Deleted), false
	}
	var fields []string
	if want.Tenant != got.Tenant {
		fields = append(fields, fmt.Sprintf("tenant (read model %q, history %q)", got.Tenant, want.Tenant))
	}
	if want.Position != got.Position {
		fields = append(fields, fmt.Sprintf("position (read model %d, history %d)", got.Position, want.Position))
	}
	if want.CreatedBy != got.CreatedBy {
		fields = append(fields, fmt.Sprintf("createdBy (read model %q, history %q)", got.CreatedBy, want.CreatedBy))
	}
	if !want.Deleted && !slices.Equal(want.UserIDs, got.UserIDs) {
		fields = append(fields, fmt.Sprintf("members (read model %q, history %q)", got.UserIDs, want.UserIDs))
	}
	if !bytes.Equal(want.Doc, got.Doc) {
		fields = append(fields, "document")
	}
	if len(fields) == 0 {
		return "", "", true
	}
	return Content, fmt.Sprintf("at version %d these differ: %s", got.Version, strings.Join(fields, "; ")), false
}

// pager reads a Scanner one page ahead.
type pager struct {
	s     Scanner
	size  int
	page  []projections.View
	i     int
	after string
	done  bool
}

// peek returns the current view, nil at the end.
func (p *pager) peek(ctx context.Context) (*projections.View, error) {
	if p.i < len(p.page) {
		return &p.page[p.i], nil
	}
	if p.done {
		return nil, nil
	}
	page, err := p.s.Scan(ctx, p.after, p.size)
	if err != nil {
		return nil, err
	}
	p.page, p.i = page, 0
	if len(page) < p.size {
		p.done = true
	}
	if len(page) == 0 {
		return nil, nil
	}
	p.after = page[len(page)-1].ID
	return &p.page[0], nil
}

func (p *pager) next() { p.i++ }
