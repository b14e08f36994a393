//go:build unix

package private

import "syscall"

const unixModes = true

// Umask makes every file and directory this process creates from now on
// owner-only, whatever mode the code creating it asks for: SQLite's -wal and
// -shm files, and the bus's store files, are created with modes this code
// does not choose. Call it first in main.
func Umask() { syscall.Umask(0o077) }
