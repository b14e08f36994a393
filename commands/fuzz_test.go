package commands

import (
	"encoding/json"
	"errors"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
)

// fuzzSeeds are small bodies of every shape the parser tells apart: valid
// ones, every refusal, and scaled-down hostile bodies.
func fuzzSeeds() []string {
	seeds := []string{
		benchBody,
		valid(""),
		valid(`"userIds":["user_b","user_a","user_b"],"activeUntil":"2024-01-15T12:30:00.123456+02:00","description":null`),
		valid(`"crmFilters":{"provider":"p","textSearch":null,"query":{"a":[1,{"b":null}]},"filters":[{"path":"x","mode":"eq","value":1E+400,"exclude":true}]}`),
		valid(`"customFilterCriteria":[{"type":"maxPeoplePerCompany","value":2.0},{"type":"minDaysUntilReuse","value":1e2}],"leadsPerList":1000`),
		`{"n\u0061me":" Escaped ","leadProviderCriteria":[{"provider":"baseProvider","type":"company","filters":{"\u00e9":"\ud83d\ude00"}}]}`,
		`{"name":"","description":7,"leadProviderCriteria":[{"provider":"x","type":"robot","filters":{}},{"provider":"baseProvider"}],
		  "customFilterCriteria":[{"type":"nope","value":1},{"type":"minDaysUntilReuse","value":1.5}],
		  "crmFilters":{"filters":[{"path":"a","mode":"eq","value":1},{"path":1,"mode":"eq","value":1}]},
		  "userIds":[""],"leadsPerList":0,"activeUntil":"soon","unknownField":{"ignored":true}}`,
		valid(`"name":"again"`),
		valid(`"leadsPerList":0.000000000000000000001e99999999`),
		`{"name":`, `[]`, ``, `{} {}`, "{\"name\":\"\xff\"}",
		valid(`"crmFilters":{"query":` + deep(33) + `}`),
	}
	for _, hc := range hostileBodies() {
		if len(hc.body) > 4096 { // keep the head and the tail of each shape, small
			seeds = append(seeds, string(hc.body[:2048])+string(hc.body[len(hc.body)-2048:]))
		}
	}
	return seeds
}

// checkRefusal checks what every refusal of a body promises: a
// *ValidationError of at most MaxDetails details, the last saying how many
// more when some were left out, each of them short whatever the body.
func checkRefusal(t *testing.T, body []byte, err error) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("%.200q: refused with %v, want a *ValidationError", body, err)
	}
	if len(ve.Details) > MaxDetails {
		t.Fatalf("%.200q: %d details", body, len(ve.Details))
	}
	for i, d := range ve.Details {
		if len(d.Path) > 200 || len(d.Message) > 400 || !utf8.ValidString(d.Message) {
			t.Fatalf("%.200q: detail %d of %d and %d bytes: %.200q", body, i, len(d.Path), len(d.Message), d.Message)
		}
		if d.Path == "" && strings.HasSuffix(d.Message, "found") && i != MaxDetails-1 {
			t.Fatalf("%.200q: the count of further problems is detail %d", body, i)
		}
	}
	if len(ve.Message) > 400 {
		t.Fatalf("%.200q: message of %d bytes", body, len(ve.Message))
	}
}

// allocatedBy reports how many bytes fn allocated (with a little noise from
// other goroutines).
func allocatedBy(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// maxAllocated is the memory budget of parsing a body of n bytes (see
// docs/limits.md): a small multiple of its size, and encoding/json's stack
// for nesting up to its depth limit.
func maxAllocated(n int) uint64 { return uint64(16*n + 1<<20) }

// FuzzParseCreate checks ParseCreate on any body: no panic, memory within
// the budget, a bounded refusal, and an accepted body stored as the command
// says: the ICP's JSON read back as a create gives the same command (go test
// -run X -fuzz FuzzParseCreate -fuzztime 5m ./commands).
func FuzzParseCreate(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var (
			cmd domain.CreateICP
			err error
		)
		if n := allocatedBy(func() { cmd, err = ParseCreate(body, caller) }); n > maxAllocated(len(body)) {
			t.Fatalf("%.200q: parsing %d bytes allocated %d", body, len(body), n)
		}
		if err != nil {
			checkRefusal(t, body, err)
			return
		}
		ev, err := domain.DecideCreate(nil, "id", domain.Actor{UserID: caller, Tenant: "org_1"}, cmd, fixedNow)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := events.MarshalJSON(ev.ICP)
		if err != nil || !json.Valid(doc) {
			t.Fatalf("%.200q: stored as %.200q (%v)", body, doc, err)
		}
		again, err := ParseCreate(doc, caller)
		if err != nil || !reflect.DeepEqual(again, cmd) || HashCreate(again) != HashCreate(cmd) {
			t.Fatalf("%.200q: stored as %.300s, which reads back as\n%+v (%v), want\n%+v", body, doc, again, err, cmd)
		}
	})
}

// FuzzParseUpdate is FuzzParseCreate for a PATCH body: the changes as the
// event stores them read back as the same changes (go test -run X -fuzz
// FuzzParseUpdate -fuzztime 5m ./commands).
func FuzzParseUpdate(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"name":null,"description":null,"crmFilters":null,"activeUntil":null,"userIds":[]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var (
			u   domain.UpdateICP
			err error
		)
		if n := allocatedBy(func() { u, err = ParseUpdate(body) }); n > maxAllocated(len(body)) {
			t.Fatalf("%.200q: parsing %d bytes allocated %d", body, len(body), n)
		}
		if err != nil {
			checkRefusal(t, body, err)
			return
		}
		stored, err := events.MarshalJSON(u.Changes)
		if err != nil || !json.Valid(stored) {
			t.Fatalf("%.200q: stored as %.200q (%v)", body, stored, err)
		}
		again, err := ParseUpdate(stored)
		if err != nil || !reflect.DeepEqual(again, u) {
			t.Fatalf("%.200q: stored as %.300s, which reads back as\n%+v (%v), want\n%+v", body, stored, again, err, u)
		}
	})
}

// FuzzUnescape compares the decoding of JSON strings with encoding/json's
// (go test -run X -fuzz FuzzUnescape -fuzztime 5m ./commands).
func FuzzUnescape(f *testing.F) {
	for _, s := range []string{`"plain"`, `"a\u00e9\"\\\/\b\f\n\r\t"`, `"\ud83d\ude00"`, `"\ud83d"`, `"\ud83d\u0041"`,
		`"\ude00\ud83d"`, `"\uD83D\uDE00x"`, "\"\xff\xfe\"", `"\u0000"`, `"é€😀"`, `"\ud83d\ud83d\ude00"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		if !json.Valid(s) || len(s) < 2 || s[0] != '"' {
			return
		}
		var want string
		if err := json.Unmarshal(s, &want); err != nil {
			t.Fatal(err)
		}
		if got := appendUnescaped(nil, s); string(got) != want {
			t.Fatalf("%q decoded as %q, encoding/json gives %q", s, got, want)
		}
		if got := decodeString(s); got != want {
			t.Fatalf("decodeString(%q) = %q, encoding/json gives %q", s, got, want)
		}
	})
}
