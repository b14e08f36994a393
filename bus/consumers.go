package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/events"
)

// projectorMaxWaiting bounds the pull requests the projector's durable keeps
// waiting across its replicas.
const projectorMaxWaiting = 512

// ProjectorDurable is what the read model projector's pull durable on
// ICP_EVENTS is made of; every other setting is fixed here.
type ProjectorDurable struct {
	Name          string
	AckWait       time.Duration
	MaxAckPending int
}

func (d ProjectorDurable) config() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       d.Name,
		Description:   "ICP read model projector",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       d.AckWait,
		// Never give up on a message: what can never succeed is
		// dead-lettered by the projector, everything else is retried.
		MaxDeliver:     -1,
		MaxAckPending:  d.MaxAckPending,
		MaxWaiting:     projectorMaxWaiting,
		FilterSubjects: []string{events.BusSubjects},
		ReplayPolicy:   jetstream.ReplayInstantPolicy,
	}
}

// EnsureProjectorDurable creates or updates the projector's pull durable on
// ICP_EVENTS and returns it. Its settings are deterministic, so replicas
// starting together create the same consumer; an existing durable keeps its
// start position (it cannot change).
//
// Releases before the batching projector used a push consumer of the same
// name, which cannot be turned into a pull consumer in place. Such a
// consumer is replaced by a pull consumer that starts after its ack floor
// (replacing is called with it first): every message it had not
// acknowledged is delivered again, and the read model's version guard turns
// what was in fact applied into an ack.
func EnsureProjectorDurable(ctx context.Context, js jetstream.JetStream, d ProjectorDurable, replacing func(ackFloor uint64)) (jetstream.Consumer, error) {
	cfg := d.config()
	c, err := js.Consumer(ctx, events.BusStream, d.Name)
	switch {
	case err == nil:
		info := c.CachedInfo()
		cfg.DeliverPolicy, cfg.OptStartSeq = info.Config.DeliverPolicy, info.Config.OptStartSeq
	case errors.Is(err, jetstream.ErrNotPullConsumer):
		push, err := js.PushConsumer(ctx, events.BusStream, d.Name)
		if err != nil {
			return nil, fmt.Errorf("consumer %s: %w", d.Name, err)
		}
		floor := push.CachedInfo().AckFloor.Stream
		if floor > 0 {
			cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
			cfg.OptStartSeq = floor + 1
		}
		replacing(floor)
		if err := js.DeleteConsumer(ctx, events.BusStream, d.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("delete push consumer %s: %w", d.Name, err)
		}
	case errors.Is(err, jetstream.ErrConsumerNotFound):
	default:
		return nil, fmt.Errorf("consumer %s: %w", d.Name, err)
	}
	c, err = js.CreateOrUpdateConsumer(ctx, events.BusStream, cfg)
	if err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", d.Name, err)
	}
	return c, nil
}

// WorkerDurable is what a worker's push durable (events/consumer) is made
// of; every other setting is fixed here.
type WorkerDurable struct {
	// Name is the durable and its queue group.
	Name string
	// Stream is the stream it reads (ICP_EVENTS or ICP_REPLAY), Subjects
	// that stream's subject filter.
	Stream, Subjects string
	// Deliver is the push subject: one per durable and stream.
	Deliver string
	AckWait time.Duration
	// MaxAckPending is the worker's concurrency: 1 keeps a single message
	// outstanding across every process of the durable, in bus order.
	MaxAckPending int
	// StartNew makes a new durable deliver only what is published after it
	// was created (otherwise all the stream holds).
	StartNew bool
}

func (d WorkerDurable) config() jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		Durable:        d.Name,
		Description:    "ICP event worker " + d.Name,
		DeliverSubject: d.Deliver,
		DeliverGroup:   d.Name,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        d.AckWait,
		// Never give up on a message in the server: what fails too often is
		// dead-lettered by the handler, with its reason; anything else
		// (an unknown newer version) must not be dropped.
		MaxDeliver:    -1,
		MaxAckPending: d.MaxAckPending,
		FilterSubject: d.Subjects,
		ReplayPolicy:  jetstream.ReplayInstantPolicy,
	}
	if d.StartNew {
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	}
	return cfg
}

