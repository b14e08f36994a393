package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/relay"
)

// RealignCmd realigns the bus with the event store after the relay refused
// to publish because they disagree (relay.ErrDiverged: the event store was
// restored from an older copy, or icpd was pointed at another store). It
// checks that they really disagree, that no relay holds the lease, and then
// purges ICP_EVENTS (relay.Realign): the next relay publishes the event
// store again from its start. The read model still holds what the bus
// carried: rebuild it afterwards with `icpctl rebuild`.
//
// With the embedded default, run it with icpd stopped: icpctl then starts
// the embedded NATS on <data-dir>/nats itself (see RepublishCmd for why
// not alongside icpd). With a shared NATS (--nats), stop every relay first.
type RealignCmd struct {
	StoreFlags `embed:""`
	NATSAuth   NATSAuthFlags `embed:""`
	NATS       string        `name:"nats" env:"ICP_NATS_URL" help:"NATS URL of the bus (empty: start the embedded server on <data-dir>/nats; icpd must be stopped)."`
	Force      bool          `name:"force" help:"Purge even when the bus and the store agree, or a relay holds the lease."`
	Timeout    time.Duration `name:"timeout" default:"10s" help:"How long each call to NATS or the event store may take."`
}

// Validate is called by kong after parsing.
func (c *RealignCmd) Validate() error {
	var errs []error
	if err := c.StoreFlags.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("--timeout %s: want > 0", c.Timeout))
	}
	if c.NATS == "" && c.EventStore != "" {
		errs = append(errs, errors.New("--nats is required with --event-store"))
	}
	return errors.Join(errs...)
}

// Run checks, purges and says what to do next.
func (c *RealignCmd) Run(g *Globals) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 4*c.Timeout)
	defer cancel()
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
	if holder, err := leaseHolder(ctx, nc); err != nil {
		return err
	} else if holder != "" && !c.Force {
		return fmt.Errorf("relay %q holds the lease: stop every relay (icpd with the relay role) first, or wait %s after it stopped", holder, relay.DefaultLeaseTTL)
	}
	n, err := relay.Realign(ctx, nc)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "purged %d messages from %s; the next relay publishes the event store again from its start.\n", n, events.BusStream)
	fmt.Fprintf(g.Stdout, "Next: rebuild the read model (icpctl rebuild), then start icpd. Downstream consumers receive every stored event again.\n")
	return nil
}

// leaseHolder returns the instance id of the relay holding the lease in
// the default lease bucket, or "" when none does.
func leaseHolder(ctx context.Context, nc *nats.Conn) (string, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return "", err
	}
	kv, err := js.KeyValue(ctx, relay.DefaultLeaseBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("relay lease bucket: %w", err)
	}
	e, err := kv.Get(ctx, relay.LeaseKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("relay lease: %w", err)
	}
	return string(e.Value()), nil
}
