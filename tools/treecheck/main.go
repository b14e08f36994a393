// Command treecheck holds the source tree to rules that a compiler and go vet
// do not see. Run from the module's root (.ci/run does, before the tests); it
// prints one line per finding and exits 1 when there is any, 2 when the tree
// could not be read.
//
// The rules:
//   - layers: non-test code of a lower layer never imports a higher one, and
//     every package of the module is in exactly one layer (layers.go);
//   - comments: no Go comment quotes a measured rate; it names the
//     benchmark instead (comments.go);
//   - funcs: no function of non-test code is longer than one screen
//     (funcs.go);
//   - README: at most 200 lines, and its links point only at files inside
//     the repository (readme.go).
//
// Why hand-written rather than a linter: the layer rule is one ordered table
// of path patterns, and a strict order over the whole graph. depguard and
// go-arch-lint express dependencies as allow- or deny-lists per component,
// which grow with every package and are easy to widen by one more entry;
// the order here needs about a hundred lines over `go list -json`, with
// nothing to install. The comment and README rules are about text no linter reads; the
// function rule is a few lines over go/ast (linters such as funlen would
// bring a linter runner into CI for one number).
package main

import (
	"fmt"
	"os"
)

func main() {
	findings, err := run(".")
	if err != nil {
		fmt.Fprintln(os.Stderr, "treecheck:", err)
		os.Exit(2)
	}
	for _, f := range findings {
		fmt.Println(f)
	}
	if len(findings) > 0 {
		fmt.Fprintf(os.Stderr, "treecheck: %d finding(s)\n", len(findings))
		os.Exit(1)
	}
}

// run applies every rule to the module rooted at root.
func run(root string) ([]string, error) {
	mod, pkgs, err := loadPackages(root)
	if err != nil {
		return nil, err
	}
	findings := checkLayers(mod, pkgs, moduleLayers)
	comments, err := checkComments(root)
	if err != nil {
		return nil, err
	}
	findings = append(findings, comments...)
	funcs, err := checkFuncs(root)
	if err != nil {
		return nil, err
	}
	findings = append(findings, funcs...)
	readme, err := checkReadme(root)
	if err != nil {
		return nil, err
	}
	return append(findings, readme...), nil
}
