//go:build !unix

package sqlitemodel

import (
	"errors"
	"io"
	"os"
)

// ErrLocked is returned by OpenBuilder while another Builder holds the same
// read model file.
var ErrLocked = errors.New("another rebuild holds the read model")

// lockFile creates path exclusively: without flock, a lock file left by a
// crashed rebuild must be removed by hand (the error names it).
func lockFile(path string) (io.Closer, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil, errors.Join(ErrLocked, errors.New("lock file "+path+" exists; remove it if no rebuild is running"))
	}
	if err != nil {
		return nil, err
	}
	return &removeOnClose{f}, nil
}

type removeOnClose struct{ *os.File }

func (r *removeOnClose) Close() error {
	err := r.File.Close()
	if rerr := os.Remove(r.Name()); err == nil {
		err = rerr
	}
	return err
}
