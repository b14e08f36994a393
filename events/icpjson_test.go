package events_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
)

// reflectiveJSON is what events.MarshalJSON wrote for an ICP before it had
// an encoder of its own: encoding/json with HTML escaping off.
func reflectiveJSON(t testing.TB, icp domain.ICP) ([]byte, error) {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(icp); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func sameAsReflective(t *testing.T, name string, icp domain.ICP) {
	t.Helper()
	want, wantErr := reflectiveJSON(t, icp)
	got, err := events.MarshalJSON(icp)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("%s: error %v, encoding/json's %v", name, err, wantErr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: MarshalJSON wrote\n%s\nencoding/json writes\n%s", name, got, want)
	}
	ptr, err := events.MarshalJSON(&icp)
	if !bytes.Equal(ptr, want) || (err != nil) != (wantErr != nil) {
		t.Fatalf("%s: MarshalJSON of a pointer wrote %s (%v)", name, ptr, err)
	}
}

func TestAppendICPIsEncodingJSON(t *testing.T) {
	at := domain.NewTime(time.Date(2025, 3, 1, 9, 0, 0, 123e6, time.UTC))
	hard := []string{"", "plain", `quo"te`, `back\slash`, "ctl\x01\n\t\r\x1f", "<b>&amp;</b>", "line\u2028sep\u2029", "bad\xffutf8", "é ü ≥ 😀", "\x7f"}
	raws := []string{
		`{"a" : [1, 2 ,{ "b":"x y" }] }`, "\n\t[ ]\r ", `"a<b>&c"`, `"sep\u2028"`, "\"raw\u2028sep\"", `{"q":"\" \\ "}`,
		`12345678901234567890`, `-0.5e-3`, `null`, `true`, `{"k":"v"}`,
	}
	n := 0
	for _, s := range hard {
		for _, raw := range raws {
			s, raw := s, json.RawMessage(raw)
			icp := domain.ICP{
				ID: s, Name: s, Description: &s, CreatedAt: at, UpdatedAt: at, LeadsPerList: -7, ActiveUntil: &at,
				UserIDs: []string{s, "u"},
				LeadProviderCriteria: []domain.LeadProviderCriterion{
					{Provider: s, Filters: raw},
					{Provider: "p", Type: domain.Some(s), Filters: nil},
					{Provider: "p", Type: domain.Null[string](), Filters: raw},
				},
				CustomFilterCriteria: []domain.CustomFilter{{Type: s, Value: raw}, {Type: "t"}},
				CRMFilters: &domain.CRMFilters{
					Provider: domain.Some(s), TextSearch: domain.Null[string](), Query: raw,
					Filters: domain.Some([]domain.CRMFilter{
						{Path: s, Mode: s, Value: raw, Exclude: domain.Some(true)},
						{Path: "p", Mode: "m", Value: raw, Exclude: domain.Null[bool]()},
						{Path: "p", Mode: "m"},
					}),
				},
			}
			sameAsReflective(t, "all members", icp)
			n++
		}
	}
	for name, crm := range map[string]*domain.CRMFilters{
		"empty":             {},
		"text search only":  {TextSearch: domain.Some("x")},
		"query only":        {Query: json.RawMessage(` { } `)},
		"filters only":      {Filters: domain.Some([]domain.CRMFilter{})},
		"null filters":      {Filters: domain.Null[[]domain.CRMFilter]()},
		"filters set nil":   {Filters: domain.Some[[]domain.CRMFilter](nil)},
		"exclude false":     {Provider: domain.Null[string](), Filters: domain.Some([]domain.CRMFilter{{Path: "a", Mode: "b", Value: json.RawMessage(`1`), Exclude: domain.Some(false)}})},
		"invalid query":     {Query: json.RawMessage(`{`)},
		"invalid filter":    {Filters: domain.Some([]domain.CRMFilter{{Value: json.RawMessage(`[1,]`)}})},
		"trailing in value": {Filters: domain.Some([]domain.CRMFilter{{Value: json.RawMessage(`1 2`)}})},
	} {
		sameAsReflective(t, "crmFilters "+name, domain.ICP{ID: "x", CRMFilters: crm})
		n++
	}
	later := domain.NewTime(at.Add(1500 * time.Millisecond))
	sameAsReflective(t, "updated later", domain.ICP{ID: "x", CreatedAt: at, UpdatedAt: later})
	sameAsReflective(t, "updated earlier", domain.ICP{ID: "x", CreatedAt: later, UpdatedAt: at})
	elsewhere := domain.Time{Time: at.In(time.FixedZone("UTC+5", 5*3600))}
	sameAsReflective(t, "same instant in another zone", domain.ICP{ID: "x", CreatedAt: at, UpdatedAt: elsewhere})
	sameAsReflective(t, "zero", domain.ICP{})
	sameAsReflective(t, "empty lists", domain.ICP{LeadProviderCriteria: []domain.LeadProviderCriterion{}, CustomFilterCriteria: []domain.CustomFilter{}, UserIDs: []string{}})
	sameAsReflective(t, "invalid filters", domain.ICP{LeadProviderCriteria: []domain.LeadProviderCriterion{{Filters: json.RawMessage(`{"a":}`)}}})
	sameAsReflective(t, "invalid value", domain.ICP{CustomFilterCriteria: []domain.CustomFilter{{Value: json.RawMessage(`01`)}}})
	if n < 100 {
		t.Fatalf("compared %d ICPs", n)
	}
}

// FuzzAppendICP compares the ICP encoder with encoding/json on any ICP that
// encoding/json can read.
func FuzzAppendICP(f *testing.F) {
	f.Add([]byte(`{"id":"a","name":"n <&>","description":"d\u2028","createdAt":"2025-01-01T00:00:00Z",` +
		`"leadProviderCriteria":[{"provider":"p","type":"company","filters":{ "x" : [1, "a b"] }}],` +
		`"customFilterCriteria":[{"type":"t","value": 2.50 }],` +
		`"crmFilters":{"provider":null,"query":{"q" : "<"},"filters":[{"path":"p","mode":"m","value":"a&b","exclude":null}]},` +
		`"userIds":["u","\u00e9"],"leadsPerList":20,"activeUntil":null}`))
	f.Add([]byte(`{"crmFilters":{},"leadProviderCriteria":[],"userIds":null}`))
	f.Add([]byte(`{"crmFilters":{"textSearch":"x\\"y","filters":null},"name":"\ud800"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var icp domain.ICP
		if json.Unmarshal(data, &icp) != nil {
			return
		}
		sameAsReflective(t, string(data), icp)
	})
}

// BenchmarkEncodeCreated measures recording a create's payload: the ICP of
// the load generator's body (about 1 KiB) with its tenant and creator.
func BenchmarkEncodeCreated(b *testing.B) {
	var p domain.ICPCreatedV1
	data := []byte(`{"icp":{"id":"01a21c43-f51a-7898-be8a-dd4d90cc1227","name":"DACH Tech Leaders","description":"Technology leaders in German-speaking regions",` +
		`"createdAt":"2026-11-27T09:09:05.434Z","updatedAt":"2026-11-27T09:09:05.434Z","leadProviderCriteria":[{"provider":"baseProvider","type":"person",` +
		`"filters":{"job_title":["CTO","VP Engineering","Head of Engineering"],"location":{"country":["Germany","Austria","Switzerland"]},` +
		`"company":{"employee_size":{"min":50,"max":5000}},"skills":["go","kubernetes"]}}],"customFilterCriteria":[{"type":"maxPeoplePerCompany","value":2},` +
		`{"type":"minDaysUntilReuse","value":30}],"crmFilters":{"provider":"bullhorn","textSearch":"Marketing*","filters":[{"path":"status","mode":"equals",` +
		`"value":"active","exclude":false}]},"userIds":["user_load"],"leadsPerList":20,"activeUntil":null},"tenant":"personal:user_load","createdBy":"user_load"}`)
	if err := json.Unmarshal(data, &p); err != nil {
		b.Fatal(err)
	}
	md := events.Metadata{Tenant: p.Tenant, UserID: p.CreatedBy}
	b.ReportAllocs()
	for b.Loop() {
		ev, _, err := events.EncodeCreated("ev", p, md)
		if err != nil || !bytes.Equal(ev.Data, data) {
			b.Fatalf("encoded %s (%v)", ev.Data, err)
		}
	}
}
