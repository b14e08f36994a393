package consumer

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/watermark"
)

// DefaultMissedCheckInterval is the default of Config.MissedCheckInterval.
const DefaultMissedCheckInterval = 10 * time.Second

// Missed is a part of the event history that ICP_EVENTS dropped (its
// retention, or a purge) before this durable acknowledged it: the durable
// may never have seen those events. Get them again with
//
//	icpctl republish --from-position FromPosition [--to-position ToPosition]
//
// and read them with a Config.Replay consumer (events/CONSUMERS.md,
// "Getting lost events again"). The range may include events the durable
// did handle (the durable's progress is recorded every
// Config.MissedCheckInterval and on a graceful stop): handlers must ignore
// versions they hold already, as for every redelivery.
type Missed struct {
	// FromPosition is the first event store position that may be missing.
	FromPosition uint64
	// ToPosition is the last one, or 0 when the stream's first message does
	// not say: then up to the store's head.
	ToPosition uint64
	// FromSeq and ToSeq are the ICP_EVENTS sequences that were dropped.
	FromSeq, ToSeq uint64
}

// Command is the icpctl command line that publishes the missed events again
// onto ICP_REPLAY.
func (m Missed) Command() string {
	s := fmt.Sprintf("icpctl republish --from-position %d", m.FromPosition)
	if m.ToPosition != 0 {
		s += fmt.Sprintf(" --to-position %d", m.ToPosition)
	}
	return s
}

// watchMissed checks for missed events when consuming starts and every
// MissedCheckInterval until ctx ends (see events/watermark for how). A gap is
// logged at error level with the command that gets it again, counted in
// Stats.Missed, and handed to Config.OnMissed; it is reported again at the
// next check until OnMissed returns nil (or, without OnMissed, once).
// Nothing is checked for a Replay durable: ICP_REPLAY is the way back, not
// the history. A durable this process created starts its record where it
// starts: the events the stream held before, or dropped before, were never
// meant for it (read the event store for those, see events/CONSUMERS.md).
func (c *Consumer) watchMissed(ctx context.Context, nc *nats.Conn) {
	tick := time.NewTicker(c.cfg.MissedCheckInterval)
	defer tick.Stop()
	for {
		c.checkMissed(ctx, nc, true)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// checkMissed runs one check; report false only records the durable's
// progress (on a graceful stop) and leaves a gap to the next start.
func (c *Consumer) checkMissed(ctx context.Context, nc *nats.Conn, report bool) {
	js, err := jetstream.New(nc)
	if err != nil {
		c.log.Warn("consumer: missed-events check", "err", err)
		return
	}
	t, err := watermark.Open(ctx, js, events.BusStream, c.cfg.Durable, watermark.HeaderPosition)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("consumer: missed-events check; retried later", "err", err)
		}
		return
	}
	if c.created {
		if err := t.Init(ctx, c.startSeq); err != nil {
			if ctx.Err() == nil {
				c.log.Warn("consumer: missed-events check; retried later", "err", err)
			}
			return
		}
		c.created = false
	}
	gap, found, err := t.Check(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("consumer: missed-events check; retried later", "err", err)
		}
		return
	}
	if !found || !report {
		return
	}
	m := Missed{FromPosition: gap.After.Position + 1, FromSeq: gap.After.Seq + 1, ToSeq: gap.FirstSeq - 1}
	if gap.FirstPosition > 0 {
		m.ToPosition = gap.FirstPosition - 1
	}
	c.stats.missed.Add(1)
	c.log.Error("consumer: ICP_EVENTS dropped events before this durable acknowledged them; publish them again with the command and read them with a Replay consumer",
		"command", m.Command(), "from_position", m.FromPosition, "to_position", m.ToPosition,
		"from_seq", m.FromSeq, "to_seq", m.ToSeq)
	if c.cfg.OnMissed != nil {
		if err := c.cfg.OnMissed(ctx, m); err != nil {
			c.log.Warn("consumer: OnMissed failed; reported again at the next check", "err", err)
			return
		}
	}
	if err := t.Close(ctx, gap, gap.After.Position); err != nil {
		c.log.Warn("consumer: missed events reported, not recorded as reported; reported again", "err", err)
	}
}

// recordProgress records the durable's progress once its last
// acknowledgements are in (after the drain closed the consuming
// connection), on a short connection of its own: a gap that opens while the
// durable is down then starts where it stopped.
func (c *Consumer) recordProgress(ctx context.Context) {
	nc, err := c.connect(nil)
	if err != nil {
		c.log.Warn("consumer: progress not recorded on stop", "err", err)
		return
	}
	defer nc.Close()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.ShutdownTimeout)
	defer cancel()
	c.checkMissed(rctx, nc, false)
}
