package main

import (
	"fmt"
	"strings"
)

// layer is one rung of the module's dependency order.
type layer struct {
	name string
	// patterns are package paths relative to the module; "x/..." matches x
	// and every package under it, as in go list.
	patterns []string
}

// moduleLayers is the module's dependency order, lowest first. Non-test code
// may import its own layer and any lower one, never a higher one. Every
// package of the module must match exactly one layer, so a new top-level
// folder fails the check until it is given its place here.
var moduleLayers = []layer{
	{"domain", []string{"domain/..."}},
	{"events", []string{"events/...", "bus/...", "platform/..."}},
	{"commands and projections", []string{"commands/...", "projections/..."}},
	{"api", []string{"api/..."}},
	{"wiring", []string{"internal/..."}},
	// deploy holds only tests of the deployment files, which run every role.
	{"binaries", []string{"cmd/...", "tools/...", "deploy/..."}},
}

// checkLayers applies the layer rule to pkgs, the packages of module mod.
// Imports from outside the module are not its business.
func checkLayers(mod string, pkgs []pkg, layers []layer) []string {
	var findings []string
	level := map[string]int{}
	for _, p := range pkgs {
		rel := relPath(mod, p.ImportPath)
		l, err := layerOf(rel, layers)
		if err != nil {
			findings = append(findings, "layers: "+err.Error())
			continue
		}
		level[rel] = l
	}
	for _, p := range pkgs {
		from := relPath(mod, p.ImportPath)
		lf, ok := level[from]
		if !ok {
			continue
		}
		for _, imp := range p.Imports {
			if imp != mod && !strings.HasPrefix(imp, mod+"/") {
				continue
			}
			to := relPath(mod, imp)
			lt, ok := level[to]
			if !ok || lt <= lf {
				continue
			}
			findings = append(findings, fmt.Sprintf(
				"layers: %s (layer %d, %s) imports %s (layer %d, %s): a lower layer must not import a higher one",
				from, lf, layers[lf].name, to, lt, layers[lt].name))
		}
	}
	return findings
}

// layerOf is the index of the one layer whose patterns match rel.
func layerOf(rel string, layers []layer) (int, error) {
	found := -1
	for i, l := range layers {
		for _, pat := range l.patterns {
			if !matches(pat, rel) {
				continue
			}
			if found >= 0 && found != i {
				return 0, fmt.Errorf("%s is in two layers, %d (%s) and %d (%s): make their patterns disjoint",
					rel, found, layers[found].name, i, l.name)
			}
			found = i
		}
	}
	if found < 0 {
		return 0, fmt.Errorf("%s is in no layer: give its folder a place in moduleLayers (tools/treecheck/layers.go)", rel)
	}
	return found, nil
}

// matches reports whether the relative package path rel matches pat, an
// exact path or one ending in "/..." (the path and everything under it).
func matches(pat, rel string) bool {
	if base, ok := strings.CutSuffix(pat, "/..."); ok {
		return rel == base || strings.HasPrefix(rel, base+"/")
	}
	return rel == pat
}

// relPath is path relative to the module mod; the module's root package is ".".
func relPath(mod, path string) string {
	if path == mod {
		return "."
	}
	return strings.TrimPrefix(path, mod+"/")
}
