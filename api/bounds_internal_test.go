package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/icpservice/icp/commands"
)

// checkErrorJSON encodes e as an answer and checks what every error answer
// promises: valid JSON under MaxErrorBodyBytes, at most MaxDetails details
// (the last saying how many more when some were left out), every text
// either as given or a prefix of it cut on a character boundary and marked.
func checkErrorJSON(t *testing.T, e *Error) {
	t.Helper()
	body, err := errorJSON(e)
	if err != nil {
		t.Fatal(err)
	}
	if len(body) >= MaxErrorBodyBytes {
		t.Fatalf("error body of %d bytes", len(body))
	}
	var got errorBody
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("error body is not JSON (%v): %.200s", err, body)
	}
	clipped := func(what, sent, answered string) {
		t.Helper()
		if !utf8.ValidString(sent) || answered == sent {
			return // invalid UTF-8 is answered with U+FFFD in its place
		}
		head, ok := strings.CutSuffix(answered, "…")
		if !ok || !strings.HasPrefix(sent, head) || !utf8.ValidString(head) {
			t.Fatalf("%s %.80q answered as %.80q: not a marked prefix", what, sent, answered)
		}
	}
	clipped("message", e.Message, got.Error.Message)
	ds := got.Error.Details
	switch n := len(e.Details); {
	case n <= commands.MaxDetails && len(ds) != n:
		t.Fatalf("%d details answered as %d", n, len(ds))
	case n > commands.MaxDetails:
		if len(ds) != commands.MaxDetails {
			t.Fatalf("%d details answered as %d, want %d", n, len(ds), commands.MaxDetails)
		}
		last := ds[len(ds)-1]
		if want := strconv.Itoa(n-commands.MaxDetails+1) + " more problems were found"; last.Path != "" || last.Message != want {
			t.Fatalf("last detail %+v, want %q", last, want)
		}
		ds = ds[:len(ds)-1]
	}
	for i, d := range ds {
		clipped("path", e.Details[i].Path, d.Path)
		clipped("detail", e.Details[i].Message, d.Message)
	}
}

func TestErrorBodiesStayBoundedWhateverTheyCarry(t *testing.T) {
	// The worst texts for their size: each byte is escaped to six.
	for _, text := range []string{
		strings.Repeat("\x01", 1<<16), strings.Repeat("\xff", 1<<16), strings.Repeat("\u2028", 1<<14),
		strings.Repeat(`"`, 1<<16), strings.Repeat("é", 1<<15), "short",
	} {
		for _, n := range []int{0, 1, commands.MaxDetails, commands.MaxDetails + 1, 10_000} {
			e := &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Message: text}
			for range n {
				e.Details = append(e.Details, commands.Detail{Path: text, Message: text})
			}
			checkErrorJSON(t, e)
		}
	}
}

func TestClipJSONCutsOnACharacterBoundary(t *testing.T) {
	for _, tc := range []struct {
		s    string
		max  int
		want string
	}{
		{"abc", 3, "abc"},
		{"abcd", 3, "…"},
		{"abcdefg", 6, "abc…"},
		{"ééé", 6, "ééé"},
		{"éééé", 7, "éé…"},
		{"a\x01bcdefghijk", 12, "a\x01bc…"}, // the control character takes six
		{`a"bcdef`, 6, `a"…`},
	} {
		if got := clipJSON(tc.s, tc.max); got != tc.want {
			t.Errorf("clipJSON(%q, %d) = %q, want %q", tc.s, tc.max, got, tc.want)
		}
	}
}

// FuzzErrorBody checks that no error, whatever its texts and number of
// details, is answered with a body of 64 KiB or more (go test -run X -fuzz
// FuzzErrorBody -fuzztime 5m ./api).
func FuzzErrorBody(f *testing.F) {
	f.Add("the request is invalid", "userIds[0]", "must be a string, not a number", uint16(3))
	f.Add(strings.Repeat("\x00", 300), strings.Repeat("\u2029", 100), strings.Repeat("\\", 900), uint16(60))
	f.Add("\xff\xfe", "é", `"`, uint16(50))
	f.Fuzz(func(t *testing.T, msg, path, detail string, n uint16) {
		e := &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Message: msg}
		for range min(n, 2000) {
			e.Details = append(e.Details, commands.Detail{Path: path, Message: detail})
		}
		checkErrorJSON(t, e)
	})
}

// FuzzRequestHeaders feeds the request headers and the query string the API
// parses (Idempotency-Key, If-Match, Content-Type, limit and cursor): none
// panics, every refusal is a bounded error answer of the documented status,
// and what is accepted is what was sent (go test -run X -fuzz
// FuzzRequestHeaders -fuzztime 5m ./api).
func FuzzRequestHeaders(f *testing.F) {
	f.Add("order-42", `"3"`, "application/json", "limit=10&cursor="+encodeCursor(7))
	f.Add("", `W/"1", "2", *`, "application/json; charset=latin-1", "limit=0&limit=1")
	f.Add("clé", `"18446744073709551616","0",""`, "text/plain", "cursor=%zz")
	f.Add(strings.Repeat("k", 256), `  "5"  ,,"x"`, `application/json; charset="utf-8"; q=1`, "cursor=cDEuMA&limit=1001")
	f.Add("a\x01", `*`, "application/json; charset=", "limit=1e3;x")
	f.Fuzz(func(t *testing.T, key, ifMatch, contentType, query string) {
		refused := func(err error, status int) {
			t.Helper()
			e, ok := err.(*Error)
			if !ok || e.Status != status {
				t.Fatalf("refusal %v, want a %d answer", err, status)
			}
			checkErrorJSON(t, e)
		}

		got, err := idempotencyKey(http.Header{HeaderIdempotencyKey: {key}})
		if err != nil {
			refused(err, http.StatusBadRequest)
		} else if got != key || !printable(key, MaxIdempotencyKeyLength) {
			t.Fatalf("Idempotency-Key %q taken as %q", key, got)
		}

		versions := parseIfMatch(http.Header{"If-Match": {ifMatch}})
		tags := strings.Split(ifMatch, ",")
		any := false
		for _, tag := range tags {
			any = any || strings.TrimSpace(tag) == "*"
		}
		switch {
		case any != (versions == nil):
			t.Fatalf("If-Match %q: versions %v", ifMatch, versions)
		case len(versions) > len(tags):
			t.Fatalf("If-Match %q: %d versions from %d entries", ifMatch, len(versions), len(tags))
		}
		for _, v := range versions {
			if v == 0 || !strings.Contains(ifMatch, `"`+strconv.FormatUint(v, 10)+`"`) {
				t.Fatalf("If-Match %q: version %d was not sent", ifMatch, v)
			}
		}

		if err := checkJSONContentType(contentType); err != nil {
			refused(err, http.StatusUnsupportedMediaType)
		}

		pg, err := parsePage(query)
		switch {
		case err != nil:
			refused(err, http.StatusBadRequest)
		case pg.limit < 0 || pg.limit > MaxPageLimit:
			t.Fatalf("query %q: limit %d", query, pg.limit)
		case pg.after > 0:
			if after, ok := decodeCursor(encodeCursor(pg.after)); !ok || after != pg.after {
				t.Fatalf("query %q: cursor after %d does not round-trip", query, pg.after)
			}
		}
	})
}
