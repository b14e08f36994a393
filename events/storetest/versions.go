package storetest

import (
	"errors"
	"maps"
	"sync"
	"testing"

	"github.com/icpservice/icp/events"
)

func runStreamVersions(t *testing.T, open func(t *testing.T) events.Store) {
	t.Run("LastVersionOfEachStream", func(t *testing.T) {
		s := open(t)
		a, b, missing := newStream(), newStream(), newStream()
		mustAppend(t, s, a, events.NoStream, newEvents(2)...)
		mustAppend(t, s, a, 2, newEvent(3))
		mustAppend(t, s, b, events.NoStream, newEvent(1))
		wantVersions(t, s, []string{a, b, missing, a, ""}, map[string]uint64{a: 3, b: 1})

		// An append that returned is seen by the next call.
		mustAppend(t, s, b, 1, newEvent(2))
		wantVersions(t, s, []string{b}, map[string]uint64{b: 2})
		wantVersions(t, s, nil, map[string]uint64{})
		wantVersions(t, s, []string{missing}, map[string]uint64{})
		wantVersions(t, s, []string{""}, map[string]uint64{})
	})

	t.Run("ManyStreamsAtOnce", func(t *testing.T) { manyStreamsAtOnce(t, open) })

	t.Run("ClosedStoreIsUnavailable", func(t *testing.T) {
		s := open(t)
		stream := newStream()
		mustAppend(t, s, stream, events.NoStream, newEvent(1))
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if _, err := s.StreamVersions(testCtx(t), []string{stream}); !errors.Is(err, events.ErrUnavailable) {
			t.Fatalf("StreamVersions on a closed store: %v, want an error matching events.ErrUnavailable", err)
		}
		_ = s.Close()
	})
}

func wantVersions(t *testing.T, s events.Store, streams []string, want map[string]uint64) {
	t.Helper()
	got, err := s.StreamVersions(testCtx(t), streams)
	if err != nil {
		t.Fatalf("StreamVersions(%d streams): %v", len(streams), err)
	}
	if !maps.Equal(got, want) {
		if len(want) > 4 {
			t.Fatalf("StreamVersions(%d streams): %d versions, want %d (or some differ)", len(streams), len(got), len(want))
		}
		t.Fatalf("StreamVersions(%v) = %v, want %v", streams, got, want)
	}
}

// manyStreamsAtOnce asks for more streams than one statement of the SQLite
// adapter asks for.
func manyStreamsAtOnce(t *testing.T, open func(t *testing.T) events.Store) {
	s := open(t)
	const n = 620
	streams := make([]string, n)
	want := make(map[string]uint64, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := range streams {
		streams[i] = newStream()
		versions := 1 + i%3
		want[streams[i]] = uint64(versions)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if _, err := s.Append(testCtx(t), streams[i], events.NoStream, newEvents(versions)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("append: %v", err)
	}
	wantVersions(t, s, append(streams, newStream()), want)
}
