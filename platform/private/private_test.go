//go:build unix

package private

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// Tighten takes group and other access off the directory and what is in it,
// keeps the owner's bits, and changes nothing a symbolic link points to.
func TestTightenLeavesOwnerOnlyAndFollowsNoLinks(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "data")
	outside := filepath.Join(root, "outside.txt")
	files := map[string]os.FileMode{
		filepath.Join(dir, "events.db"):        0o644,
		filepath.Join(dir, "nats", "blk.1"):    0o640,
		filepath.Join(dir, "nats", "exec.bin"): 0o755,
		filepath.Join(dir, "already.txt"):      0o600,
		outside:                                0o644,
	}
	if err := os.MkdirAll(filepath.Join(dir, "nats"), 0o755); err != nil {
		t.Fatal(err)
	}
	for p, m := range files {
		if err := os.WriteFile(p, []byte("x"), m); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{dir, filepath.Join(dir, "nats")} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}

	n, err := Tighten(dir)
	if err != nil {
		t.Fatal(err)
	}
	if n != 5 { // dir, nats, events.db, blk.1, exec.bin
		t.Errorf("Tighten changed %d paths, want 5", n)
	}
	want := map[string]os.FileMode{
		dir:                                    0o700,
		filepath.Join(dir, "nats"):             0o700,
		filepath.Join(dir, "events.db"):        0o600,
		filepath.Join(dir, "nats", "blk.1"):    0o600,
		filepath.Join(dir, "nats", "exec.bin"): 0o700,
		filepath.Join(dir, "already.txt"):      0o600,
		outside:                                0o644,
	}
	for p, m := range want {
		if got := mode(t, p); got != m {
			t.Errorf("%s: mode %v, want %v", p, got, m)
		}
	}
	if n, err := Tighten(dir); err != nil || n != 0 {
		t.Errorf("a second Tighten changed %d paths (%v), want none", n, err)
	}
}

func TestTightenRefusesAFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Tighten(f); !errors.Is(err, ErrNotDir) {
		t.Fatalf("Tighten(file) = %v, want ErrNotDir", err)
	}
}
