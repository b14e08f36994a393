package sqlite

// WAL checkpoints, moved off the writer's path.
//
// By default the connection whose commit pushes the WAL past 1,000 pages
// copies the WAL back into the database file inside that commit, with two
// fsyncs: every append or projection queued behind it waits, and on a slow
// disk that wait is the worst latency the service shows. With the writer's
// automatic checkpoints off (PRAGMA wal_autocheckpoint=0 on its connection),
// a Checkpointer runs PASSIVE checkpoints from its own connection instead:
// they copy what no reader still needs while the writer goes on committing,
// and the WAL starts over from its beginning once a checkpoint has caught
// up. Durability does not change: a commit is durable when its WAL frames
// are synced, whether or not they have been copied yet.
//
// database/sql gives no access to sqlite3_wal_hook, so the Checkpointer
// runs on an interval, or when its writer says it committed (Kick).
//
// Under sustained writes a PASSIVE checkpoint never quite catches up (the
// writer commits while it copies), so the WAL would never start over and
// would grow without bound under sustained creates, with reads and
// checkpoints slowing as it grew (TestTheWALStaysBoundedUnderSustainedWrites). Once the WAL holds RestartFrames
// frames, the Checkpointer therefore also runs a RESTART checkpoint, which
// holds writers off while it copies the little the PASSIVE one left and
// waits for readers to leave the WAL, so that the next commit starts it
// over. It waits at most restartWait: a writer is held up that long at
// worst, and a busy attempt is tried again at the next checkpoint.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Checkpointer runs PRAGMA wal_checkpoint(PASSIVE) on its own connection,
// every interval and after each Kick, until Close.
type Checkpointer struct {
	db    *sql.DB
	every time.Duration
	warn  func(error)
	kicks chan struct{}
	stop  chan struct{}
	done  chan struct{}
}

// StartCheckpointer opens a Plain connection to the database at path,
// waiting up to busy for locks, and checkpoints every interval (0: only on
// Kick). warn receives the errors of failed checkpoints (the next one tries
// again); nil ignores them.
func StartCheckpointer(path string, busy, every time.Duration, warn func(error)) (*Checkpointer, error) {
	if every < 0 {
		return nil, errors.New("sqlite: interval must not be negative")
	}
	db, err := Open(path, Settings{Role: Plain, BusyTimeout: busy}, 1)
	if err != nil {
		return nil, err
	}
	if err := db.Ping(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if warn == nil {
		warn = func(error) {}
	}
	c := &Checkpointer{db: db, every: every, warn: warn, kicks: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c, nil
}

func (c *Checkpointer) run() {
	defer close(c.done)
	var tick <-chan time.Time
	if c.every > 0 {
		t := time.NewTicker(c.every)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-c.stop:
			return
		case <-tick:
		case <-c.kicks:
		}
		if _, err := c.Checkpoint(context.Background()); err != nil {
			c.warn(err)
		}
	}
}

// Kick asks for a checkpoint soon, on the Checkpointer's goroutine; it never
// blocks, and kicks that come while one is pending are one.
func (c *Checkpointer) Kick() {
	select {
	case c.kicks <- struct{}{}:
	default:
	}
}

// RestartFrames is the WAL length, in frames (pages), from which a
// checkpoint also makes the WAL start over (see the package comment).
const RestartFrames = 4096

// restartWait bounds how long a RESTART checkpoint waits for the writer and
// the readers.
const restartWait = 20 * time.Millisecond

// Checkpoint runs one PASSIVE checkpoint now, and a RESTART one when the WAL
// holds RestartFrames frames or more; it returns how many WAL frames it
// copied into the database file.
func (c *Checkpointer) Checkpoint(ctx context.Context) (int, error) {
	conn, err := c.db.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("sqlite: checkpoint: %w", err)
	}
	defer conn.Close()
	var busy, logFrames, copied int
	if err := conn.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logFrames, &copied); err != nil {
		return 0, fmt.Errorf("sqlite: checkpoint: %w", err)
	}
	if logFrames < RestartFrames {
		return copied, nil
	}
	var wait int64
	if err := conn.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&wait); err != nil {
		return copied, fmt.Errorf("sqlite: checkpoint: %w", err)
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`PRAGMA busy_timeout = %d`, restartWait.Milliseconds())); err != nil {
		return copied, fmt.Errorf("sqlite: checkpoint: %w", err)
	}
	var more int
	err = conn.QueryRowContext(ctx, `PRAGMA wal_checkpoint(RESTART)`).Scan(&busy, &logFrames, &more)
	if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf(`PRAGMA busy_timeout = %d`, wait)); rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		return copied, fmt.Errorf("sqlite: restart checkpoint: %w", err)
	}
	return max(copied, more), nil
}

// Close stops the checkpoints, runs a last one (what it cannot copy is
// copied by the next open), and closes the connection. Call it before the
// writer's connection closes.
func (c *Checkpointer) Close() error {
	select {
	case <-c.stop:
		return nil
	default:
	}
	close(c.stop)
	<-c.done
	_, err := c.Checkpoint(context.Background())
	return errors.Join(err, c.db.Close())
}
