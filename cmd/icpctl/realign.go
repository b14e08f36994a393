package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/relay"
	"github.com/icpservice/icp/platform/datadir"
)

// RealignCmd realigns the bus and the read model with the event store after
// the relay refused to publish because the bus and the store disagree
// (relay.ErrDiverged: the event store was restored from an older copy, or
// icpd was pointed at another store). It checks that they really disagree
// and that no relay holds the lease, then, in this order:
//  1. rebuilds the embedded read model from the store (RebuildCmd), so
//     that nothing the store lost stays visible;
//  2. gives the store a new generation (events.Generations): the events
//     published again carry it, and downstream workers tell them from the
//     history they replace;
//  3. purges ICP_EVENTS (relay.Realign): the next relay publishes the event
//     store again from its start.
//
// A failure at any step leaves the bus untouched until step 3, so running
// the command again finishes the job. With EventStoreDB or a read model
// other than the embedded one, steps 1 and 2 are the operator's (see
// docs/operations.md).
//
// With the embedded default, run it with icpd stopped: icpctl then starts
// the embedded NATS on <data-dir>/nats itself (see RepublishCmd for why
// not alongside icpd). With a shared NATS (--nats), stop every relay first.
type RealignCmd struct {
	StoreFlags `embed:""`
	NATSAuth   NATSAuthFlags `embed:""`
	NATS       string        `name:"nats" env:"ICP_NATS_URL" help:"NATS URL of the bus (empty: start the embedded server on <data-dir>/nats; icpd must be stopped)."`
	ReadModel  string        `name:"read-model" env:"ICP_READ_MODEL" help:"icpd's read model setting; the embedded SQLite read model (empty) is rebuilt here, any other is the operator's to rebuild."`
	Force      bool          `name:"force" help:"Purge even when the bus and the store agree, or a relay holds the lease."`
	Timeout    time.Duration `name:"timeout" default:"10s" help:"How long each call to NATS or the event store may take."`
}

// Validate is called by kong after parsing.
func (c *RealignCmd) Validate() error {
	var errs []error
	if err := c.StoreFlags.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := checkTimeout(c.Timeout); err != nil {
		errs = append(errs, err)
	}
	if c.NATS == "" && c.EventStore != "" {
		errs = append(errs, errors.New("--nats is required with --event-store"))
	}
	return errors.Join(errs...)
}

// Run checks, realigns and says what is left to do.
func (c *RealignCmd) Run(g *Globals) error {
	sctx, stop := interruptible()
	defer stop()
	ctx, cancel := context.WithTimeout(sctx, 4*c.Timeout)
	defer cancel()
	if c.NATS == "" && c.EventStore == "" {
		if err := refuseWhileServing(c.DataDir); err != nil {
			return err
		}
	}
	nc, closeBus, err := connectBus(g, busTarget{c.StoreFlags, c.NATSAuth, c.NATS, c.Timeout}, "realign")
	if err != nil {
		return err
	}
	defer closeBus()
	st, err := c.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()

	check := relay.CheckAgreement(ctx, nc, st)
	switch {
	case errors.Is(check, relay.ErrDiverged):
		fmt.Fprintf(g.Stderr, "realign: %v\n", check)
	case check != nil:
		return fmt.Errorf("cannot tell whether the bus and the event store disagree: %w", check)
	case !c.Force:
		return errors.New("the bus and the event store agree: nothing to realign (--force purges " + events.BusStream + " all the same)")
	}
	if holder, err := relay.LeaseHolder(ctx, nc, relay.DefaultLeaseBucket); err != nil {
		return err
	} else if holder != "" && !c.Force {
		return fmt.Errorf("relay %q holds the lease: stop every relay (icpd with the relay role) first, or wait %s after it stopped", holder, relay.DefaultLeaseTTL)
	}
	return c.realign(sctx, g, nc, st)
}

// realign rebuilds the embedded read model, replaces the store's
// generation and purges the bus, in that order (see RealignCmd). parent
// bounds nothing but its cancellation: the rebuild takes as long as the
// history needs, and each later step gets --timeout twice over.
func (c *RealignCmd) realign(parent context.Context, g *Globals, nc *nats.Conn, st events.Store) error {
	embeddedModel := c.EventStore == "" && c.ReadModel == ""
	if embeddedModel {
		rb := &RebuildCmd{StoreFlags: c.StoreFlags, MaxStates: defaultMaxStates, Progress: "none"}
		if err := rb.Run(g); err != nil {
			return fmt.Errorf("%w; the bus was not purged: run icpctl realign again", err)
		}
	}
	ctx, cancel := context.WithTimeout(parent, 2*c.Timeout)
	defer cancel()
	gens, hasGens := st.(events.Generations)
	if hasGens {
		gen, err := gens.NewGeneration(ctx)
		if err != nil {
			return fmt.Errorf("%w; the bus was not purged: run icpctl realign again", err)
		}
		fmt.Fprintf(g.Stdout, "the event store is now generation %s: every message published from now on carries it in %s\n", gen, events.HeaderGeneration)
	}
	n, err := relay.Realign(ctx, nc)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		// A bus that never held the stream (a restore on a new host):
		// the relay creates it and publishes the store from its start.
		n, err = 0, nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "purged %d messages from %s; the next relay publishes the event store again from its start.\n", n, events.BusStream)
	switch {
	case embeddedModel:
		fmt.Fprintf(g.Stdout, "Next: start icpd. Downstream consumers receive every stored event again, under the new generation.\n")
	case hasGens:
		fmt.Fprintf(g.Stdout, "Next: rebuild the read model from the event store (see docs/operations.md), then start icpd. Downstream consumers receive every stored event again, under the new generation.\n")
	default:
		fmt.Fprintf(g.Stdout, "Next: rebuild the read model from the event store (see docs/operations.md), then start icpd. Downstream consumers receive every stored event again; this store keeps no generation (see docs/operations.md).\n")
	}
	return nil
}

// refuseWhileServing fails when another process (a running icpd) has the
// embedded event store or read model in dataDir open.
func refuseWhileServing(dataDir string) error {
	for _, name := range []string{datadir.EventsFile, datadir.ReadModelFile} {
		path := filepath.Join(dataDir, name)
		busy, err := dbOpenElsewhere(path)
		if err != nil {
			return fmt.Errorf("cannot tell whether icpd is running on %s: %w", dataDir, err)
		}
		if busy {
			return fmt.Errorf("another process (a running icpd?) has %s open: stop icpd first", path)
		}
	}
	return nil
}

// defaultMaxStates is RebuildCmd's --max-states default, for the rebuilds
// realign and restore run.
const defaultMaxStates = 100_000
