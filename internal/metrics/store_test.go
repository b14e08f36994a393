package metrics_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/sqlitestore"
	"github.com/icpservice/icp/internal/metrics"
)

// reporting is a real store that also reports foreign events, as
// EventStoreDB's adapter does; errReported shows the call reached it.
type reporting struct{ *sqlitestore.Store }

var errReported = errors.New("reached the store's FollowReporting")

func (reporting) FollowReporting(context.Context, uint64, int, func([]events.Recorded) error, func(events.Foreign) error) error {
	return errReported
}

// The decorated store keeps the optional interfaces of the store it wraps,
// and only those: the relay finds the generation and the foreign-event
// reports through it.
func TestDecoratedStoreKeepsItsOptionalInterfaces(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "events.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	want, err := st.Generation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New()

	d := m.Store(st)
	g, ok := d.(events.Generations)
	if !ok {
		t.Fatal("the decorated SQLite store hides its generation")
	}
	if got, err := g.Generation(ctx); err != nil || got != want {
		t.Errorf("generation through the decorator: %q %v, want %q", got, err, want)
	}
	if _, ok := d.(events.ForeignFollower); ok {
		t.Error("the decorated SQLite store claims to report foreign events")
	}

	d = m.Store(reporting{st})
	f, ok := d.(events.ForeignFollower)
	if !ok {
		t.Fatal("the decorator hides FollowReporting")
	}
	if err := f.FollowReporting(ctx, 0, 1, nil, nil); !errors.Is(err, errReported) {
		t.Errorf("FollowReporting through the decorator: %v", err)
	}
	if _, ok := d.(events.Generations); !ok {
		t.Error("the decorator hides the generation of a store that also reports foreign events")
	}
}
