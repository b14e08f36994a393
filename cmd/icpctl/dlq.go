package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/bus"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/projections"
	"github.com/icpservice/icp/projections/mongomodel"
	"github.com/icpservice/icp/projections/projector"
	"github.com/icpservice/icp/projections/sqlitemodel"
)

// DLQCmd lists and re-drives the dead letters of one consumer: the messages
// it copied to icp.dlq.<consumer> on the stream ICP_DLQ with the reason
// (see events.HeaderDLQReason and the other dead-letter headers).
type DLQCmd struct {
	List    DLQListCmd    `cmd:"" help:"List a consumer's dead letters: sequence, time, event id, type and reason."`
	Redrive DLQRedriveCmd `cmd:"" help:"Re-drive a consumer's dead letters and remove those that were re-driven."`
}

// DLQFlags are what both dlq subcommands need: the bus, and the consumer.
type DLQFlags struct {
	StoreFlags `embed:""`
	NATSAuth   NATSAuthFlags `embed:""`
	Consumer   string        `name:"consumer" required:"" help:"Durable name of the consumer (the read model's projector is \"projector\"; a worker's is its Config.Durable)."`
	NATS       string        `name:"nats" env:"ICP_NATS_URL" help:"NATS URL of a bus of one's own (empty: icpd's embedded server at --embedded-nats-addr while icpd runs, else start it on <data-dir>/nats)."`
	Timeout    time.Duration `name:"timeout" default:"10s" help:"How long one request to JetStream waits for its answer."`
}

func (f *DLQFlags) validate() error {
	var errs []error
	if err := f.StoreFlags.validate(); err != nil {
		errs = append(errs, err)
	}
	if f.Consumer == "" || strings.ContainsAny(f.Consumer, ".*> \t\r\n") {
		errs = append(errs, fmt.Errorf("--consumer %q: want a durable name, without '.', '*', '>' or whitespace", f.Consumer))
	}
	if f.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("--timeout %s: want > 0", f.Timeout))
	}
	if err := f.NATSAuth.validate(); err != nil {
		errs = append(errs, err)
	}
	if f.NATS == "" && f.EventStore != "" {
		errs = append(errs, errors.New("--nats is required with --event-store"))
	}
	return errors.Join(errs...)
}

// DLQListCmd prints a consumer's dead letters as a table on stdout.
type DLQListCmd struct {
	DLQFlags `embed:""`
	Limit    int `name:"limit" default:"1000" help:"Print at most this many, oldest first (0: all)."`
}

// Validate is called by kong after parsing.
func (c *DLQListCmd) Validate() error {
	err := c.DLQFlags.validate()
	if c.Limit < 0 {
		err = errors.Join(err, fmt.Errorf("--limit %d: want >= 0", c.Limit))
	}
	return err
}

// Run lists the dead letters.
func (c *DLQListCmd) Run(g *Globals) error {
	ctx, stop := interruptible()
	defer stop()
	js, closeBus, err := c.connect(g)
	if err != nil {
		return err
	}
	defer closeBus()
	tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tEVENT\tTYPE\tREASON")
	n := 0
	err = bus.EachDeadLetter(ctx, js, c.Consumer, c.Limit, func(d bus.DeadLetter) error {
		n++
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", d.Sequence, d.Time.UTC().Format(time.RFC3339), orDash(d.Get(events.HeaderID)),
			orDash(d.Get(events.HeaderType)), orDash(d.Get(events.HeaderDLQReason)))
		return nil
	})
	if ferr := tw.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stderr, "dlq: %d dead letters of %s on %s\n", n, c.Consumer, events.DLQSubject(c.Consumer))
	return nil
}

