package main

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLongFunctionsAreFoundWithTheirReceiver(t *testing.T) {
	body := strings.Repeat("\tx++\n", 60)
	src := "package p\n\ntype T[K any] struct{}\n\nfunc short() {}\n\n" +
		"func (t *T[K]) Long() {\n\tx := 0\n" + body + "\t_ = x\n}\n\n" +
		"func exactly() {\n" + strings.Repeat("\tprintln()\n", 58) + "}\n"
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := longFuncs(fset, f, 60)
	if len(got) != 1 || got[0].text != "T.Long" || got[0].lines != 64 || got[0].line != 7 {
		t.Fatalf("long functions: %+v, want T.Long of 64 lines at line 7", got)
	}
}

func TestCheckFuncsLeavesTestsOut(t *testing.T) {
	dir := t.TempDir()
	long := "package p\n\nfunc f() {\n" + strings.Repeat("\tprintln()\n", 70) + "}\n"
	for name, src := range map[string]string{"p.go": long, "p_test.go": strings.Replace(long, "func f", "func g", 1)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := checkFuncs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !strings.Contains(got[0], "p.go:3 f is 72 lines") {
		t.Fatalf("findings: %q, want only f in p.go", got)
	}
}
