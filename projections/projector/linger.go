package projector

import "time"

// batcher decides when the batch being gathered is handed to the writer.
// Under load (the previous batch held more than one message) a batch is
// held until linger has passed since its first message arrived, or until it
// is full; otherwise it goes as soon as the writer takes it. One read model
// commit per batch costs CPU mostly per commit, so under load fewer, larger
// batches leave more of the machine to the rest of the pipeline, for at
// most linger more latency; a lone event is never held.
//
// The timing rule is platform/groupcommit's Writer.Linger, but the job is
// another, so it is not built on that queue: groupcommit coalesces calls of
// many goroutines, each blocked until its own items are written and
// answered; here one goroutine (batchLoop) receives bus messages, decodes
// and checks each while the previous batch is written, and hands the batch
// over on a channel, in delivery order, with nobody waiting per message
// (acks and dead letters follow from the batch's outcome). The read model's
// writer behind it does run on groupcommit.
//
// Not safe for concurrent use: batchLoop owns it and selects on timer.C.
type batcher struct {
	linger    time.Duration // <= 0: never hold a batch
	last      int           // messages in the previous batch
	lingering bool          // the current batch is held until timer fires
	timer     *time.Timer   // stopped unless lingering
}

func newBatcher(linger time.Duration) *batcher {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &batcher{linger: linger, timer: t}
}

// arrived notes that the batch now holds n messages.
func (b *batcher) arrived(n int) {
	if n == 1 && b.last > 1 && b.linger > 0 {
		b.lingering = true
		b.timer.Reset(b.linger)
	}
}

// expired notes that timer fired: the held batch may go.
func (b *batcher) expired() { b.lingering = false }

// ready reports whether a batch of n messages (max at most) may be handed
// over now.
func (b *batcher) ready(n, max int) bool {
	return n > 0 && (!b.lingering || n >= max)
}

// sent notes that a batch of n messages was handed over.
func (b *batcher) sent(n int) {
	b.last = n
	b.lingering = false
	b.timer.Stop()
}
