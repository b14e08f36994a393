package commands

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// maxHostileBody is the API's default body limit (api.DefaultMaxBodyBytes):
// the largest body a client can make the parser read.
const maxHostileBody = 1 << 20

// hostileCase is a request body built to cost the parser as much as a body
// within the limit can.
type hostileCase struct {
	name string
	body []byte
}

// fill returns head, then item repeated with sep in between as often as fits,
// then tail, all within maxHostileBody bytes. item(i) gives the i-th item.
func fill(head string, item func(i int) string, sep, tail string) []byte {
	b := make([]byte, 0, maxHostileBody)
	b = append(b, head...)
	for i := 0; ; i++ {
		it := item(i)
		extra := len(it) + len(tail)
		if i > 0 {
			extra += len(sep)
		}
		if len(b)+extra > maxHostileBody {
			break
		}
		if i > 0 {
			b = append(b, sep...)
		}
		b = append(b, it...)
	}
	return append(b, tail...)
}

func repeated(s string) func(int) string { return func(int) string { return s } }

// hostileBodies are the worst bodies we know how to build, one per path of the
// parser that a client can make long: every array, every string, every key,
// numbers, nesting, and the accepted body whose hash is computed.
func hostileBodies() []hostileCase {
	const head = `{"name":"N","leadProviderCriteria":[],`
	return []hostileCase{
		// Many short distinct user ids: the duplicate check and the limit.
		{"userIds-distinct", fill(head+`"userIds":[`, func(i int) string { return `"` + strconv.FormatInt(int64(i), 36) + `"` }, ",", "]}")},
		// One user id over and over: the duplicate check without the limit.
		{"userIds-same", fill(head+`"userIds":[`, repeated(`"u"`), ",", "]}")},
		// Every element a problem: a detail each.
		{"userIds-invalid", fill(head+`"userIds":[`, repeated(`0`), ",", "]}")},
		{"userIds-escaped", fill(head+`"userIds":[`, func(i int) string { return `"\u0075` + strconv.FormatInt(int64(i), 36) + `"` }, ",", "]}")},
		{"userIds-escaped-same", fill(head+`"userIds":[`, repeated(`"\u0075"`), ",", "]}")},
		{"criteria-invalid", fill(`{"name":"N","leadProviderCriteria":[`, repeated(`{}`), ",", "]}")},
		{"custom-invalid", fill(head+`"customFilterCriteria":[`, repeated(`{}`), ",", "]}")},
		{"crm-filters-invalid", fill(head+`"crmFilters":{"filters":[`, repeated(`{}`), ",", "]}}")},
		// Within the count limit, each unknown type as long as the body allows:
		// the message quotes it.
		{"custom-type-long", customTypeLong()},
		{"duplicate-keys", fill(`{`, repeated(`"name":"N"`), ",", `,"leadProviderCriteria":[]}`)},
		{"unknown-keys", fill(`{"name":"N","leadProviderCriteria":[]`, func(i int) string { return `,"` + strconv.FormatInt(int64(i), 36) + `":0` }, "", "}")},
		{"escaped-keys", fill(`{"leadProviderCriteria":[]`, repeated(`,"\u006e\u0061\u006d\u0065":"N"`), "", "}")},
		{"escaped-name", fill(`{"leadProviderCriteria":[],"name":"`, repeated(`\u00e9`), "", `"}`)},
		{"deep-filters", deepFilters()},
		{"too-deep-body", fill(`{"name":"N","leadProviderCriteria":`, repeated(`[`), "", "")},
		{"long-time", fill(`{"name":"N","leadProviderCriteria":[],"activeUntil":"2024-01-15T10:30:00`, repeated(`0`), "", `Z"}`)},
		{"long-number", fill(`{"name":"N","leadProviderCriteria":[],"leadsPerList":0.`, repeated(`0`), "", `1e99999999}`)},
		{"malformed-at-end", fill(`{"name":"N","leadProviderCriteria":[],"pad":"`, repeated(`x`), "", `"`)},
		// Accepted: free-form filters as large as the body allows, then hashed
		// as an Idempotency-Key create is.
		{"accepted-large-filters", fill(`{"name":"N","leadProviderCriteria":[{"provider":"baseProvider","filters":{"k":[`, repeated(`1`), ",", `]}}]}`)},
	}
}

