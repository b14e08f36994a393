package main

import (
	"fmt"
	"strings"
	"testing"
)

func existing(paths ...string) func(string) bool {
	return func(rel string) bool {
		for _, p := range paths {
			if p == rel {
				return true
			}
		}
		return false
	}
}

func TestReadmeLinksInsideTheRepositoryPass(t *testing.T) {
	text := "# T\n" +
		"See [docs/operations.md](docs/operations.md), [`docs/contract.md`](./docs/contract.md \"the contract\"),\n" +
		"[a section](docs/api.md#listing-icps), [here](#set-up), ![logo](deploy/logo.png) and [ref][r].\n" +
		"[r]: docs/api.md\n" +
		"Code is not markdown: `[x](https://example.com)` and\n" +
		"```sh\ncurl -s http://127.0.0.1:8080/api/v1/entities/icps [y](missing.md)\n```\n"
	got := readmeFindings(text, existing("docs/operations.md", "docs/contract.md", "docs/api.md", "deploy/logo.png"))
	if len(got) != 0 {
		t.Fatalf("findings:\n%s", strings.Join(got, "\n"))
	}
}

func TestReadmeLinksOutsideTheRepositoryFail(t *testing.T) {
	text := "# T\n" +
		"[site](https://example.com/docs) and <https://example.com> and www.example.com\n" +
		"[gone](docs/gone.md) [root](/docs/api.md) [up](../other/README.md)\n" +
		"[mail](mailto:someone@example.com)\n" +
		"[r]: http://example.com/r\n"
	got := readmeFindings(text, existing("docs/api.md"))
	want := []string{
		`README.md:2 links "https://example.com/docs", outside the repository`,
		`README.md:2 links "https://example.com", outside the repository`,
		`README.md:2 links "www.example.com", outside the repository`,
		`README.md:3 links "docs/gone.md", a path that does not exist`,
		`README.md:3 links "/docs/api.md", an absolute path`,
		`README.md:3 links "../other/README.md", outside the repository`,
		`README.md:4 links "mailto:someone@example.com", outside the repository`,
		`README.md:5 links "http://example.com/r", outside the repository`,
	}
	if len(got) != len(want) {
		t.Fatalf("findings:\n%s\nwant %d", strings.Join(got, "\n"), len(want))
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("finding %d = %q, want it to say %q", i, got[i], want[i])
		}
	}
}

func TestReadmeLongerThanTheBoundFails(t *testing.T) {
	lines := func(n int) string { return strings.Repeat("line\n", n) }
	if got := readmeFindings(lines(maxReadmeLines), existing()); len(got) != 0 {
		t.Fatalf("findings at the bound: %q", got)
	}
	got := readmeFindings(lines(maxReadmeLines+1), existing())
	want := fmt.Sprintf("README.md has %d lines, more than %d", maxReadmeLines+1, maxReadmeLines)
	if len(got) != 1 || !strings.Contains(got[0], want) {
		t.Fatalf("findings: %q, want one saying %q", got, want)
	}
}

func TestCodeSpansAreRemoved(t *testing.T) {
	for in, want := range map[string]string{
		"a `b` c":             "a  c",
		"a ``b ` c`` d":       "a  d",
		"a `unclosed [x](y)":  "a `unclosed [x](y)",
		"a ``` b `` c ``` d":  "a  d",
		"no code [x](y) here": "no code [x](y) here",
	} {
		if got := withoutCodeSpans(in); got != want {
			t.Errorf("withoutCodeSpans(%q) = %q, want %q", in, got, want)
		}
	}
}
