package main

import (
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func quotesIn(t *testing.T, src string) []string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "x.go", src, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, q := range quotedRates(fset, f) {
		got = append(got, fmt.Sprintf("%02d %s", q.line, q.text))
	}
	return got
}

func TestCommentsQuotingRatesAreFound(t *testing.T) {
	src := "package x\n" + // line 1
		"// The writer made 3,000 creates/s on the VM.\n" + // 2
		"// It held 11,000 durable appends/s, against\n" + // 3
		"// 2,000-2,400 with one commit each, and the WAL grew 38 MB a minute at\n" + // 4
		"// 3,500\n" + // 5
		"// creates/s.\n" + // 6
		"var a int\n" + // 7
		"\n" + // 8
		"func f() {\n" + // 9
		"\t/* about 42 µs of CPU per event,\n" + // 10
		"\t   5k ops and 100 per second */\n" + // 11
		"\t_ = 1 // 1.5 MiB/s\n" + // 12
		"}\n"
	got := quotesIn(t, src)
	want := []string{
		"02 3,000 creates/s",
		"03 11,000 durable appends/s",
		"04 38 MB a minute",
		"05 3,500 creates/s",
		"10 42 µs of CPU per event",
		"11 5k ops",
		"11 100 per second",
		"12 1.5 MiB/s",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("quotes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestCommentsNamingUnitsOrContractsPass(t *testing.T) {
	src := `package x

// BenchmarkProjector measures events/s projected into the read model; see
// docs/performance.md for the figures. RateLimit is in requests per second.
// Close must tolerate a second call; a retry after 2 attempts waits a while.
//   2. a second relay publishing
// The default poll interval (250ms) is what a follower waits. Version 2 a
// day. Read 1,024 events per page, 64 callers per commit.
var a = "3,000 creates/s" // strings are not comments
`
	if got := quotesIn(t, src); len(got) != 0 {
		t.Fatalf("quotes found in comments that quote no rate:\n%s", strings.Join(got, "\n"))
	}
}

func TestCheckCommentsWalksTheTreeButNotTestdataOrNestedModules(t *testing.T) {
	root := t.TempDir()
	write := func(rel, src string) {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rate := "package p\n\n// It made 900 events/s.\nvar v int\n"
	write("a/b/bench_test.go", rate)
	write("a/testdata/x.go", rate)
	write("nested/go.mod", "module nested\n")
	write("nested/n.go", rate)
	write(".hidden/h.go", rate)
	write("a/notes.txt", "900 events/s")
	got, err := checkComments(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !strings.Contains(got[0], "a/b/bench_test.go:3 quotes \"900 events/s\"") {
		t.Fatalf("findings:\n%s", strings.Join(got, "\n"))
	}
}
