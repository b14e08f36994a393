package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/bus"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/internal/natsauth"
	"github.com/icpservice/icp/internal/natsserver"
	"github.com/icpservice/icp/platform/datadir"
	"github.com/icpservice/icp/platform/redact"
)

// The replay stream that republish writes to.
const (
	ReplayStream        = events.ReplayStream
	ReplaySubjectPrefix = events.ReplaySubjectPrefix
	ReplaySubjects      = events.ReplaySubjects
)

// RepublishCmd publishes a range of the event history again, for a
// downstream consumer that lost data, onto the JetStream stream ICP_REPLAY
// (subjects icp.replay.<EventType>), in store order, with the headers the
// relay gives them (events.Headers) and Nats-Msg-Id = event id.
//
// Why not onto ICP_EVENTS: the relay's resume point is the position in the
// last message of ICP_EVENTS, and each of its publishes expects the stream's
// last sequence (Nats-Expected-Last-Sequence). Old events appended there
// would put an old position at the tail: the relay would fail its next
// publish, re-read the tail and publish everything after that old position
// again; the part within the Duplicates window would be dropped as
// duplicates without moving the stream, so the relay would retry until the
// window passed, publishing nothing new meanwhile. A separate stream leaves
// the relay untouched whether icpd runs or not, and a downstream reads it
// with a consumer of its own, filtered on icp.replay.>.
//
// Duplicates: within ICP_REPLAY's deduplication window (2 minutes) a
// republished event that is already there (same Nats-Msg-Id) is dropped by
// JetStream; beyond it, it is stored again. Consumers must stay idempotent
// by event id and version, as they must for ICP_EVENTS.
//
// The bus: --nats names a NATS server of one's own. Without it, while icpd
// runs (another process has the data directory's event store open) icpctl
// connects to icpd's embedded server at --embedded-nats-addr; with icpd
// stopped it starts the embedded server on <data-dir>/nats itself (two
// servers on one JetStream directory would corrupt it, hence the check).
// Either way it presents icpd's credentials from <data-dir>/nats-auth unless
// --nats-creds or --nats-user say otherwise.
type RepublishCmd struct {
	StoreFlags   `embed:""`
	NATSAuth     NATSAuthFlags `embed:""`
	FromPosition uint64        `name:"from-position" required:"" help:"First global position to publish again (>= 1)."`
	ToPosition   uint64        `name:"to-position" help:"Last position to publish (default: the store's head when the command starts)."`
	NATS         string        `name:"nats" env:"ICP_NATS_URL" help:"NATS URL of a bus of one's own (empty: icpd's embedded server at --embedded-nats-addr while icpd runs, else start it on <data-dir>/nats)."`
	MaxAge       time.Duration `name:"replay-max-age" default:"168h" help:"How long ICP_REPLAY keeps what is published to it."`
	Timeout      time.Duration `name:"timeout" default:"10s" help:"How long one publish waits for JetStream's answer before it is sent again."`
	Progress     string        `name:"progress" default:"auto" enum:"auto,bar,lines,none" help:"Progress on stderr: a bar on a terminal (auto), a bar, plain lines, or none."`
}

// Validate is called by kong after parsing.
func (c *RepublishCmd) Validate() error {
	var errs []error
	if err := c.StoreFlags.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.FromPosition < 1 {
		errs = append(errs, errors.New("--from-position must be at least 1"))
	}
	if c.ToPosition != 0 && c.ToPosition < c.FromPosition {
		errs = append(errs, fmt.Errorf("--to-position %d is before --from-position %d", c.ToPosition, c.FromPosition))
	}
	if c.MaxAge < bus.ReplayDuplicates {
		errs = append(errs, fmt.Errorf("--replay-max-age %s: want at least the deduplication window, %s", c.MaxAge, bus.ReplayDuplicates))
	}
	if err := checkTimeout(c.Timeout); err != nil {
		errs = append(errs, err)
	}
	if c.NATS == "" && c.EventStore != "" {
		errs = append(errs, errors.New("--nats is required with --event-store"))
	}
	if err := c.NATSAuth.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Run publishes the range and prints what JetStream stored on stdout.
func (c *RepublishCmd) Run(g *Globals) error {
	ctx, stop := interruptible()
	defer stop()
	nc, closeBus, err := c.connect(g)
	if err != nil {
		return err
	}
	defer closeBus()
	st, err := c.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()

	head, err := st.Head(ctx)
	if err != nil {
		return fmt.Errorf("event store head: %w", err)
	}
	if c.FromPosition > head {
		return fmt.Errorf("--from-position %d is beyond the event store's last position, %d", c.FromPosition, head)
	}
	to := c.ToPosition
	if to == 0 || to > head {
		to = head
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(c.Timeout))
	if err != nil {
		return err
	}
	if err := bus.EnsureReplayStream(ctx, js, c.MaxAge); err != nil {
		return err
	}
	n, stored, err := c.publishRange(ctx, g, js, st, to)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "republished %d events (positions %d to %d) to %s on %s<EventType>: %d stored, %d already held there (same Nats-Msg-Id within its %s window)\n",
		n, c.FromPosition, to, ReplayStream, ReplaySubjectPrefix, stored, n-stored, bus.ReplayDuplicates)
	return nil
}

