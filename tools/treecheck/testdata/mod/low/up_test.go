package low

import (
	"testing"

	"example.com/m/mid"
)

// An internal test may reach up: only non-test code is held to the order.
func TestUp(t *testing.T) { _ = mid.Name() }
