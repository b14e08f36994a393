package commands

import (
	"testing"
	"time"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
)

const benchBody = `{"name":"DACH Tech Leaders","description":"Technology leaders in German-speaking regions",
 "leadProviderCriteria":[{"provider":"baseProvider","type":"person",
   "filters":{"job_title":["CTO","VP Engineering"],"location":{"country":["Germany","Austria","Switzerland"]},"company.employee_size.min":50}}],
 "customFilterCriteria":[{"type":"maxPeoplePerCompany","value":2}],
 "crmFilters":{"provider":"bullhorn","textSearch":"Marketing*","filters":[{"path":"status","mode":"eq","value":"active","exclude":false}]},
 "userIds":["user_abc123"],"leadsPerList":20,"activeUntil":null}`

// loadBody is the load generator's create request (internal/loadgen.Body).
const loadBody = `{"name":"DACH Tech Leaders","description":"Technology leaders in German-speaking regions",
"leadProviderCriteria":[{"provider":"baseProvider","type":"person","filters":{"job_title":["CTO","VP Engineering","Head of Engineering"],
"location":{"country":["Germany","Austria","Switzerland"]},"company":{"employee_size":{"min":50,"max":5000}},"skills":["go","kubernetes"]}}],
"customFilterCriteria":[{"type":"maxPeoplePerCompany","value":2},{"type":"minDaysUntilReuse","value":30}],
"crmFilters":{"provider":"bullhorn","textSearch":"Marketing*","filters":[{"path":"status","mode":"equals","value":"active","exclude":false}]},
"leadsPerList":20,"activeUntil":null}`

func BenchmarkParseCreate(b *testing.B) {
	body := []byte(benchBody)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCreate(body, "user_me"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseCreateLoad is ParseCreate of the load generator's body.
func BenchmarkParseCreateLoad(b *testing.B) {
	body := []byte(loadBody)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCreate(body, "user_load"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCreateHash(b *testing.B) {
	cmd, err := ParseCreate([]byte(benchBody), "user_me")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = HashCreate(cmd)
	}
}

// BenchmarkPrepareCreate is what the handler does for a create of the load
// generator's body between its decision and the store's append (prepare):
// encoding the event and checking it against the bus's and the read model's
// limits, as the service wires them.
func BenchmarkPrepareCreate(b *testing.B) {
	cmd, err := ParseCreate([]byte(loadBody), "user_load")
	if err != nil {
		b.Fatal(err)
	}
	h := &Handler{now: time.Now, busLimit: func() int64 { return 1 << 20 }, maxDoc: 16 << 20}
	a := domain.Actor{Tenant: "personal:user_load", UserID: "user_load"}
	md := h.metadata(a, RequestMeta{CorrelationID: "6f1d9a623c474b0e9d552a8e1f7c4b90"})
	id := newICPID()
	ev, err := domain.DecideCreate(nil, id, a, cmd, h.now())
	if err != nil {
		b.Fatal(err)
	}
	payloads := []any{ev}
	stream := events.StreamID(id)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.prepare(stream, &current{}, payloads, md); err != nil {
			b.Fatal(err)
		}
	}
}
