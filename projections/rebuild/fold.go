package rebuild

import (
	"errors"
	"fmt"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
)

// ErrNewerRelease is wrapped by the error of a replay that met an event this
// code cannot decode because a newer release wrote it (events.ErrUnknownVersion
// is wrapped too). Nothing is swapped in: run the newer release's icpctl.
var ErrNewerRelease = errors.New("the history holds events of a newer release")

// Problem is an event the replay could not apply. The projector dead-letters
// the same events, so the ICP stays at its last good version in both the
// live read model and the rebuilt one, and its later events are skipped too.
type Problem struct {
	Position uint64
	EventID  string
	ICPID    string
	Version  uint64
	Reason   string
}

func (p Problem) String() string {
	return fmt.Sprintf("position %d, event %s (ICP %s v%d): %s", p.Position, p.EventID, p.ICPID, p.Version, p.Reason)
}

// decoded is a recorded event with its payload decoded (or the reason it
// cannot be).
type decoded struct {
	rec     *events.Recorded
	id      string // ICP id; "" for a stream that is not an ICP stream
	payload any
	// doc, for a create in canonical form, is its ICP's JSON as
	// events.MarshalJSON writes it (see events.DecodeRecordedDoc).
	doc []byte
	err error // decode failure: corrupt, or ErrNewerRelease
}

// decode decodes r the way the projector does, including its check that the
// payload names the ICP of the stream it was recorded in.
func decode(r *events.Recorded) decoded {
	d := decoded{rec: r, id: r.ICPID()}
	if d.id == "" {
		return d
	}
	p, doc, err := events.DecodeRecordedDoc(*r)
	switch {
	case errors.Is(err, events.ErrUnknownVersion):
		d.err = fmt.Errorf("%w: event %s at position %d: %w", ErrNewerRelease, r.ID, r.Position, err)
		return d
	case err != nil:
		d.err = err
		return d
	}
	if named := domain.ICPIDOf(p); named != d.id {
		d.err = fmt.Errorf("%w: payload id %q in stream %s", events.ErrCorrupt, named, r.StreamID)
		return d
	}
	d.payload, d.doc = p, doc
	return d
}

// folder applies the projector's rules to a sequence of events: an event that
// cannot be decoded or folded leaves its ICP at its last good state and
// marks it broken, so that its later events are skipped as well (the
// projector's gap filling meets the same bad event again and dead-letters
// them). An event of a newer release stops everything.
//
// It remembers at most maxBroken broken ICPs. An ICP that breaks past that
// is counted and listed as any other but not remembered; its later events
// are skipped all the same, because Evolve refuses an event whose version
// does not follow the ICP's last good one, and each is counted with that
// reason. Only an event of a newer release among them differs: it stops
// the replay, as it does on any ICP not marked broken.
type folder struct {
	broken   map[string]bool
	problems []Problem
	nProblem uint64
	maxKept  int
}

// maxBroken bounds folder.broken: an ICP id and a map entry each, a few MB
// at most. A variable so that tests can make it small.
var maxBroken = 100_000

func newFolder() *folder { return &folder{broken: map[string]bool{}, maxKept: 100} }

// fold folds d onto s (nil: no state yet) and returns the new state, or s
// unchanged when the event is skipped. A non-nil error ends the replay.
func (f *folder) fold(s *domain.State, d decoded) (*domain.State, error) {
	if d.id == "" {
		return s, nil
	}
	if f.broken[d.id] {
		f.fail(d, "an earlier event of this ICP could not be applied")
		return s, nil
	}
	if d.err != nil {
		if errors.Is(d.err, ErrNewerRelease) {
			return nil, d.err
		}
		f.fail(d, d.err.Error())
		return s, nil
	}
	next, err := domain.Evolve(s, d.payload, d.rec.Version, d.rec.Position)
	if err != nil {
		f.fail(d, err.Error())
		return s, nil
	}
	return next, nil
}

func (f *folder) fail(d decoded, reason string) {
	if len(f.broken) < maxBroken {
		f.broken[d.id] = true
	}
	f.nProblem++
	if len(f.problems) < f.maxKept {
		f.problems = append(f.problems, Problem{Position: d.rec.Position, EventID: d.rec.ID, ICPID: d.id, Version: d.rec.Version, Reason: reason})
	}
}

// FoldStream folds the events of one stream, oldest first, with the rules of
// a replay: it returns the ICP's state as the projector would leave it (nil
// when not even its creation applies), or an error wrapping ErrNewerRelease.
func FoldStream(recs []events.Recorded) (*domain.State, error) {
	f := newFolder()
	var s *domain.State
	for _, r := range recs {
		var err error
		if s, err = f.fold(s, decode(&r)); err != nil {
			return nil, err
		}
	}
	return s, nil
}
