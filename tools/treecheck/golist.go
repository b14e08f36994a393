package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
)

// pkg is what the layer rule needs of one package of go list's answer.
type pkg struct {
	ImportPath string
	// Imports are the imports of the package's non-test files only; go list
	// keeps those of its tests apart (TestImports, XTestImports).
	Imports []string
	Module  *struct{ Path string }
}

// loadPackages lists every package of the module rooted at dir, with
// `go list -json ./...`, and returns the module's path and the packages.
func loadPackages(dir string) (string, []pkg, error) {
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,Module", "./...")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", nil, fmt.Errorf("go list: %v\n%s", err, stderr.Bytes())
	}
	var pkgs []pkg
	mod := ""
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", nil, fmt.Errorf("go list output: %w", err)
		}
		if p.Module == nil {
			return "", nil, fmt.Errorf("go list: %s belongs to no module", p.ImportPath)
		}
		if mod == "" {
			mod = p.Module.Path
		} else if mod != p.Module.Path {
			return "", nil, fmt.Errorf("go list: packages of two modules, %s and %s", mod, p.Module.Path)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		return "", nil, errors.New("go list: no package")
	}
	return mod, pkgs, nil
}
