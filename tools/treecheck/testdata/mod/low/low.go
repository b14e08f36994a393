// Package low is the bottom layer of the test module.
package low

import "fmt"

// Name is imported by the layers above.
func Name() string { return fmt.Sprint("low") }
