package sqlitestore

import (
	"errors"
	"fmt"
	"time"
)

// Defaults of Options.
const (
	DefaultBatchMax     = 512
	DefaultQueueSize    = 4096
	DefaultPollInterval = 250 * time.Millisecond
	DefaultBusyTimeout  = 5 * time.Second
	DefaultLinger       = time.Millisecond
)

// Options tune the store. The zero value of each field selects its default;
// negative values are invalid (but NoLinger).
type Options struct {
	// BatchMax is the most appends committed in one transaction (one fsync).
	BatchMax int
	// QueueSize bounds the appends waiting for the writer. When the queue is
	// full, Append blocks until there is room or its ctx ends.
	QueueSize int
	// PollInterval is how often a caught-up Follow re-reads the file when no
	// commit of this process woke it: it is how appends written by another
	// process become visible.
	PollInterval time.Duration
	// BusyTimeout is how long a statement waits for a lock held by another
	// process (another writer, or a checkpoint) before failing.
	BusyTimeout time.Duration
	// Linger is how long the writer waits for more appends to join a batch
	// when the previous batch held more than one (concurrent callers): fewer,
	// larger commits for up to Linger more latency. A lone caller never
	// waits. 0 selects DefaultLinger; NoLinger turns it off.
	Linger time.Duration
}

// NoLinger as Options.Linger commits each batch as soon as the writer is
// free.
const NoLinger = time.Duration(-1)

// Validate reports every invalid field at once.
func (o Options) Validate() error {
	var errs []error
	if o.BatchMax < 0 {
		errs = append(errs, fmt.Errorf("BatchMax must be >= 0 (0: default %d), got %d", DefaultBatchMax, o.BatchMax))
	}
	if o.QueueSize < 0 {
		errs = append(errs, fmt.Errorf("QueueSize must be >= 0 (0: default %d), got %d", DefaultQueueSize, o.QueueSize))
	}
	if o.PollInterval < 0 {
		errs = append(errs, fmt.Errorf("PollInterval must be >= 0 (0: default %s), got %s", DefaultPollInterval, o.PollInterval))
	}
	if o.BusyTimeout < 0 {
		errs = append(errs, fmt.Errorf("BusyTimeout must be >= 0 (0: default %s), got %s", DefaultBusyTimeout, o.BusyTimeout))
	}
	if o.Linger < 0 && o.Linger != NoLinger {
		errs = append(errs, fmt.Errorf("Linger must be >= 0 (0: default %s) or NoLinger, got %s", DefaultLinger, o.Linger))
	}
	if o.Linger > time.Second {
		errs = append(errs, fmt.Errorf("Linger must be at most 1s, got %s", o.Linger))
	}
	if len(errs) > 0 {
		return fmt.Errorf("sqlitestore: invalid options: %w", errors.Join(errs...))
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.BatchMax == 0 {
		o.BatchMax = DefaultBatchMax
	}
	if o.QueueSize == 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.PollInterval == 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.BusyTimeout == 0 {
		o.BusyTimeout = DefaultBusyTimeout
	}
	if o.Linger == 0 {
		o.Linger = DefaultLinger
	}
	return o
}
