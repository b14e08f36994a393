package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/esdbstore"
	"github.com/icpservice/icp/events/sqlitestore"
	"github.com/icpservice/icp/platform/datadir"
	"github.com/icpservice/icp/platform/redact"
)

// StoreFlags select the event store the audit tools read: the embedded SQLite
// store in the data directory, or EventStoreDB. The embedded store may be
// open in a running icpd at the same time (SQLite in WAL mode lets a second
// process read, and the store notices the other process's appends by
// polling).
type StoreFlags struct {
	DataDir    string `name:"data-dir" env:"ICP_DATA_DIR" default:"./data" type:"path" help:"icpd's data directory (events.db, readmodel.db, nats/)."`
	EventStore string `name:"event-store" env:"ICP_EVENT_STORE" help:"Read the events from EventStoreDB (esdb://host:2113?tls=false) instead of the embedded store in --data-dir."`
}

// validate checks the flags without touching any file.
func (f *StoreFlags) validate() error {
	if f.EventStore == "" {
		return nil
	}
	u, err := url.Parse(f.EventStore)
	if err != nil || u.Host == "" {
		return fmt.Errorf("--event-store %q: want esdb://host:2113?tls=false", redact.URL(f.EventStore))
	}
	switch u.Scheme {
	case "esdb", "esdb+discover", "kurrentdb", "kurrentdb+discover":
		return nil
	}
	return fmt.Errorf("--event-store %q: want esdb://host:2113?tls=false", redact.URL(f.EventStore))
}

func (f *StoreFlags) eventsPath() string    { return filepath.Join(f.DataDir, datadir.EventsFile) }
func (f *StoreFlags) readModelPath() string { return filepath.Join(f.DataDir, datadir.ReadModelFile) }

// openStore opens the event store for reading. The embedded store must exist
// already: an audit never creates an empty one by mistake.
func (f *StoreFlags) openStore(ctx context.Context) (events.Store, error) {
	if err := f.validate(); err != nil {
		return nil, err
	}
	if f.EventStore != "" {
		st, err := esdbstore.Open(ctx, f.EventStore, esdbstore.Options{})
		if err != nil {
			return nil, err
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := st.Ping(pctx); err != nil {
			_ = st.Close()
			return nil, fmt.Errorf("event store not reachable: %w", err)
		}
		return st, nil
	}
	path := f.eventsPath()
	if err := mustExist(path, "event store"); err != nil {
		return nil, err
	}
	// The default poll interval of a second process's Follow (250ms) is what
	// --follow adds to the latency of events written by icpd.
	return sqlitestore.Open(ctx, path, sqlitestore.Options{})
}

// mustExist fails with a message that names the file and the flag when path
// does not exist.
func mustExist(path, what string) error {
	_, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no %s at %s: check --data-dir", what, path)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// ReadModelFlag names the read model the way icpd does, so that rebuild and
// verify refuse to run against the embedded file when the service's read
// model is elsewhere.
type ReadModelFlag struct {
	ReadModel string `name:"read-model" env:"ICP_READ_MODEL" help:"icpd's read model setting; rebuild and verify handle only the embedded SQLite read model in --data-dir (leave empty)."`
}

func (f *ReadModelFlag) validate() error {
	if f.ReadModel != "" {
		return fmt.Errorf("--read-model/ICP_READ_MODEL is %q: rebuild and verify handle only the embedded SQLite read model (the file in --data-dir)", redact.URL(f.ReadModel))
	}
	return nil
}
