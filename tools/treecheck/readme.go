package main

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// maxReadmeLines bounds README.md: the long-form material lives in docs/.
const maxReadmeLines = 200

var (
	// inlineLink is a markdown link or image, [text](target "title"); the
	// text may hold code spans but no brackets.
	inlineLink = regexp.MustCompile(`!?\[[^\[\]]*\]\(\s*<?([^)\s>]*)>?(?:\s+["'(][^)]*)?\)`)
	// refDefinition is a link reference definition, [label]: target.
	refDefinition = regexp.MustCompile(`^ {0,3}\[[^\]]+\]:\s*<?([^\s>]+)>?`)
	// autolink is <scheme:...>, and bareURL a URL GitHub turns into a link.
	autolink = regexp.MustCompile(`<([a-zA-Z][a-zA-Z0-9+.-]{1,31}:[^\s<>]*)>`)
	bareURL  = regexp.MustCompile(`\b(?:https?://|www\.)[^\s<>()]+`)
)

// checkReadme holds root/README.md to its length and to links that point at
// files inside the repository.
func checkReadme(root string) ([]string, error) {
	src, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		return nil, err
	}
	return readmeFindings(string(src), func(rel string) bool {
		_, err := os.Stat(filepath.Join(root, filepath.FromSlash(rel)))
		return err == nil
	}), nil
}

// readmeFindings applies the README rules to text; exists says whether a
// path relative to the repository's root exists.
func readmeFindings(text string, exists func(string) bool) []string {
	var findings []string
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) > maxReadmeLines {
		findings = append(findings, fmt.Sprintf(
			"readme: README.md has %d lines, more than %d: move long-form material to docs/",
			len(lines), maxReadmeLines))
	}
	fence := ""
	for i, line := range lines {
		if f := fenceOf(line); f != "" {
			if fence == "" {
				fence = f
			} else if strings.HasPrefix(f, fence) {
				fence = ""
			}
			continue
		}
		if fence != "" {
			continue
		}
		prose := withoutCodeSpans(line)
		for _, target := range linkTargets(prose) {
			if why := outside(target, exists); why != "" {
				findings = append(findings, fmt.Sprintf("readme: README.md:%d links %q, %s", i+1, target, why))
			}
		}
	}
	return findings
}

// fenceOf is the fence a line opens or closes (``` or ~~~, or longer), or "".
func fenceOf(line string) string {
	t := strings.TrimLeft(line, " ")
	if len(line)-len(t) > 3 {
		return ""
	}
	for _, c := range []string{"`", "~"} {
		n := len(t) - len(strings.TrimLeft(t, c))
		if n >= 3 {
			return t[:n]
		}
	}
	return ""
}

// linkTargets are the targets of every link of one line of prose.
func linkTargets(prose string) []string {
	var targets []string
	for _, m := range inlineLink.FindAllStringSubmatch(prose, -1) {
		targets = append(targets, m[1])
	}
	rest := inlineLink.ReplaceAllString(prose, "")
	if m := refDefinition.FindStringSubmatch(rest); m != nil {
		targets = append(targets, m[1])
		rest = ""
	}
	for _, m := range autolink.FindAllStringSubmatch(rest, -1) {
		targets = append(targets, m[1])
	}
	rest = autolink.ReplaceAllString(rest, "")
	return append(targets, bareURL.FindAllString(rest, -1)...)
}

// outside says why target does not point inside the repository, or "" when
// it does: a relative path, without scheme or host, to a file that exists.
// A target that is only a fragment (#section) stays in the README.
func outside(target string, exists func(string) bool) string {
	if target == "" {
		return "an empty target"
	}
	u, err := url.Parse(target)
	if err != nil {
		return "not a valid link"
	}
	if u.Scheme != "" || u.Host != "" || strings.HasPrefix(target, "//") || strings.HasPrefix(target, "www.") {
		return "outside the repository: link a file of the repository instead"
	}
	if u.Path == "" {
		return ""
	}
	if strings.HasPrefix(u.Path, "/") {
		return "an absolute path: write it relative to README.md"
	}
	rel := filepath.ToSlash(filepath.Clean(u.Path))
	if rel == ".." || strings.HasPrefix(rel, "../") {
		return "outside the repository"
	}
	if !exists(rel) {
		return "a path that does not exist"
	}
	return ""
}

// withoutCodeSpans is line with its inline code removed: a run of backticks
// opens a span that the next run of the same length closes, and the text
// between is not markdown.
func withoutCodeSpans(line string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(line, '`')
		if i < 0 {
			return b.String() + line
		}
		b.WriteString(line[:i])
		n := len(line[i:]) - len(strings.TrimLeft(line[i:], "`"))
		tick, rest := line[i:i+n], line[i+n:]
		end := closingRun(rest, tick)
		if end < 0 { // no closing run: the backticks are text
			b.WriteString(tick)
			line = rest
			continue
		}
		line = rest[end+n:]
	}
}

// closingRun is the index in s of the first run of backticks exactly as long
// as tick, or -1.
func closingRun(s, tick string) int {
	for off := 0; off < len(s); {
		i := strings.Index(s[off:], tick)
		if i < 0 {
			return -1
		}
		i += off
		j := i + len(tick)
		if j < len(s) && s[j] == '`' {
			off = j + len(s[j:]) - len(strings.TrimLeft(s[j:], "`"))
			continue
		}
		return i
	}
	return -1
}
