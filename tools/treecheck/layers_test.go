package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// testLayers is a small order: low, then mid (two folders), then top.
var testLayers = []layer{
	{"low", []string{"low/..."}},
	{"mid", []string{"mid/...", "side"}},
	{"top", []string{"cmd/..."}},
}

const testModule = "example.com/m"

// graph builds packages of testModule from "importer: imported ..." lines.
func graph(lines ...string) []pkg {
	var pkgs []pkg
	for _, l := range lines {
		from, to, _ := strings.Cut(l, ":")
		p := pkg{ImportPath: testModule + "/" + from}
		for _, imp := range strings.Fields(to) {
			if !strings.Contains(imp, ".") {
				imp = testModule + "/" + imp
			}
			p.Imports = append(p.Imports, imp)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func TestSameLayerAndDownwardImportsPass(t *testing.T) {
	pkgs := graph(
		"low:",
		"low/store: low fmt",
		"mid: low low/store side github.com/x/y",
		"side: low",
		"cmd/tool: mid low side",
	)
	if got := checkLayers(testModule, pkgs, testLayers); len(got) != 0 {
		t.Fatalf("findings on a graph that keeps the order:\n%s", strings.Join(got, "\n"))
	}
}

func TestUpwardImportFailsNamingBothEnds(t *testing.T) {
	pkgs := graph(
		"low:",
		"low/store: low mid",
		"mid: low",
		"cmd/tool: mid",
	)
	got := checkLayers(testModule, pkgs, testLayers)
	want := "layers: low/store (layer 0, low) imports mid (layer 1, mid): a lower layer must not import a higher one"
	if !slices.Equal(got, []string{want}) {
		t.Fatalf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), want)
	}
}

func TestPackageInNoLayerFails(t *testing.T) {
	pkgs := graph(
		"low:",
		"newtop: low",
		"midway: low", // "mid/..." must not match a mere prefix
	)
	got := checkLayers(testModule, pkgs, testLayers)
	if len(got) != 2 || !strings.Contains(got[0], "newtop is in no layer") || !strings.Contains(got[1], "midway is in no layer") {
		t.Fatalf("findings:\n%s", strings.Join(got, "\n"))
	}
}

func TestModuleRootPackageMustBePlacedToo(t *testing.T) {
	pkgs := []pkg{{ImportPath: testModule}}
	got := checkLayers(testModule, pkgs, testLayers)
	if len(got) != 1 || !strings.Contains(got[0], ". is in no layer") {
		t.Fatalf("findings: %q", got)
	}
}

func TestPackageInTwoLayersFails(t *testing.T) {
	overlapping := append(slices.Clone(testLayers), layer{"again", []string{"low/store"}})
	got := checkLayers(testModule, graph("low/store:"), overlapping)
	if len(got) != 1 || !strings.Contains(got[0], "low/store is in two layers, 0 (low) and 3 (again)") {
		t.Fatalf("findings: %q", got)
	}
}

// The module's own table places its planned packages too.
func TestModuleLayersPlaceEveryPlannedFolder(t *testing.T) {
	for rel, want := range map[string]int{
		"domain": 0, "domain/icp": 0, "events": 1, "events/relay": 1, "bus": 1, "bus/nats": 1,
		"platform/redact": 1, "commands": 2, "projections/projector": 2, "api": 3, "api/auth": 3,
		"internal/app": 4, "cmd/icpctl": 5, "tools/treecheck": 5, "deploy": 5,
	} {
		got, err := layerOf(rel, moduleLayers)
		if err != nil || got != want {
			t.Errorf("layerOf(%q) = %d, %v; want %d", rel, got, err, want)
		}
	}
	for _, rel := range []string{".", "domainx", "busy", "toolsx", "platformer"} {
		if _, err := layerOf(rel, moduleLayers); err == nil {
			t.Errorf("layerOf(%q) placed it; want no layer", rel)
		}
	}
}

// go list gives the imports of non-test files only: an upward import in a
// test file (internal or external test package) is not an edge.
func TestLoadPackagesReadsOnlyNonTestImports(t *testing.T) {
	dir := filepath.Join("testdata", "mod")
	mod, pkgs, err := loadPackages(dir)
	if err != nil {
		t.Fatal(err)
	}
	if mod != testModule {
		t.Fatalf("module %q, want %q", mod, testModule)
	}
	var paths []string
	for _, p := range pkgs {
		paths = append(paths, p.ImportPath)
	}
	want := []string{testModule + "/cmd/tool", testModule + "/low", testModule + "/mid"}
	if !slices.Equal(paths, want) {
		t.Fatalf("packages %q, want %q", paths, want)
	}
	if got := checkLayers(mod, pkgs, testLayers); len(got) != 0 {
		t.Fatalf("findings from test imports:\n%s", strings.Join(got, "\n"))
	}
	for _, f := range []string{"up_test.go", "ext_test.go"} { // the test would pass vacuously without them
		if _, err := os.Stat(filepath.Join(dir, "low", f)); err != nil {
			t.Fatal(err)
		}
	}
}
