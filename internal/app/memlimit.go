package app

import (
	"log/slog"
	"math"
	"runtime/debug"
)

// ApplyMemoryLimit sets the Go runtime's soft memory limit from
// --memory-limit-mib, unless GOMEMLIMIT is set in the environment (getenv),
// which the runtime has applied already and which wins. It returns the limit
// in force afterwards, in bytes (math.MaxInt64: none).
//
// Why a default limit: without one the collector lets the heap grow to twice
// what is live before it runs, and the runtime returns freed memory to the
// system slowly; under a steady stream of creates that garbage, not live
// data, is what pushed the process past its memory budget. A soft limit only
// makes collections more frequent near it: a process whose live data
// outgrows it keeps running, with the collector's share of CPU capped by the
// runtime.
func ApplyMemoryLimit(mib int64, getenv func(string) string, log *slog.Logger) int64 {
	if getenv("GOMEMLIMIT") != "" {
		limit := debug.SetMemoryLimit(-1)
		log.Info("memory limit from GOMEMLIMIT", "bytes", limit)
		return limit
	}
	limit := int64(math.MaxInt64)
	if mib > 0 {
		limit = mib << 20
	}
	debug.SetMemoryLimit(limit)
	return limit
}