// publishRange publishes the stored events from --from-position to to, in
// store order, and returns how many it published and how many of those
// JetStream stored (the others it held already). An error names the
// position to rerun from.
func (c *RepublishCmd) publishRange(ctx context.Context, g *Globals, js jetstream.JetStream, st events.Store, to uint64) (n, stored uint64, err error) {
	p := newProgress(g.Stderr, c.Progress, "republish", "events")
	defer p.done()
	start := time.Now()
	after := c.FromPosition - 1
	for after < to {
		recs, err := st.ReadAll(ctx, after, 1024)
		if err != nil {
			return n, stored, fmt.Errorf("read the events after position %d: %w", after, err)
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			if r.Position > to {
				after = to
				break
			}
			isDup, err := c.publish(ctx, js, r)
			if err != nil {
				return n, stored, fmt.Errorf("event %s at position %d: %w (positions %d to %d are published; rerun with --from-position %d)",
					r.ID, r.Position, err, c.FromPosition, after, r.Position)
			}
			n++
			if !isDup {
				stored++
			}
			after = r.Position
		}
		p.update("publish", after, to, n, time.Since(start))
	}
	return n, stored, nil
}

// publish sends one event and waits for JetStream's acknowledgement,
// sending it again with the same Nats-Msg-Id (deduplicated) when no answer
// came. It reports whether JetStream already held the message.
//
// nats.go's JetStream API rather than watermill: the acknowledgement's
// duplicate flag is what tells the operator how much was really re-sent,
// and watermill's publisher does not return it. One publish at a time keeps
// store order on the stream whatever fails.
func (c *RepublishCmd) publish(ctx context.Context, js jetstream.JetStream, r events.Recorded) (bool, error) {
	msg := bus.ReplayMsg(r)
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 100 * time.Millisecond
	bo.MaxInterval = 2 * time.Second
	return backoff.Retry(ctx, func() (bool, error) {
		pctx, cancel := context.WithTimeout(ctx, c.Timeout)
		defer cancel()
		ack, err := js.PublishMsg(pctx, msg, jetstream.WithMsgID(r.ID), jetstream.WithExpectStream(ReplayStream))
		if err != nil {
			var apiErr *jetstream.APIError
			if errors.As(err, &apiErr) {
				return false, backoff.Permanent(err) // JetStream refused it: sending again cannot help
			}
			return false, err
		}
		return ack.Duplicate, nil
	}, backoff.WithBackOff(bo), backoff.WithMaxTries(6))
}

// connect returns a connection to the bus: --nats, icpd's embedded server
// while icpd runs, or the embedded server on the data directory started here.
func (c *RepublishCmd) connect(g *Globals) (*nats.Conn, func(), error) {
	return connectBus(g, busTarget{c.StoreFlags, c.NATSAuth, c.NATS, c.Timeout}, "republish")
}

// busTarget is what a subcommand that talks to the bus was told: the data
// directory, the credentials, --nats and the time one call may take.
type busTarget struct {
	store   StoreFlags
	auth    NATSAuthFlags
	natsURL string
	timeout time.Duration
}

// connectBus connects tool (a subcommand's name) to the bus: --nats, icpd's
// embedded server while icpd runs, or the embedded server on the data
// directory, which it starts itself when no other process has the
// directory's event store open.
func connectBus(g *Globals, b busTarget, tool string) (*nats.Conn, func(), error) {
	c := b.store
	if b.natsURL != "" {
		return b.dial(b.natsURL, tool)
	}
	if err := mustExist(c.eventsPath(), "event store"); err != nil {
		return nil, nil, err
	}
	busy, err := dbOpenElsewhere(c.eventsPath())
	switch {
	case err != nil:
		return nil, nil, fmt.Errorf("%w; pass --nats", err)
	case busy:
		nc, closeNC, err := b.dial("nats://"+b.auth.EmbeddedAddr, tool)
		if err != nil {
			return nil, nil, fmt.Errorf("another process (a running icpd?) has %s open, but its embedded NATS does not answer at --embedded-nats-addr %s: %w; pass the address icpd listens on, or --nats",
				c.eventsPath(), b.auth.EmbeddedAddr, err)
		}
		return nc, closeNC, nil
	}
	id, err := natsauth.LoadOrCreate(c.DataDir)
	if err != nil {
		return nil, nil, fmt.Errorf("embedded NATS credentials: %w", err)
	}
	srv, err := natsserver.Start(natsserver.Config{StoreDir: filepath.Join(c.DataDir, datadir.NATSDir), Identity: id})
	if err != nil {
		return nil, nil, fmt.Errorf("embedded NATS: %w", err)
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv.Inner()), nats.Name("icpctl-"+tool),
		nats.UserJWTAndSeed(id.Service.JWT, id.Service.Seed))
	if err != nil {
		srv.Shutdown()
		return nil, nil, fmt.Errorf("connect to the embedded NATS: %w", err)
	}
	fmt.Fprintf(g.Stderr, "%s: started the embedded NATS server on %s\n", tool, filepath.Join(c.DataDir, datadir.NATSDir))
	// Every publish was acknowledged before the connection closes: nothing
	// is in flight. Shutdown flushes JetStream's files.
	return nc, func() { nc.Close(); srv.Shutdown() }, nil
}

// dial connects tool to the NATS server at url with the credentials b.auth
// names. No error it returns carries the URL's credentials.
func (b busTarget) dial(url, tool string) (*nats.Conn, func(), error) {
	auth, err := b.auth.options(b.store.DataDir)
	if err != nil {
		return nil, nil, err
	}
	nc, err := nats.Connect(url, append(auth, nats.Name("icpctl-"+tool), nats.Timeout(b.timeout))...)
	if err != nil {
		return nil, nil, redact.NewScrubber(url).Error(fmt.Errorf("connect to %s: %w", redact.URLs(url), err))
	}
	return nc, nc.Close, nil
}
