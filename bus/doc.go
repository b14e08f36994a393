// Package bus is the one home of this service's NATS JetStream topology and
// of what every part does the same way on it:
//
//   - the settings of every stream, durable consumer and key-value bucket the
//     service creates (ICP_EVENTS, ICP_DLQ, ICP_RELAY_DLQ, ICP_REPLAY, the
//     projector's pull durable, a worker's push durable, the relay's lease
//     bucket, the watermark bucket), and the calls that create or update
//     them;
//   - waiting for a stream another part owns (WaitForStream);
//   - dead-lettering, with one header schema for every writer (DeadLetterer,
//     PassedOver) and the reading, re-driving and removal of dead letters
//     (EachDeadLetter, RedriveMsg, RemoveDeadLetter);
//   - making values fit a NATS header (HeaderSafe, Printable, Malformed);
//   - the redelivery backoff of a message handed back (Backoff).
//
// The names of streams, subjects and event headers stay in events/bus.go:
// they are the published contract the codec and every consumer read.
//
// Every call here uses nats.go's jetstream API. watermill-nats can only
// create a stream or consumer named after a topic, without storage, limits,
// deduplication, ack or deliver settings, and its publisher hides the
// acknowledgement (duplicate flag, sequence) that dead-lettering and
// re-driving rely on. Watermill keeps the job it serves: a worker's
// subscriber and router in events/consumer. See docs/design-decisions.md,
// "The bus package".
package bus