// customTypeLong is 20 custom filters (the limit) whose unknown types share
// the body.
func customTypeLong() []byte {
	const head = `{"name":"N","leadProviderCriteria":[],"customFilterCriteria":[`
	per := (maxHostileBody - len(head) - 2) / MaxCustomFilters
	long := strings.Repeat("x", per-len(`{"type":"","value":1},`))
	return fill(head, repeated(`{"type":"`+long+`","value":1}`), ",", "]}")
}

// deepFilters nests filters as deep as the standard library's validator lets
// a body nest.
func deepFilters() []byte {
	const depth = 9_990
	return []byte(`{"name":"N","leadProviderCriteria":[{"provider":"baseProvider","filters":` +
		strings.Repeat(`{"a":`, depth) + `1` + strings.Repeat(`}`, depth) + `}]}`)
}

// BenchmarkParseHostile parses each hostile body as a create (and hashes the
// command when it is accepted, as a create with an Idempotency-Key does).
// details/op is how many details the refusal carried.
func BenchmarkParseHostile(b *testing.B) {
	for _, hc := range hostileBodies() {
		b.Run(hc.name, func(b *testing.B) {
			b.SetBytes(int64(len(hc.body)))
			b.ReportAllocs()
			details := 0
			for i := 0; i < b.N; i++ {
				cmd, err := ParseCreate(hc.body, "user_me")
				var ve *ValidationError
				switch {
				case err == nil:
					_ = HashCreate(cmd)
				case errors.As(err, &ve):
					details = len(ve.Details)
				default:
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(details), "details/op")
		})
	}
}

// TestHostileBodiesAreRefusedWithBoundedDetails pins what each hostile body
// gets: the refusal and its details, at most MaxDetails of them, or the
// command it stands for.
func TestHostileBodiesAreRefusedWithBoundedDetails(t *testing.T) {
	elements := func(body []byte, open string) int {
		i := strings.Index(string(body), open)
		return countElements(body[i+len(open)-1:])
	}
	for _, hc := range hostileBodies() {
		t.Run(hc.name, func(t *testing.T) {
			cmd, err := ParseCreate(hc.body, caller)
			var want []problem
			switch hc.name {
			case "userIds-same", "userIds-escaped-same":
				if err != nil || len(cmd.UserIDs) != 2 || cmd.UserIDs[0] != "u" || cmd.UserIDs[1] != caller {
					t.Fatalf("userIds %v (%v), want [u %s]", cmd.UserIDs, err, caller)
				}
				return
			case "unknown-keys", "accepted-large-filters":
				if err != nil {
					t.Fatal(err)
				}
				return
			case "too-deep-body", "malformed-at-end":
				if ve := parseErr(t, string(hc.body)); len(ve.Details) != 0 || !strings.Contains(ve.Message, "malformed JSON") {
					t.Fatalf("%s with details %v, want malformed JSON", ve.Message, ve.Details)
				}
				return
			case "userIds-distinct", "userIds-escaped":
				want = []problem{{"userIds", "must have at most 100 distinct entries including the caller, has more"}}
			case "userIds-invalid":
				n := elements(hc.body, `"userIds":[`)
				for i := range MaxDetails - 1 {
					want = append(want, problem{"userIds[" + strconv.Itoa(i) + "]", "must be a string, not a number"})
				}
				want = append(want, problem{"", strconv.Itoa(n-MaxDetails+1) + " more problems were found"})
			case "criteria-invalid", "custom-invalid":
				path, open, required := "leadProviderCriteria", `"leadProviderCriteria":[`, []string{".provider", ".filters"}
				if hc.name == "custom-invalid" {
					path, open, required = "customFilterCriteria", `"customFilterCriteria":[`, []string{".type", ".value"}
				}
				want = []problem{{path, "must have at most 20 items, has " + strconv.Itoa(elements(hc.body, open))}}
				for i := range 20 { // the elements up to the limit, no further
					for _, r := range required {
						want = append(want, problem{path + "[" + strconv.Itoa(i) + "]" + r, "is required"})
					}
				}
			case "crm-filters-invalid":
				want = []problem{{"crmFilters.filters", "must have at most 50 items, has " + strconv.Itoa(elements(hc.body, `"filters":[`))}}
				for i := 0; len(want) < MaxDetails-1; i++ {
					for _, r := range []string{".path", ".mode", ".value"} {
						if len(want) < MaxDetails-1 {
							want = append(want, problem{"crmFilters.filters[" + strconv.Itoa(i) + "]" + r, "is required"})
						}
					}
				}
				want = append(want, problem{"", strconv.Itoa(1+50*3-(MaxDetails-1)) + " more problems were found"})
			case "custom-type-long":
				for i := range MaxCustomFilters {
					want = append(want, problem{"customFilterCriteria[" + strconv.Itoa(i) + "].type",
						`unknown type "` + strings.Repeat("x", MaxQuoted) + `"…; known types: maxPeoplePerCompany, minDaysUntilReuse`})
				}
			case "duplicate-keys", "escaped-keys":
				want = []problem{{"name", "is given more than once"}}
			case "escaped-name":
				want = []problem{{"name", "must be at most 200 characters"}}
			case "deep-filters":
				want = []problem{{"leadProviderCriteria[0].filters", "must not nest deeper than 32 levels"}}
			case "long-time":
				want = []problem{{"activeUntil", "must be an RFC 3339 timestamp"}}
			case "long-number":
				want = []problem{{"leadsPerList", "must be at most 1000"}}
			default:
				t.Fatalf("no expectation for %s", hc.name)
			}
			checkDetails(t, string(hc.body), want)
		})
	}
}

// TestFurtherProblemsAllocateNothing: past MaxDetails, a problem is counted
// and nothing else, so a hundred times as many cost no more allocations.
func TestFurtherProblemsAllocateNothing(t *testing.T) {
	allocs := func(n int) float64 {
		body := []byte(`{"name":"N","leadProviderCriteria":[],"userIds":[` + strings.TrimSuffix(strings.Repeat(`0,"",`, n), ",") + `]}`)
		return testing.AllocsPerRun(5, func() {
			if _, err := ParseCreate(body, caller); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	// A few allocations of slack: under the race detector sync.Pool (which
	// encoding/json's validator uses) drops items at random.
	if few, many := allocs(100), allocs(10_000); many > few+4 {
		t.Fatalf("%v allocations for 200 problems, %v for 20000", few, many)
	}
}

// Keys longer than maxEscapedKey are skipped undecoded: every member name
// of the schema, written with every character escaped, must fit.
func TestEveryMemberNameFitsTheEscapedKeyBound(t *testing.T) {
	for _, names := range [][]string{createFields, criterionFields, customFilterFields, crmFields, crmFilterFields} {
		for _, n := range names {
			var raw strings.Builder
			raw.WriteByte('"')
			for _, c := range []byte(n) {
				raw.WriteString(`\u00` + strconv.FormatInt(int64(c), 16))
			}
			raw.WriteByte('"')
			if raw.Len() > maxEscapedKey {
				t.Errorf("%s escaped takes %d bytes, more than maxEscapedKey %d", n, raw.Len(), maxEscapedKey)
			}
			var slots [1][]byte
			if fields([]byte(`{`+raw.String()+`:1}`), []string{n}, slots[:]); string(slots[0]) != "1" {
				t.Errorf("%s escaped is not found", n)
			}
		}
	}
}
