//go:build !unix

package private

const unixModes = false

// Umask does nothing where the platform has no Unix permissions.
func Umask() {}
