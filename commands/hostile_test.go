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
					_ = cmd.Hash()
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
