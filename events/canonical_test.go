package events_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/projections"
)

// canonicalSamples are create payloads as events.Encode writes them, with
// whether ParseCanonicalCreated must take each (it declines strings that
// the encoder escapes, and values json.Marshal escapes inside an Opt).
func canonicalSamples(t testing.TB) (payloads [][]byte, accept []bool) {
	t.Helper()
	at := domain.NewTime(time.Date(2025, 3, 1, 9, 0, 0, 123e6, time.UTC))
	desc := "Entscheider in der DACH-Region: Größe ≥ 50 <&>"
	until := domain.NewTime(at.Add(90 * 24 * time.Hour))
	base := func() domain.ICP {
		return domain.ICP{ID: "0b6f7d2e-8c1a-4c2e-9d3f-3f5a1e2b4c6d", Name: "DACH Tech Leaders", CreatedAt: at, UpdatedAt: at, LeadsPerList: 100}
	}
	type sample struct {
		icp    func(*domain.ICP)
		accept bool
	}
	samples := []sample{
		{func(*domain.ICP) {}, true},
		{func(i *domain.ICP) {
			i.Description = &desc
			i.ActiveUntil = &until
			i.UserIDs = []string{"user_1", "user_shared", "ü"}
			i.LeadProviderCriteria = []domain.LeadProviderCriterion{
				{Provider: "baseProvider", Filters: json.RawMessage(`{"z_last":1,"job_title":["CTO","VP \"Eng\""],"employees":{"$gt":12345678901234567890},"loc":["DE","AT"],"x":[true,false,null,-0.5e-3,{}],"y":[]}`)},
				{Provider: "other", Type: domain.Some("company"), Filters: json.RawMessage(`null`)},
				{Provider: "third", Type: domain.Null[string](), Filters: json.RawMessage(`"a<b"`)},
			}
			i.CustomFilterCriteria = []domain.CustomFilter{{Type: "maxPeoplePerCompany", Value: json.RawMessage(`2.50`)}, {Type: "t", Value: json.RawMessage(`1E+10`)}}
			i.CRMFilters = &domain.CRMFilters{
				Provider: domain.Some("hubspot"), TextSearch: domain.Null[string](), Query: json.RawMessage(`{"q":[1,2]}`),
				Filters: domain.Some([]domain.CRMFilter{
					{Path: "deal.stage", Mode: "eq", Value: json.RawMessage(`"won"`), Exclude: domain.Some(true)},
					{Path: "owner", Mode: "in", Value: json.RawMessage(`["a","b\u00e9"]`), Exclude: domain.Null[bool]()},
					{Path: "size", Mode: "gt", Value: json.RawMessage(`10`)},
				}),
			}
		}, true},
		{func(i *domain.ICP) {
			i.UserIDs, i.LeadProviderCriteria, i.CustomFilterCriteria = []string{}, []domain.LeadProviderCriterion{}, []domain.CustomFilter{}
			i.CRMFilters = &domain.CRMFilters{Filters: domain.Some([]domain.CRMFilter{})}
			i.LeadsPerList = -7
		}, true},
		{func(i *domain.ICP) { i.CRMFilters = &domain.CRMFilters{} }, true},
		{func(i *domain.ICP) {
			i.CRMFilters = &domain.CRMFilters{Query: json.RawMessage(`null`), Filters: domain.Null[[]domain.CRMFilter]()}
		}, true},
		{func(i *domain.ICP) { i.Name = `say "hi"` }, false},
		{func(i *domain.ICP) { i.Name = "tab\there" }, false},
		{func(i *domain.ICP) { i.Name = "line\u2028sep" }, false},
		{func(i *domain.ICP) { i.Name = "bad \xff byte" }, false},
		{func(i *domain.ICP) {
			i.LeadProviderCriteria = []domain.LeadProviderCriterion{{Provider: "p", Type: domain.Some("a<b"), Filters: json.RawMessage(`1`)}}
		}, false},
		{func(i *domain.ICP) { // json.Marshal escapes the '&', which raw JSON may hold
			i.CRMFilters = &domain.CRMFilters{Filters: domain.Some([]domain.CRMFilter{{Path: "p", Mode: "m", Value: json.RawMessage(`"x&y"`)}})}
		}, true},
	}
	for _, s := range samples {
		icp := base()
		s.icp(&icp)
		p, err := events.Encode("ev", domain.ICPCreatedV1{ICP: icp, Tenant: "org_a", CreatedBy: "user_1"}, events.Metadata{Tenant: "org_a"})
		if err != nil {
			t.Fatal(err)
		}
		payloads, accept = append(payloads, p.Data), append(accept, s.accept)
	}
	// Written by another hand: the same values, other spellings.
	good := string(payloads[1])
	for _, edit := range [][2]string{
		{`{"icp":`, `{ "icp":`},
		{`"loc":["DE","AT"]`, `"loc":["DE", "AT"]`},
		{`"leadsPerList":100`, `"leadsPerList":1e2`},
		{`"leadsPerList":100`, `"leadsPerList":0100`},
		{`"createdAt":"2025-03-01T09:00:00.123Z"`, `"createdAt":"2025-03-01T10:00:00.123+01:00"`},
		{`"tenant":"org_a"`, `"tenant":"org_\u0061"`},
		{`"name":"DACH Tech Leaders"`, `"Name":"DACH Tech Leaders"`},
		{`"name":"DACH Tech Leaders",`, ``},
		{`"createdBy":"user_1"`, `"createdBy":"user_1","extra":1`},
		{`"exclude":true`, `"exclude":1`},
		{`"value":"won"`, `"value":won`},
		{`"q":[1,2]`, `"q":[1,2,]`},
		{`-0.5e-3`, `-.5e-3`},
		{`-0.5e-3`, `-0.5e`},
		{`"value":"won"`, `"value":"w&n"`},       // json.Marshal would escape it inside an Opt
		{`"type":"company"`, `"type":"c<y"`},     // likewise
		{`"user_shared"`, `"user_shared\u2028"`}, // escaped characters fall back
	} {
		if !strings.Contains(good, edit[0]) {
			t.Fatalf("sample lacks %s: %s", edit[0], good)
		}
		payloads, accept = append(payloads, []byte(strings.Replace(good, edit[0], edit[1], 1))), append(accept, false)
	}
	return payloads, accept
}

