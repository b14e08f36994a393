package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/bus"
)

// errLeaseLost ends a relay session: another relay holds the lease, or this
// one could not renew it in time.
var errLeaseLost = errors.New("relay lease lost")

// lease is the right to publish: one key in a NATS KV bucket whose MaxAge is
// the lease TTL. The holder writes the key with a compare-and-set on its
// revision (create-if-absent to take it, update-at-revision to renew); the
// entry expires TTL after the holder's last write, and then a spare's create
// succeeds. JetStream KV already offers exactly this; nothing here is a
// consensus protocol of its own.
//
// The lease keeps relays from contending, it is not what keeps the stream in
// order: every publish also carries the stream sequence it expects to follow
// (see tailWriter), so a relay that still believes it is active after its
// lease expired fails its next publish instead of interleaving.
type lease struct {
	kv  jetstream.KeyValue
	id  []byte
	ttl time.Duration
	// timeout bounds each KV call.
	timeout time.Duration

	mu  sync.Mutex
	rev uint64 // revision of our last write; 0 when not held
	// validUntil is when the lease may expire at the latest, by the local
	// clock: TTL after the last successful write was sent, less a margin.
	validUntil time.Time
}

// openLease creates or updates the lease bucket (bus.LeaseBucket: the TTL is
// the bucket's, the replicas the streams').
func openLease(ctx context.Context, js jetstream.JetStream, bucket, instanceID string, ttl, timeout time.Duration, replicas int) (*lease, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, bus.LeaseBucket(bucket, ttl, replicas))
	if err != nil {
		return nil, fmt.Errorf("lease bucket %s: %w", bucket, err)
	}
	return &lease{kv: kv, id: []byte(instanceID), ttl: ttl, timeout: timeout}, nil
}

// acquire takes or renews the lease. It reports false, nil when another
// relay holds it; an error means NATS did not answer and nothing is known.
func (l *lease) acquire(ctx context.Context) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rev != 0 {
		err := l.renewLocked(ctx)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, errLeaseLost) {
			return false, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	sent := time.Now()
	rev, err := l.kv.Create(ctx, LeaseKey, l.id)
	if errors.Is(err, jetstream.ErrKeyExists) {
		e, gerr := l.kv.Get(ctx, LeaseKey)
		if gerr != nil || !bytes.Equal(e.Value(), l.id) {
			return false, nil // held by another relay (or just gone: retry later)
		}
		// Held under our own InstanceID by a process of ours that died:
		// take it over without waiting for it to expire.
		rev, err = l.kv.Update(ctx, LeaseKey, l.id, e.Revision())
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return false, nil
		}
	}
	if err != nil {
		return false, fmt.Errorf("take lease: %w", err)
	}
	l.setLocked(rev, sent)
	return true, nil
}

// ensure renews the lease if a third of its TTL has passed since the last
// renewal; otherwise it only checks, by the local clock, that the lease is
// still held. It returns errLeaseLost when another relay took the lease or
// it expired, and another error when NATS did not answer (the lease may
// still be held; ensure again before publishing).
func (l *lease) ensure(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rev == 0 {
		return errLeaseLost
	}
	if time.Until(l.validUntil) > l.ttl*2/3-l.ttl/10 {
		return nil
	}
	return l.renewLocked(ctx)
}

func (l *lease) renewLocked(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	sent := time.Now()
	rev, err := l.kv.Update(ctx, LeaseKey, l.id, l.rev)
	if err == nil {
		l.setLocked(rev, sent)
		return nil
	}
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyNotFound) {
		// Someone else wrote the key, or it expired: not ours any more.
		l.rev = 0
		return fmt.Errorf("%w: %w", errLeaseLost, err)
	}
	if time.Now().After(l.validUntil) {
		l.rev = 0
		return fmt.Errorf("%w: not renewed within its TTL: %w", errLeaseLost, err)
	}
	return fmt.Errorf("renew lease: %w", err)
}

// setLocked records a successful write sent at sent. The margin covers the
// server storing the write a little after it was sent and clocks that run at
// slightly different rates.
func (l *lease) setLocked(rev uint64, sent time.Time) {
	l.rev = rev
	l.validUntil = sent.Add(l.ttl - l.ttl/10)
}

// held reports whether the lease is held and unexpired by the local clock.
func (l *lease) held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rev != 0 && time.Now().Before(l.validUntil)
}

// release gives the lease up so a spare can take over at once. Best effort:
// if it fails, the lease simply expires after its TTL.
func (l *lease) release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rev == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	rev := l.rev
	l.rev = 0
	if err := l.kv.Delete(ctx, LeaseKey, jetstream.LastRevision(rev)); err != nil {
		return fmt.Errorf("release lease: %w", err)
	}
	return nil
}

// LeaseHolder returns the instance id of the relay holding the lease in
// bucket, or "" when none does (no bucket, or no live key): for an operator's
// tool that must not act while a relay publishes.
func LeaseHolder(ctx context.Context, nc *nats.Conn, bucket string) (string, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return "", err
	}
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("relay lease bucket: %w", err)
	}
	e, err := kv.Get(ctx, LeaseKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("relay lease: %w", err)
	}
	return string(e.Value()), nil
}
