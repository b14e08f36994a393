package events

import (
	"context"
	"fmt"
)

// HeaderGeneration carries the event store's generation on every message
// the relay publishes (see Generations). Absent on messages of a store
// without generations (EventStoreDB) and on those published before
// generations existed.
const HeaderGeneration = "icp-generation"

// MaxGenerationLen bounds a generation read from a message header.
const MaxGenerationLen = 64

// Generations is implemented by an event store that keeps a generation: an
// opaque token, unique with overwhelming probability, that changes whenever
// history that may already have been published is replaced (a restore from a
// backup, a realign of the bus). Within one generation, an event id, and an
// (ICP id, version) pair, name one event; across generations the same
// position or version may name a different event. Downstream workers key
// their idempotency by (generation, event id) or (generation, ICP id,
// version).
type Generations interface {
	// Generation returns the store's current generation.
	Generation(ctx context.Context) (string, error)
	// NewGeneration replaces the generation with a fresh one and returns it.
	// Only offline tools (restore, realign) call it, with no relay running.
	NewGeneration(ctx context.Context) (string, error)
}

// CheckGeneration validates a generation read from outside (a message
// header, a file): 1 to MaxGenerationLen characters of [0-9A-Za-z-].
// The empty string is valid and means "no generation".
func CheckGeneration(g string) error {
	if len(g) > MaxGenerationLen {
		return fmt.Errorf("%w: %s is %d bytes long, at most %d", ErrCorrupt, HeaderGeneration, len(g), MaxGenerationLen)
	}
	for i := 0; i < len(g); i++ {
		c := g[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-') {
			return fmt.Errorf("%w: %s %q: want letters, digits and '-'", ErrCorrupt, HeaderGeneration, g)
		}
	}
	return nil
}