// DLQRedriveCmd re-drives dead letters and removes each one it re-drove.
//
// How depends on who dead-lettered it (events.HeaderDLQBy):
//
//   - The projector: from the event store, never from the message. The
//     store must hold the dead letter's event (same id, stream and version);
//     the read model's view of that ICP is then brought up to that version
//     from the stored events (projector.Reapply). A dead letter whose event
//     the store does not hold (a forged message) is kept: there is nothing
//     to apply.
//   - A worker (events/consumer): the original message, body and headers,
//     is published again on ICP_REPLAY, subject icp.replay.<EventType>,
//     where the worker's replay durable (consumer.Config.Replay) takes it.
//     Not on ICP_EVENTS: the relay's resume point is the last message there
//     and every other durable would get it too. Its Nats-Msg-Id is derived
//     from the dead letter's sequence, so a re-drive repeated within the
//     replay stream's window is stored once.
//
// A dead letter that cannot be re-driven is kept and reported; the command
// then exits non-zero.
type DLQRedriveCmd struct {
	DLQFlags  `embed:""`
	ID        string `name:"id" help:"Re-drive only the dead letters of this event id (default: all of the consumer's)."`
	ReadModel string `name:"read-model" env:"ICP_READ_MODEL" help:"icpd's read model (mongodb://...) for the projector's dead letters; empty: the SQLite read model in --data-dir."`
}

// Validate is called by kong after parsing.
func (c *DLQRedriveCmd) Validate() error { return c.DLQFlags.validate() }

// Run re-drives the dead letters.
func (c *DLQRedriveCmd) Run(g *Globals) error {
	ctx, stop := interruptible()
	defer stop()
	js, closeBus, err := c.connect(g)
	if err != nil {
		return err
	}
	defer closeBus()
	r := redriver{cmd: c, g: g, js: js}
	defer r.close()

	var todo []bus.DeadLetter
	if err := bus.EachDeadLetter(ctx, js, c.Consumer, 0, func(d bus.DeadLetter) error {
		if c.ID == "" || d.Get(events.HeaderID) == c.ID {
			todo = append(todo, d)
		}
		return nil
	}); err != nil {
		return err
	}
	if c.ID != "" && len(todo) == 0 {
		return fmt.Errorf("no dead letter of event %s on %s", c.ID, events.DLQSubject(c.Consumer))
	}
	kept := 0
	for _, d := range todo {
		how, err := r.redrive(ctx, d)
		if err == nil {
			err = r.remove(ctx, d)
		}
		if err != nil {
			kept++
			fmt.Fprintf(g.Stdout, "kept %d %s: %v\n", d.Sequence, orDash(d.Get(events.HeaderID)), err)
			continue
		}
		fmt.Fprintf(g.Stdout, "redriven %d %s: %s\n", d.Sequence, orDash(d.Get(events.HeaderID)), how)
	}
	fmt.Fprintf(g.Stderr, "dlq: %d of %d dead letters of %s re-driven and removed\n", len(todo)-kept, len(todo), c.Consumer)
	if kept > 0 {
		return fmt.Errorf("%d dead letters could not be re-driven and are kept", kept)
	}
	return nil
}

// redriver holds what re-driving needs, opened on first use: the projector's
// dead letters need the event store and the read model, a worker's only
// the bus.
type redriver struct {
	cmd *DLQRedriveCmd
	g   *Globals
	js  jetstream.JetStream

	store  events.Store
	rm     projections.ReadModel
	closer []func()
}

func (r *redriver) close() {
	for i := len(r.closer) - 1; i >= 0; i-- {
		r.closer[i]()
	}
}

func (r *redriver) redrive(ctx context.Context, d bus.DeadLetter) (string, error) {
	switch by := d.By(); by {
	case events.DLQByProjector:
		return r.reapply(ctx, d)
	case events.DLQByConsumer:
		return r.republish(ctx, d)
	default:
		return "", fmt.Errorf("dead letters written by %q cannot be re-driven", by)
	}
}

