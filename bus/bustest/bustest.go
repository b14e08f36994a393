// Package bustest is test support for the parts that run on the bus (the
// projector, a worker built on events/consumer): starting one's Run loop on
// a goroutine and waiting until it is ready, and polling for a condition
// with a deadline instead of sleeping. It is imported by tests only.
package bustest

import (
	"context"
	"testing"
	"time"
)

// Start runs run on a goroutine and waits, at most budget, until ready
// holds. It fails the test when run returns first (with run's error), or
// when ready does not hold in time. The caller stops run with cancel and
// reads what it returned from done (buffered: run's one result); a cleanup
// of the test cancels it too.
func Start(t testing.TB, what string, budget time.Duration, run func(context.Context) error, ready func() bool) (cancel context.CancelFunc, done chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done = make(chan error, 1)
	go func() { done <- run(ctx) }()
	Eventually(t, budget, what, func() bool {
		select {
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		default:
		}
		return ready()
	})
	return cancel, done
}

// Eventually polls cond every few milliseconds until it holds, and fails the
// test when it does not within budget.
func Eventually(t testing.TB, budget time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(budget)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", budget, what)
		}
		<-tick.C
	}
}
