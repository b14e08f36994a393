package esdbstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/icpservice/icp/events"
)

// The server going down while an append is being sent surfaces as the
// send's io.EOF, wrapped by the client: that is an outage, which the
// caller may retry, not a refusal.
func TestAnAppendCutOffWhileSendingIsUnavailable(t *testing.T) {
	var s Store
	cut := fmt.Errorf("could not send append request. Reason: %w", io.EOF)
	if err := s.failed(context.Background(), "append to icp-1", cut); !errors.Is(err, events.ErrUnavailable) {
		t.Fatalf("failed(%v) = %v, want an error wrapping events.ErrUnavailable", cut, err)
	}
	refused := errors.New("append refused")
	if err := s.failed(context.Background(), "append to icp-1", refused); errors.Is(err, events.ErrUnavailable) {
		t.Fatalf("failed(%v) = %v, want it not to wrap events.ErrUnavailable", refused, err)
	}
}
