package private

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestReadFileRefusesWhatThisServiceDidNotWrite(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "seed")
	if err := WriteNew(ok, []byte("secret")); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadFile(ok, 64); err != nil || string(got) != "secret" {
		t.Fatalf("ReadFile of its own file = %q, %v", got, err)
	}
	if _, err := ReadFile(filepath.Join(dir, "missing"), 64); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
	if _, err := ReadFile(ok, 3); err == nil || !strings.Contains(err.Error(), "larger than 3 bytes") {
		t.Errorf("file over the bound: %v", err)
	}
	if _, err := ReadFile(dir, 64); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: %v", err)
	}
	if runtime.GOOS == "windows" {
		return // no Unix permissions to check
	}
	open := filepath.Join(dir, "open")
	if err := os.WriteFile(open, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(open, 64); err == nil || !strings.Contains(err.Error(), "accessible to other users") {
		t.Errorf("a file others may read: %v", err)
	}
}

func TestWriteNewKeepsTheFirstAndReplaceSwapsWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "creds")
	if err := WriteNew(path, []byte("first")); err != nil {
		t.Fatal(err)
	}
	if err := WriteNew(path, []byte("second")); err != nil {
		t.Fatal(err)
	}
	if got, _ := ReadFile(path, 64); string(got) != "first" {
		t.Fatalf("after a second WriteNew the file holds %q, want the first writer's", got)
	}
	if err := Replace(path, []byte("third")); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadFile(path, 64); err != nil || string(got) != "third" {
		t.Fatalf("after Replace: %q, %v", got, err)
	}
	if runtime.GOOS != "windows" {
		if info, _ := os.Stat(path); info.Mode().Perm() != FileMode {
			t.Errorf("mode %#o, want %#o", info.Mode().Perm(), FileMode)
		}
	}
}
