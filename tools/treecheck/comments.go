package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// A figure: digits with thousands separators or decimals, or a range of
// them ("2,000-2,400").
const figure = `\b\d(?:[\d,.]*\d)?(?:\s*(?:-|–|to)\s*\d(?:[\d,.]*\d)?)?\s*[kM]?`

// quotedRate matches a figure quoted as a rate or as a time per item, as in
// "N creates/s", "N durable appends/s", "N MB a minute", "N per second",
// "Nk ops", "N µs of CPU per event" with N a number. A rate with no figure
// ("measures events/s") names a unit and passes. (The examples here say N:
// this file is checked too.)
var quotedRate = regexp.MustCompile(`(?i)` + figure + `\s*(?:` +
	// up to two words, then a unit of time: "N creates/s"
	`(?:[a-zµ]+\s+){0,2}?[a-zµ]*\s*(?:/\s*s(?:ec(?:ond)?)?\b|/\s*min\b|\bper\s+(?:sec(?:ond)?|minute|hour)\b)` +
	// "N MB a minute" (a word first, so that "2. a second relay" passes)
	`|(?:[a-zµ]+\s+){1,3}?an?\s+(?:second|minute|hour)\b` +
	`|(?:rps|qps|tps|ops)\b` +
	// a time per item: "N µs of CPU per event"
	`|(?:ns|µs|us|ms)\s+(?:of\s+(?:cpu|wall\s+time)\s+)?per\s+[a-z]+` +
	`)`)

// checkComments reports every comment of a Go file under root that quotes a
// rate. Folders go ignores (testdata, vendor, names starting with . or _)
// and nested modules are skipped.
func checkComments(root string) ([]string, error) {
	var findings []string
	err := walkGo(root, func(path string, fset *token.FileSet, f *ast.File) {
		for _, q := range quotedRates(fset, f) {
			findings = append(findings, fmt.Sprintf(
				"comments: %s:%d quotes %q: name the benchmark instead, and put the figure in docs/performance.md",
				path, q.line, q.text))
		}
	})
	return findings, err
}

// walkGo parses every Go file under root, with its comments, and hands it to
// visit with its slash-separated path. Folders go ignores (testdata, vendor,
// names starting with . or _) and nested modules are skipped. A file that
// does not parse is an error: the compiler would refuse it too.
func walkGo(root string, visit func(path string, fset *token.FileSet, f *ast.File)) error {
	fset := token.NewFileSet()
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && skipDir(path, d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(fset, path, src, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		visit(filepath.ToSlash(path), fset, f)
		return nil
	})
}

func skipDir(path, name string) bool {
	if name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
		return true
	}
	_, err := os.Stat(filepath.Join(path, "go.mod"))
	return err == nil
}

type quote struct {
	line int
	text string
}

// quotedRates finds the rates quoted in f's comments. A comment group is
// read as one text, so a figure and its unit on two lines are found too.
func quotedRates(fset *token.FileSet, f *ast.File) []quote {
	var quotes []quote
	for _, g := range f.Comments {
		type part struct {
			off, line int
			text      string
		}
		var parts []part
		var b strings.Builder
		for _, c := range g.List {
			t := strings.TrimPrefix(c.Text, "//")
			if strings.HasPrefix(c.Text, "/*") {
				t = strings.TrimSuffix(strings.TrimPrefix(c.Text, "/*"), "*/")
			}
			parts = append(parts, part{b.Len(), fset.Position(c.Slash).Line, t})
			b.WriteString(t)
			b.WriteByte('\n')
		}
		text := b.String()
		for _, m := range quotedRate.FindAllStringIndex(text, -1) {
			p := parts[0]
			for _, q := range parts {
				if q.off <= m[0] {
					p = q
				}
			}
			line := p.line + strings.Count(text[p.off:m[0]], "\n")
			quotes = append(quotes, quote{line, strings.Join(strings.Fields(text[m[0]:m[1]]), " ")})
		}
	}
	return quotes
}