// Created says where a durable EnsureWorkerDurable created starts: after
// stream sequence StartSeq. Zero when the durable existed.
type Created struct {
	New      bool
	StartSeq uint64
}

// EnsureWorkerDurable creates the worker's push durable, or updates an
// existing one to d. An existing durable keeps its start point (a deliver
// policy cannot change once created). Processes sharing the durable build
// the same configuration, so starting them together is safe. It refuses a
// pull consumer of the same name.
func EnsureWorkerDurable(ctx context.Context, js jetstream.JetStream, d WorkerDurable) (Created, error) {
	cfg := d.config()
	c, err := js.PushConsumer(ctx, d.Stream, d.Name)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		created, err := createWorkerDurable(ctx, js, d, cfg)
		if err == nil || !alreadyExists(err) {
			return created, err
		}
		// Another process created it meanwhile: update it below.
		if c, err = js.PushConsumer(ctx, d.Stream, d.Name); err != nil {
			return Created{}, workerDurableErr(d, err)
		}
	case err != nil:
		return Created{}, workerDurableErr(d, err)
	}
	info := c.CachedInfo()
	cfg.DeliverPolicy = info.Config.DeliverPolicy
	cfg.OptStartSeq = info.Config.OptStartSeq
	cfg.OptStartTime = info.Config.OptStartTime
	if _, err := js.UpdatePushConsumer(ctx, d.Stream, cfg); err != nil {
		return Created{}, fmt.Errorf("update durable %s: %w", d.Name, err)
	}
	return Created{}, nil
}

// createWorkerDurable creates the durable and reads, just before, where it
// starts: what the stream held before was never meant for it.
func createWorkerDurable(ctx context.Context, js jetstream.JetStream, d WorkerDurable, cfg jetstream.ConsumerConfig) (Created, error) {
	s, err := js.Stream(ctx, d.Stream)
	if err != nil {
		return Created{}, fmt.Errorf("stream %s: %w", d.Stream, err)
	}
	if _, err := js.CreatePushConsumer(ctx, d.Stream, cfg); err != nil {
		if alreadyExists(err) {
			return Created{}, err
		}
		return Created{}, fmt.Errorf("create durable %s: %w", d.Name, err)
	}
	st := s.CachedInfo().State
	c := Created{New: true, StartSeq: st.LastSeq}
	if cfg.DeliverPolicy == jetstream.DeliverAllPolicy && st.FirstSeq > 0 {
		c.StartSeq = st.FirstSeq - 1
	}
	return c, nil
}

func alreadyExists(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrConsumerNameAlreadyInUse) || (errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeConsumerAlreadyExists || apiErr.ErrorCode == jetstream.JSErrCodeConsumerExists))
}

func workerDurableErr(d WorkerDurable, err error) error {
	if errors.Is(err, jetstream.ErrNotPushConsumer) {
		return fmt.Errorf("durable %s exists as a pull consumer; choose another Durable or delete it", d.Name)
	}
	return fmt.Errorf("durable %s: %w", d.Name, err)
}

// maxDurableName bounds a durable's name: JetStream keeps it in a file
// name and in every subject of the durable's API.
const maxDurableName = 128

// CheckDurableName reports why name cannot name a durable consumer, or nil.
// The rule is JetStream's for names that become file names (no '.', '*',
// '>', path separator or whitespace) and this package's length bound; the
// projector and every worker check their durable against it before they
// connect, so a bad name is a configuration error, not a server refusal.
func CheckDurableName(name string) error {
	if name == "" {
		return errors.New("empty")
	}
	if len(name) > maxDurableName || strings.ContainsAny(name, ".*>/\\ \t\r\n\f") {
		return fmt.Errorf("%q: at most %d characters, none of '.', '*', '>', '/', '\\' or whitespace", name, maxDurableName)
	}
	return nil
}
