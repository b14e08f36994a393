package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// streamPollInterval is how often WaitForStream asks again.
const streamPollInterval = 250 * time.Millisecond

// WaitForStream returns once stream exists, asking every streamPollInterval:
// for a part that reads a stream another part owns (the relay creates
// ICP_EVENTS, icpctl republish ICP_REPLAY), so that the parts may start in
// any order. waiting is called once, before the first wait (nil: not
// called). It returns ctx.Err() when ctx ends first, and any other error of
// the server at once.
func WaitForStream(ctx context.Context, js jetstream.JetStream, stream string, waiting func()) error {
	for {
		_, err := js.Stream(ctx, stream)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("stream %s: %w", stream, err)
		}
		if waiting != nil {
			waiting()
			waiting = nil
		}
		t := time.NewTimer(streamPollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
