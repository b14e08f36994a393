package projector_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/projections"
	"github.com/icpservice/icp/projections/projector"
)

// An earlier release consumed with a push consumer of the same durable name.
// Upgrading replaces it with the pull consumer and resumes after what the old
// consumer had acknowledged: nothing it acked is delivered again, nothing it
// had not acked is skipped.
func TestPushConsumerOfAnEarlierReleaseIsResumedAfterItsAckFloor(t *testing.T) {
	e := newEnv(t)
	var ids []string
	for range 10 {
		id := uuid.NewString()
		ids = append(ids, id)
		e.publish(e.create(id))
	}
	// The earlier release's consumer, as it created it, having acked the
	// first four messages.
	if _, err := e.js.AddConsumer(events.BusStream, &nats.ConsumerConfig{
		Durable:        projector.DefaultDurable,
		DeliverSubject: "icp.deliver." + projector.DefaultDurable,
		DeliverGroup:   projector.DefaultDurable,
		DeliverPolicy:  nats.DeliverAllPolicy,
		AckPolicy:      nats.AckExplicitPolicy,
		AckWait:        30 * time.Second,
		MaxDeliver:     -1,
		MaxAckPending:  1,
		FilterSubject:  events.BusSubjects,
	}); err != nil {
		t.Fatal(err)
	}
	sub, err := e.js.QueueSubscribeSync(events.BusSubjects, projector.DefaultDurable, nats.Bind(events.BusStream, projector.DefaultDurable), nats.ManualAck())
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		m, err := sub.NextMsg(budget)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.AckSync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}

	p := e.start(e.config())
	for _, id := range ids[4:] {
		e.waitVersion(id, 1)
	}
	e.drained(projector.DefaultDurable)
	if s := p.Stats(); s.Applied != 6 || s.AlreadyApplied != 0 {
		t.Fatalf("stats %+v, want the 6 messages the old consumer had not acked, each applied once", s)
	}
	for _, id := range ids[:4] {
		if _, err := e.rm.Get(context.Background(), id); err != projections.ErrNotFound {
			t.Fatalf("ICP %s, acked by the old consumer, was delivered again (Get: %v)", id, err)
		}
	}
	if info := e.consumer(projector.DefaultDurable); info.Config.DeliverSubject != "" {
		t.Fatalf("the consumer is still a push consumer: %+v", info.Config)
	}
}
