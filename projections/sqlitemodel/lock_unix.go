//go:build unix

package sqlitemodel

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// ErrLocked is returned by OpenBuilder while another Builder (in any
// process) holds the same read model file.
var ErrLocked = errors.New("another rebuild holds the read model")

// lockFile takes an exclusive, non-blocking flock on path (created if
// needed). The kernel releases it when the file is closed or the process
// dies, so a crashed rebuild never leaves the read model locked. The file is
// not removed on release: removing a lock file that another process is about
// to lock would let two processes hold "the" lock at once.
func lockFile(path string) (io.Closer, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("rebuild lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (lock file %s)", ErrLocked, path)
		}
		return nil, fmt.Errorf("rebuild lock %s: %w", path, err)
	}
	return f, nil
}
