package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// interruptible is the context of every command an operator may stop: it
// ends on SIGINT (Ctrl-C) or SIGTERM, so the command's work sees its
// context end instead of the process dying mid-write. The caller defers
// stop, which also restores the default handling of both signals.
func interruptible() (ctx context.Context, stop context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// checkTimeout is the rule every --timeout flag follows: a duration > 0.
func checkTimeout(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("--timeout %s: want > 0", d)
	}
	return nil
}
