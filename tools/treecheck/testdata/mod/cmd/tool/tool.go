// Package tool is the top layer of the test module.
package tool

import (
	"example.com/m/low"
	"example.com/m/mid"
)

// Name is imported by low's external tests.
func Name() string { return low.Name() + mid.Name() }
