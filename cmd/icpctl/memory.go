package main

import (
	"os"
	"runtime/debug"
)

// replayMemoryLimit is the Go runtime's soft memory limit while a replay
// runs (icpctl rebuild, verify). The replay's own memory is bounded
// (projections/rebuild: the state cache and the chunks in its pipeline),
// whatever the history's length.
const replayMemoryLimit = 96 << 20

// tuneReplayMemory sets the collector for a replay: rarely while the heap is
// small (a short-lived tool trades memory for the collector's CPU, as
// BenchmarkRebuild runs), and harder as it nears replayMemoryLimit, so
// that the process stays small on a machine icpd shares. GOMEMLIMIT in the
// environment takes precedence. The returned function restores both.
func tuneReplayMemory() (restore func()) {
	gc := debug.SetGCPercent(400)
	limit := debug.SetMemoryLimit(-1)
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(replayMemoryLimit)
	}
	return func() {
		debug.SetGCPercent(gc)
		debug.SetMemoryLimit(limit)
	}
}