// reapply re-drives a projector's dead letter from the event store.
func (r *redriver) reapply(ctx context.Context, d bus.DeadLetter) (string, error) {
	stream := d.Get(events.HeaderStream)
	if stream == "" && d.Get(events.HeaderSubject) != "" {
		stream = events.StreamID(d.Get(events.HeaderSubject))
	}
	version, err := strconv.ParseUint(d.Get(events.HeaderICPVersion), 10, 64)
	if err != nil || stream == "" || d.Get(events.HeaderID) == "" {
		return "", fmt.Errorf("%w: the dead letter names no event (id %q, stream %q, version %q)",
			projector.ErrNotStored, d.Get(events.HeaderID), stream, d.Get(events.HeaderICPVersion))
	}
	if err := r.openStores(ctx); err != nil {
		return "", err
	}
	n, err := projector.Reapply(ctx, r.store, r.rm, stream, version, d.Get(events.HeaderID))
	if err != nil {
		return "", err
	}
	if n == 0 {
		return fmt.Sprintf("the read model already holds %s at version %d or later", stream, version), nil
	}
	return fmt.Sprintf("re-applied from the event store: %s up to version %d (%d versions written)", stream, version, n), nil
}

func (r *redriver) openStores(ctx context.Context) error {
	if r.store != nil {
		return nil
	}
	st, err := r.cmd.openStore(ctx)
	if err != nil {
		return err
	}
	r.closer = append(r.closer, func() { _ = st.Close() })
	var rm projections.ReadModel
	if r.cmd.ReadModel != "" {
		rm, err = mongomodel.Open(ctx, r.cmd.ReadModel, mongomodel.Options{})
	} else {
		if err := mustExist(r.cmd.readModelPath(), "read model"); err != nil {
			return err
		}
		rm, err = sqlitemodel.Open(ctx, r.cmd.readModelPath(), sqlitemodel.Options{})
	}
	if err != nil {
		return fmt.Errorf("read model: %w", err)
	}
	r.closer = append(r.closer, func() { _ = rm.Close() })
	r.store, r.rm = st, rm
	return nil
}

// republish re-drives a worker's dead letter onto ICP_REPLAY
// (bus.RedriveMsg), creating the stream as icpctl republish does when it
// does not exist; an existing one keeps its limits.
func (r *redriver) republish(ctx context.Context, d bus.DeadLetter) (string, error) {
	m, id, err := bus.RedriveMsg(d)
	if err != nil {
		return "", err
	}
	if _, err := r.js.Stream(ctx, events.ReplayStream); errors.Is(err, jetstream.ErrStreamNotFound) {
		err = bus.EnsureReplayStream(ctx, r.js, bus.DefaultReplayMaxAge)
		if err != nil {
			return "", err
		}
	} else if err != nil {
		return "", err
	}
	pctx, cancel := context.WithTimeout(ctx, r.cmd.Timeout)
	defer cancel()
	if _, err := r.js.PublishMsg(pctx, m, jetstream.WithMsgID(id), jetstream.WithExpectStream(events.ReplayStream)); err != nil {
		return "", fmt.Errorf("publish on %s: %w", m.Subject, err)
	}
	return "published again on " + m.Subject + " (" + events.ReplayStream + ")", nil
}

// remove deletes the re-driven dead letter.
func (r *redriver) remove(ctx context.Context, d bus.DeadLetter) error {
	if err := bus.RemoveDeadLetter(ctx, r.js, d); err != nil {
		return fmt.Errorf("re-driven, but not removed: %w", err)
	}
	return nil
}

// connect returns JetStream on the bus connectBus finds: --nats, icpd's
// embedded server while icpd runs, or the embedded server of the data
// directory started here (with the credentials of either).
func (f *DLQFlags) connect(g *Globals) (jetstream.JetStream, func(), error) {
	nc, cleanup, err := connectBus(g, busTarget{f.StoreFlags, f.NATSAuth, f.NATS, f.Timeout}, "dlq")
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(f.Timeout))
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return js, cleanup, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
