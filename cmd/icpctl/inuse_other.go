//go:build !linux

package main

import "errors"

// dbOpenElsewhere cannot tell on this system whether another process has the
// database open; callers then ask for an explicit choice.
func dbOpenElsewhere(string) (bool, error) {
	return false, errors.New("cannot tell on this system whether icpd has the data directory open")
}
