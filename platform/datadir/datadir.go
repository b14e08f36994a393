// Package datadir is the layout of the data directory: the one place that
// names its files and folders. The service (internal/app), the operator
// tool (cmd/icpctl), the development key (api/auth) and the NATS identity
// (internal/natsauth) all find their files through it, so that a backup,
// a restore or a realign touches exactly the files the service uses.
//
// Renaming an entry is a change of the on-disk format: a data directory
// written by an older release would no longer be found.
package datadir

import "path/filepath"

// Entries directly under the data directory.
const (
	// EventsFile is the embedded event store (SQLite), the source of truth.
	EventsFile = "events.db"
	// ReadModelFile is the embedded read model (SQLite), rebuilt from the
	// events whenever it is lost.
	ReadModelFile = "readmodel.db"
	// NATSDir is the embedded NATS server's JetStream storage.
	NATSDir = "nats"
	// DevKeyFile is the development signing key (PEM, owner-only).
	DevKeyFile = "dev-signing-key.pem"
	// NATSAuthDir is the folder of the embedded NATS server's identity.
	NATSAuthDir = "nats-auth"
	// ServiceCredsFile, under NATSAuthDir, is the .creds of icpd and icpctl.
	ServiceCredsFile = "icpd.creds"
	// WorkerCredsFile, under NATSAuthDir, is the .creds of downstream workers.
	WorkerCredsFile = "worker.creds"
)

// Events is the event store's path under dir.
func Events(dir string) string { return filepath.Join(dir, EventsFile) }

// ReadModel is the read model's path under dir.
func ReadModel(dir string) string { return filepath.Join(dir, ReadModelFile) }

// NATS is the JetStream storage folder under dir.
func NATS(dir string) string { return filepath.Join(dir, NATSDir) }

// DevKey is the development signing key's path under dir.
func DevKey(dir string) string { return filepath.Join(dir, DevKeyFile) }

// NATSAuth is the NATS identity's folder under dir.
func NATSAuth(dir string) string { return filepath.Join(dir, NATSAuthDir) }