func TestCanonicalCreate(t *testing.T) {
	payloads, accept := canonicalSamples(t)
	for i, data := range payloads {
		ok := checkCanonical(t, data)
		if ok != accept[i] {
			t.Errorf("payload %d: taken %v, want %v: %s", i, ok, accept[i], data)
		}
	}
}

// FuzzCanonicalCreate searches for a payload that ParseCanonicalCreated
// reads otherwise than encoding/json (go test -fuzz FuzzCanonicalCreate
// ./events).
func FuzzCanonicalCreate(f *testing.F) {
	payloads, _ := canonicalSamples(f)
	for _, p := range payloads {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkCanonical(t, data) })
}

// checkCanonical checks what ParseCanonicalCreated makes of data against
// encoding/json, and reports whether it took it.
func checkCanonical(t *testing.T, data []byte) bool {
	t.Helper()
	got, doc, ok := events.ParseCanonicalCreated(data)
	if !ok {
		if got.Tenant != "" || doc != nil {
			t.Fatalf("declined %q but returned a value", data)
		}
		return false
	}
	var want domain.ICPCreatedV1
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatalf("took %q, which json.Unmarshal refuses: %v", data, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q read as\n%#v\njson.Unmarshal reads\n%#v", data, got, want)
	}
	enc, err := events.MarshalJSON(want.ICP)
	if err != nil || string(enc) != string(doc) {
		t.Fatalf("%q: doc %s, events.MarshalJSON gives %s (%v)", data, doc, enc, err)
	}
	if s, err := domain.Evolve(nil, got, 1, 7); err == nil {
		v, err := projections.ViewOfDoc(s, doc)
		w, werr := projections.ViewOf(s)
		if err != nil || werr != nil || !reflect.DeepEqual(v, w) {
			t.Fatalf("%q: view %+v (%v), projections.ViewOf gives %+v (%v)", data, v, err, w, werr)
		}
	}
	return true
}

