package commands_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/icpservice/icp/commands"
	"github.com/icpservice/icp/events"
)

// lostAnswerStore records the first append for real and then answers it as
// if the answer had been lost (the store unreachable), ending the caller's
// request at the same moment: the outcome of the append is unknown to the
// handler although the event is durable.
type lostAnswerStore struct {
	events.Store
	cancelCaller context.CancelFunc
	calls        int
}

func (s *lostAnswerStore) Append(ctx context.Context, stream string, expected uint64, evs []events.Proposed) (events.AppendResult, error) {
	s.calls++
	if s.calls == 1 {
		if _, err := s.Store.Append(context.Background(), stream, expected, evs); err != nil {
			return events.AppendResult{}, err
		}
		s.cancelCaller()
		return events.AppendResult{}, fmt.Errorf("answer lost: %w", events.ErrUnavailable)
	}
	return s.Store.Append(ctx, stream, expected, evs)
}

// A create whose append became durable is answered as recorded, even when the
// store's answer was lost and the request's context ended meanwhile: an error
// there would invite a retry that creates a second ICP.
func TestCreateWhoseAnswerWasLostIsAnsweredAsRecorded(t *testing.T) {
	st := openStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lost := &lostAnswerStore{Store: st, cancelCaller: cancel}
	h := commands.NewHandler(lost)

	res, err := h.Create(ctx, alice, parse(t, body1, alice), "", commands.RequestMeta{})
	if err != nil {
		t.Fatalf("a durable create was answered with %v", err)
	}
	evs := readStream(t, st, res.State.ICP.ID)
	if len(evs) != 1 || evs[0].Position != res.Position {
		t.Fatalf("stream holds %d events (want exactly the one answered, at position %d): %+v", len(evs), res.Position, evs)
	}
	if lost.calls < 2 {
		t.Fatalf("the handler did not retry the unconfirmed append (%d calls)", lost.calls)
	}
}
