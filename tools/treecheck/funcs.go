package main

import (
	"fmt"
	"go/ast"
	"go/token"
	"strings"
)

// maxFuncLines is the longest a function of non-test code may be, from its
// func keyword to its closing brace: one screen. A longer one is split into
// its phases (set up, consume, drain) rather than exempted.
const maxFuncLines = 60

// checkFuncs reports every function or method of non-test Go code under
// root longer than maxFuncLines. Tests are left out: a test reads top to
// bottom as one scenario, and splitting it hides what it asserts.
func checkFuncs(root string) ([]string, error) {
	var findings []string
	err := walkGo(root, func(path string, fset *token.FileSet, f *ast.File) {
		if strings.HasSuffix(path, "_test.go") {
			return
		}
		for _, l := range longFuncs(fset, f, maxFuncLines) {
			findings = append(findings, fmt.Sprintf(
				"funcs: %s:%d %s is %d lines: split it into its phases (at most %d)",
				path, l.line, l.text, l.lines, maxFuncLines))
		}
	})
	return findings, err
}

type longFunc struct {
	line, lines int
	text        string
}

// longFuncs lists the function declarations of f longer than limit lines.
// Function literals count toward the function that holds them.
func longFuncs(fset *token.FileSet, f *ast.File, limit int) []longFunc {
	var out []longFunc
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		start, end := fset.Position(fd.Pos()).Line, fset.Position(fd.End()).Line
		if n := end - start + 1; n > limit {
			name := fd.Name.Name
			if fd.Recv != nil && len(fd.Recv.List) == 1 {
				name = recvName(fd.Recv.List[0].Type) + "." + name
			}
			out = append(out, longFunc{line: start, lines: n, text: name})
		}
	}
	return out
}

// recvName is the receiver's type name, without pointer or type parameters.
func recvName(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.StarExpr:
		return recvName(t.X)
	case *ast.IndexExpr:
		return recvName(t.X)
	case *ast.IndexListExpr:
		return recvName(t.X)
	case *ast.Ident:
		return t.Name
	}
	return "?"
}