// ParseCanonicalCreated knows the payload's fields as they are listed here;
// a change to them must be made there too (a new key would only make
// payloads that carry it fall back, but a changed type or tag would not).
func TestCanonicalCreateKnowsEveryField(t *testing.T) {
	want := strings.TrimSpace(`
ICP domain.ICP "icp"
ICP.ID string "id"
ICP.Name string "name"
ICP.Description *string "description"
ICP.CreatedAt domain.Time "createdAt"
ICP.CreatedAt.Time time.Time ""
ICP.UpdatedAt domain.Time "updatedAt"
ICP.UpdatedAt.Time time.Time ""
ICP.LeadProviderCriteria []domain.LeadProviderCriterion "leadProviderCriteria"
ICP.LeadProviderCriteria.Provider string "provider"
ICP.LeadProviderCriteria.Type domain.Opt[string] "type,omitzero"
ICP.LeadProviderCriteria.Type.Set bool ""
ICP.LeadProviderCriteria.Type.Null bool ""
ICP.LeadProviderCriteria.Type.V string ""
ICP.LeadProviderCriteria.Filters json.RawMessage "filters"
ICP.CustomFilterCriteria []domain.CustomFilter "customFilterCriteria"
ICP.CustomFilterCriteria.Type string "type"
ICP.CustomFilterCriteria.Value json.RawMessage "value"
ICP.CRMFilters *domain.CRMFilters "crmFilters"
ICP.CRMFilters.Provider domain.Opt[string] "provider,omitzero"
ICP.CRMFilters.Provider.Set bool ""
ICP.CRMFilters.Provider.Null bool ""
ICP.CRMFilters.Provider.V string ""
ICP.CRMFilters.TextSearch domain.Opt[string] "textSearch,omitzero"
ICP.CRMFilters.TextSearch.Set bool ""
ICP.CRMFilters.TextSearch.Null bool ""
ICP.CRMFilters.TextSearch.V string ""
ICP.CRMFilters.Query json.RawMessage "query,omitempty"
ICP.CRMFilters.Filters domain.Opt[[]github.com/icpservice/icp/domain.CRMFilter] "filters,omitzero"
ICP.CRMFilters.Filters.Set bool ""
ICP.CRMFilters.Filters.Null bool ""
ICP.CRMFilters.Filters.V []domain.CRMFilter ""
ICP.CRMFilters.Filters.V.Path string "path"
ICP.CRMFilters.Filters.V.Mode string "mode"
ICP.CRMFilters.Filters.V.Value json.RawMessage "value"
ICP.CRMFilters.Filters.V.Exclude domain.Opt[bool] "exclude,omitzero"
ICP.CRMFilters.Filters.V.Exclude.Set bool ""
ICP.CRMFilters.Filters.V.Exclude.Null bool ""
ICP.CRMFilters.Filters.V.Exclude.V bool ""
ICP.UserIDs []string "userIds"
ICP.LeadsPerList int "leadsPerList"
ICP.ActiveUntil *domain.Time "activeUntil"
ICP.ActiveUntil.Time time.Time ""
Tenant string "tenant"
CreatedBy string "createdBy"`)
	var fields []string
	describe(reflect.TypeFor[domain.ICPCreatedV1](), "", &fields)
	if got := strings.Join(fields, "\n"); got != want {
		t.Fatalf("the create payload's fields changed; update ParseCanonicalCreated, then this list:\n%s", got)
	}
}

// describe lists the fields of t's structs, through pointers and slices,
// with their types and JSON tags; time.Time is a leaf.
func describe(t reflect.Type, prefix string, out *[]string) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeFor[time.Time]() {
		return
	}
	for i := range t.NumField() {
		f := t.Field(i)
		*out = append(*out, fmt.Sprintf("%s%s %s %q", prefix, f.Name, f.Type, f.Tag.Get("json")))
		describe(f.Type, prefix+f.Name+".", out)
	}
}

// EncodeCreated writes the very event Encode writes, and its icp bytes are
// MarshalJSON of the ICP.
func TestEncodeCreatedIsEncode(t *testing.T) {
	payloads, _ := canonicalSamples(t)
	n := 0
	for _, data := range payloads {
		var p domain.ICPCreatedV1
		if err := json.Unmarshal(data, &p); err != nil {
			continue // the samples written by another hand include invalid JSON
		}
		for _, who := range [][2]string{{p.Tenant, p.CreatedBy}, {`org_"<&>"`, "user_\u2028é"}} {
			p.Tenant, p.CreatedBy = who[0], who[1]
			md := events.Metadata{Tenant: p.Tenant, UserID: p.CreatedBy}
			want, err := events.Encode("ev-1", p, md)
			if err != nil {
				t.Fatal(err)
			}
			got, icp, err := events.EncodeCreated("ev-1", p, md)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("EncodeCreated wrote\n%s\nEncode writes\n%s", got.Data, want.Data)
			}
			doc, err := events.MarshalJSON(p.ICP)
			if err != nil || string(icp) != string(doc) {
				t.Fatalf("icp bytes %s, MarshalJSON gives %s (%v)", icp, doc, err)
			}
			n++
		}
	}
	if n < 20 {
		t.Fatalf("compared %d payloads, want the samples", n)
	}
}
