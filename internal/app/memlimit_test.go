package app_test

import (
	"io"
	"log/slog"
	"math"
	"runtime/debug"
	"testing"

	"github.com/icpservice/icp/internal/app"
)

func TestMemoryLimitComesFromTheFlagUnlessGOMEMLIMITIsSet(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	env := func(vals map[string]string) func(string) string {
		return func(k string) string { return vals[k] }
	}

	if got := app.ApplyMemoryLimit(100, env(nil), log); got != 100<<20 || debug.SetMemoryLimit(-1) != 100<<20 {
		t.Errorf("--memory-limit-mib 100: limit %d, runtime %d; want %d", got, debug.SetMemoryLimit(-1), 100<<20)
	}
	if got := app.ApplyMemoryLimit(0, env(nil), log); got != math.MaxInt64 || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Errorf("--memory-limit-mib 0: limit %d, runtime %d; want none", got, debug.SetMemoryLimit(-1))
	}
	// GOMEMLIMIT was applied by the runtime at start; the flag leaves it.
	debug.SetMemoryLimit(300 << 20)
	if got := app.ApplyMemoryLimit(100, env(map[string]string{"GOMEMLIMIT": "300MiB"}), log); got != 300<<20 || debug.SetMemoryLimit(-1) != 300<<20 {
		t.Errorf("with GOMEMLIMIT: limit %d, runtime %d; want GOMEMLIMIT's %d", got, debug.SetMemoryLimit(-1), 300<<20)
	}
}
