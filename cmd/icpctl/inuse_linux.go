package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// dbOpenElsewhere reports whether another process has the SQLite database
// at path open, e.g. a running icpd.
//
// Every connection to a database in WAL mode holds a shared lock on byte
// 128 of its -shm file (SQLite's "dead man switch") for as long as it is
// open. The lock is looked up in /proc/locks rather than probed with
// fcntl(F_GETLK): opening and closing a file descriptor of the -shm file
// here would release every POSIX lock this process holds on it, including
// those of its own SQLite connections.
func dbOpenElsewhere(path string) (bool, error) {
	var st unix.Stat_t
	if err := unix.Stat(path+"-shm", &st); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil // no connection has it open
		}
		return false, fmt.Errorf("stat %s-shm: %w", path, err)
	}
	file := fmt.Sprintf("%02x:%02x:%d", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)), st.Ino)
	f, err := os.Open("/proc/locks")
	if err != nil {
		return false, err
	}
	defer f.Close()
	me := strconv.Itoa(os.Getpid())
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "1: POSIX  ADVISORY  READ 20291 fe:00:9987792 128 128"; a
		// blocked request has "->" after the number.
		fl := strings.Fields(sc.Text())
		if len(fl) > 1 && fl[1] == "->" {
			continue
		}
		if len(fl) != 8 || fl[5] != file || fl[4] == me {
			continue
		}
		start, err1 := strconv.ParseUint(fl[6], 10, 64)
		end, err2 := strconv.ParseUint(fl[7], 10, 64)
		if fl[7] == "EOF" {
			end, err2 = ^uint64(0), nil
		}
		if err1 == nil && err2 == nil && start <= 128 && 128 <= end {
			return true, nil
		}
	}
	return false, sc.Err()
}
