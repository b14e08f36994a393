package commands

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
)

const caller = "user_caller"

var fixedNow = time.Date(2024, 1, 15, 11, 30, 0, 123456789, time.FixedZone("CET", 3600))

// problem is an expected validation detail: the exact path and a part of the
// message.
type problem struct{ path, msg string }

func parseErr(t *testing.T, body string) *ValidationError {
	t.Helper()
	_, err := ParseCreate([]byte(body), caller)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("ParseCreate(%s) = %v, want a *ValidationError", short(body), err)
	}
	return ve
}

func short(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

func mustParse(t *testing.T, body string) domain.CreateICP {
	t.Helper()
	cmd, err := ParseCreate([]byte(body), caller)
	if err != nil {
		t.Fatalf("ParseCreate(%s): %v", short(body), err)
	}
	return cmd
}

func checkDetails(t *testing.T, body string, want []problem) {
	t.Helper()
	ve := parseErr(t, body)
	if len(ve.Details) != len(want) {
		t.Fatalf("ParseCreate(%s): details %+v, want %d: %+v", short(body), ve.Details, len(want), want)
	}
	for i, w := range want {
		d := ve.Details[i]
		if d.Path != w.path || !strings.Contains(d.Message, w.msg) {
			t.Errorf("detail %d = {%q, %q}, want {%q, containing %q}", i, d.Path, d.Message, w.path, w.msg)
		}
	}
}

// valid wraps extra top-level members into an otherwise valid body.
func valid(extra string) string {
	b := `{"name":"N","leadProviderCriteria":[{"provider":"baseProvider","filters":{}}]`
	if extra != "" {
		b += "," + extra
	}
	return b + "}"
}

func deep(n int) string { return strings.Repeat(`{"a":`, n-1) + "{}" + strings.Repeat("}", n-1) }

func TestParseCreateRejectsEachRule(t *testing.T) {
	lpc := func(items string) string { return `{"name":"N","leadProviderCriteria":[` + items + `]}` }
	many := func(n int, item string) string { return strings.TrimSuffix(strings.Repeat(item+",", n), ",") }
	tests := []struct {
		name string
		body string
		want []problem
	}{
		{"name missing", `{"leadProviderCriteria":[]}`, []problem{{"name", "is required"}}},
		{"name not a string", `{"name":5,"leadProviderCriteria":[]}`, []problem{{"name", "must be a string, not a number"}}},
		{"name null", `{"name":null,"leadProviderCriteria":[]}`, []problem{{"name", "must be a string, not null"}}},
		{"name blank", `{"name":" \t\n ","leadProviderCriteria":[]}`, []problem{{"name", "must not be empty"}}},
		{"name too long", `{"name":"` + strings.Repeat("é", 201) + `","leadProviderCriteria":[]}`, []problem{{"name", "at most 200 characters"}}},
		{"description too long", valid(`"description":"` + strings.Repeat("x", 2001) + `"`), []problem{{"description", "at most 2000 characters"}}},
		{"description wrong type", valid(`"description":["x"]`), []problem{{"description", "must be a string or null, not an array"}}},
		{"criteria missing", `{"name":"N"}`, []problem{{"leadProviderCriteria", "is required"}}},
		{"criteria not an array", `{"name":"N","leadProviderCriteria":{}}`, []problem{{"leadProviderCriteria", "must be an array, not an object"}}},
		{"criteria null", `{"name":"N","leadProviderCriteria":null}`, []problem{{"leadProviderCriteria", "must be an array, not null"}}},
		{"too many criteria", lpc(many(21, `{"provider":"baseProvider","filters":{}}`)), []problem{{"leadProviderCriteria", "at most 20 items, has 21"}}},
		{"criterion not an object", lpc(`{"provider":"baseProvider","filters":{}},"x"`), []problem{{"leadProviderCriteria[1]", "must be an object, not a string"}}},
		{"provider missing", lpc(`{"filters":{}}`), []problem{{"leadProviderCriteria[0].provider", "is required"}}},
		{"provider not a string", lpc(`{"provider":1,"filters":{}}`), []problem{{"leadProviderCriteria[0].provider", "must be a string"}}},
		{"provider unsupported", lpc(`{"provider":"apollo","filters":{}}`), []problem{{"leadProviderCriteria[0].provider", `must be "baseProvider"`}}},
		{"type unknown", lpc(`{"provider":"baseProvider","type":"org","filters":{}}`), []problem{{"leadProviderCriteria[0].type", `must be "person" or "company"`}}},
		{"type null", lpc(`{"provider":"baseProvider","type":null,"filters":{}}`), []problem{{"leadProviderCriteria[0].type", `must be "person" or "company"`}}},
		{"filters missing", lpc(`{"provider":"baseProvider"}`), []problem{{"leadProviderCriteria[0].filters", "is required"}}},
		{"filters not an object", lpc(`{"provider":"baseProvider","filters":[1]}`), []problem{{"leadProviderCriteria[0].filters", "must be a JSON object, not an array"}}},
		{"filters too deep", lpc(`{"provider":"baseProvider","filters":` + deep(33) + `}`), []problem{{"leadProviderCriteria[0].filters", "deeper than 32 levels"}}},
		{"custom not an array", valid(`"customFilterCriteria":{}`), []problem{{"customFilterCriteria", "must be an array"}}},
		{"custom null", valid(`"customFilterCriteria":null`), []problem{{"customFilterCriteria", "must be an array, not null"}}},
		{"too many custom", valid(`"customFilterCriteria":[` + many(21, `{"type":"minDaysUntilReuse","value":1}`) + `]`), []problem{{"customFilterCriteria", "at most 20 items, has 21"}}},
		{"custom type unknown", valid(`"customFilterCriteria":[{"type":"maxLeads","value":1}]`), []problem{{"customFilterCriteria[0].type", `unknown type "maxLeads"; known types: maxPeoplePerCompany, minDaysUntilReuse`}}},
		{"custom type missing", valid(`"customFilterCriteria":[{"value":1}]`), []problem{{"customFilterCriteria[0].type", "is required"}}},
		{"custom value missing", valid(`"customFilterCriteria":[{"type":"maxPeoplePerCompany"}]`), []problem{{"customFilterCriteria[0].value", "is required"}}},
		{"custom value a string", valid(`"customFilterCriteria":[{"type":"maxPeoplePerCompany","value":"2"}]`), []problem{{"customFilterCriteria[0].value", "must be a number, not a string"}}},
		{"custom value fractional", valid(`"customFilterCriteria":[{"type":"maxPeoplePerCompany","value":2.5}]`), []problem{{"customFilterCriteria[0].value", "must be an integer for maxPeoplePerCompany"}}},
		{"maxPeoplePerCompany zero", valid(`"customFilterCriteria":[{"type":"maxPeoplePerCompany","value":0}]`), []problem{{"customFilterCriteria[0].value", "at least 1"}}},
		{"minDaysUntilReuse negative", valid(`"customFilterCriteria":[{"type":"minDaysUntilReuse","value":-1}]`), []problem{{"customFilterCriteria[0].value", "at least 0"}}},
		{"crm not an object", valid(`"crmFilters":[]`), []problem{{"crmFilters", "must be an object or null, not an array"}}},
		{"crm provider not a string", valid(`"crmFilters":{"provider":true}`), []problem{{"crmFilters.provider", "must be a string, not a boolean"}}},
		{"crm textSearch wrong type", valid(`"crmFilters":{"textSearch":1}`), []problem{{"crmFilters.textSearch", "must be a string or null"}}},
		{"crm query too deep", valid(`"crmFilters":{"query":` + deep(33) + `}`), []problem{{"crmFilters.query", "deeper than 32 levels"}}},
		{"crm filters not an array", valid(`"crmFilters":{"filters":null}`), []problem{{"crmFilters.filters", "must be an array, not null"}}},
		{"too many crm filters", valid(`"crmFilters":{"filters":[` + many(51, `{"path":"p","mode":"m","value":1}`) + `]}`), []problem{{"crmFilters.filters", "at most 50 items, has 51"}}},
		{"crm filter parts missing", valid(`"crmFilters":{"filters":[{"path":"p","mode":"m","value":1},{"exclude":"yes"}]}`), []problem{
			{"crmFilters.filters[1].path", "is required"},
			{"crmFilters.filters[1].mode", "is required"},
			{"crmFilters.filters[1].value", "is required"},
			{"crmFilters.filters[1].exclude", "must be a boolean, not a string"},
		}},
		{"crm filter value too deep", valid(`"crmFilters":{"filters":[{"path":"p","mode":"m","value":1},{"path":"p","mode":"m","value":1},{"path":"p","mode":"m","value":1},{"path":"p","mode":"m","value":` + strings.Repeat("[", 33) + strings.Repeat("]", 33) + `}]}`), []problem{{"crmFilters.filters[3].value", "deeper than 32 levels"}}},
		{"userIds not an array", valid(`"userIds":"user_a"`), []problem{{"userIds", "must be an array of strings, not a string"}}},
		{"userIds null", valid(`"userIds":null`), []problem{{"userIds", "must be an array of strings, not null"}}},
		{"userId empty", valid(`"userIds":["user_a",""]`), []problem{{"userIds[1]", "must not be empty"}}},
		{"userId too long", valid(`"userIds":["` + strings.Repeat("u", 129) + `"]`), []problem{{"userIds[0]", "at most 128 characters"}}},
		{"userId not a string", valid(`"userIds":[7]`), []problem{{"userIds[0]", "must be a string, not a number"}}},
		{"userIds over 100 with the caller", valid(`"userIds":[` + userList(100) + `]`), []problem{{"userIds", "at most 100 distinct entries including the caller, has more"}}},
		{"leadsPerList zero", valid(`"leadsPerList":0`), []problem{{"leadsPerList", "at least 1"}}},
		{"leadsPerList too big", valid(`"leadsPerList":1001`), []problem{{"leadsPerList", "at most 1000"}}},
		{"leadsPerList huge", valid(`"leadsPerList":123456789012345678901234567890`), []problem{{"leadsPerList", "at most 1000"}}},
		{"leadsPerList fractional", valid(`"leadsPerList":10.5`), []problem{{"leadsPerList", "must be an integer"}}},
		{"leadsPerList a string", valid(`"leadsPerList":"10"`), []problem{{"leadsPerList", "must be an integer, not a string"}}},
		{"leadsPerList null", valid(`"leadsPerList":null`), []problem{{"leadsPerList", "must be an integer, not null"}}},
		{"activeUntil not a time", valid(`"activeUntil":"tomorrow"`), []problem{{"activeUntil", "RFC 3339"}}},
		{"activeUntil a number", valid(`"activeUntil":1700000000`), []problem{{"activeUntil", "RFC 3339"}}},
		{"duplicate key", valid(`"name":"again"`), []problem{{"name", "is given more than once"}}},
		{"duplicate nested key", lpc(`{"provider":"baseProvider","filters":{},"filters":{}}`), []problem{{"leadProviderCriteria[0].filters", "is given more than once"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { checkDetails(t, tc.body, tc.want) })
	}
}

func userList(n int) string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%q", fmt.Sprintf("user_%d", i))
	}
	return strings.Join(ids, ",")
}

func TestParseCreateReportsEveryProblemAtOnce(t *testing.T) {
	body := `{"name":"","description":7,"leadProviderCriteria":[{"provider":"x","type":"robot","filters":{}},{"provider":"baseProvider"}],
		"customFilterCriteria":[{"type":"nope","value":1},{"type":"minDaysUntilReuse","value":1.5}],
		"crmFilters":{"filters":[{"path":"a","mode":"eq","value":1},{"path":1,"mode":"eq","value":1}]},
		"userIds":[""],"leadsPerList":0,"activeUntil":"soon","unknownField":{"ignored":true}}`
	checkDetails(t, body, []problem{
		{"name", "must not be empty"},
		{"description", "must be a string or null"},
		{"leadProviderCriteria[0].provider", `must be "baseProvider"`},
		{"leadProviderCriteria[0].type", `"person" or "company"`},
		{"leadProviderCriteria[1].filters", "is required"},
		{"customFilterCriteria[0].type", "unknown type"},
		{"customFilterCriteria[1].value", "must be an integer"},
		{"crmFilters.filters[1].path", "must be a string"},
		{"userIds[0]", "must not be empty"},
		{"leadsPerList", "at least 1"},
		{"activeUntil", "RFC 3339"},
	})
}

func TestParseCreateRefusesBodiesThatAreNotOneObject(t *testing.T) {
	for _, tc := range []struct{ name, body, msg string }{
		{"empty", "", "empty"},
		{"whitespace", " \n", "empty"},
		{"array", `[{"name":"N"}]`, "must be a JSON object"},
		{"null", `null`, "must be a JSON object"},
		{"string", `"x"`, "must be a JSON object"},
		{"malformed", `{"name":`, "malformed JSON"},
		{"single quotes", `{'name':'N'}`, "malformed JSON"},
		{"trailing object", valid("") + ` {}`, "unexpected data after the JSON value"},
		{"trailing garbage", valid("") + `x`, "malformed JSON"},
		{"invalid UTF-8", "{\"name\":\"\xff\",\"leadProviderCriteria\":[]}", "not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ve := parseErr(t, tc.body)
			if len(ve.Details) != 0 || !strings.Contains(ve.Message, tc.msg) {
				t.Fatalf("got %q with details %v, want a message containing %q and no details", ve.Message, ve.Details, tc.msg)
			}
		})
	}
}

func TestParseCreateAppliesDefaults(t *testing.T) {
	cmd := mustParse(t, `{"name":"  DACH Tech  ","leadProviderCriteria":[]}`)
	want := domain.CreateICP{
		Name:                 "DACH Tech",
		LeadProviderCriteria: []domain.LeadProviderCriterion{},
		CustomFilterCriteria: []domain.CustomFilter{},
		UserIDs:              []string{caller},
		LeadsPerList:         10,
	}
	if !reflect.DeepEqual(cmd, want) {
		t.Fatalf("got %+v\nwant %+v", cmd, want)
	}
}

func TestParseCreateAcceptsTheLimits(t *testing.T) {
	items := strings.TrimSuffix(strings.Repeat(`{"provider":"baseProvider","type":"company","filters":{}},`, 20), ",")
	body := `{"name":"` + strings.Repeat("é", 200) + `","description":"` + strings.Repeat("d", 2000) + `",
		"leadProviderCriteria":[` + items + `],
		"customFilterCriteria":[{"type":"maxPeoplePerCompany","value":1},{"type":"minDaysUntilReuse","value":0},{"type":"maxPeoplePerCompany","value":2.0},{"type":"minDaysUntilReuse","value":1e2}],
		"crmFilters":{"filters":[` + strings.TrimSuffix(strings.Repeat(`{"path":"p","mode":"m","value":`+deep(32)+`},`, 50), ",") + `]},
		"userIds":[` + userList(98) + `,"` + strings.Repeat("u", 128) + `"],
		"leadsPerList":1000}`
	cmd := mustParse(t, body)
	if len(cmd.UserIDs) != 100 || cmd.UserIDs[99] != caller {
		t.Fatalf("userIds: %d entries ending in %q, want 100 ending in the caller", len(cmd.UserIDs), cmd.UserIDs[len(cmd.UserIDs)-1])
	}
	if len(cmd.LeadProviderCriteria) != 20 || len(cmd.CustomFilterCriteria) != 4 || len(cmd.CRMFilters.Filters.V) != 50 || cmd.LeadsPerList != 1000 {
		t.Fatalf("limits not kept: %d criteria, %d custom, %d crm filters, leadsPerList %d",
			len(cmd.LeadProviderCriteria), len(cmd.CustomFilterCriteria), len(cmd.CRMFilters.Filters.V), cmd.LeadsPerList)
	}
}

func TestParseCreateKeepsFreeFormJSONExactly(t *testing.T) {
	body := `{"name":"N","leadProviderCriteria":[{"provider":"baseProvider","type":"person","filters":
		{ "location.country" : ["Germany"], "$where": {"$gt": 12345678901234567890123456789},
		  "n": -0.000000000000000000001, "esc": "a\u00e9\"<&>", "e": 1E+400 }}],
		"customFilterCriteria":[{"type":"maxPeoplePerCompany","value":2.0}],
		"crmFilters":{"provider":"bullhorn","textSearch":null,"query":{"$and":[{"a.b":9007199254740993}]},
		  "filters":[{"path":"x.y","mode":"eq","value":null,"exclude":false}]}}`
	cmd := mustParse(t, body)
	wantFilters := `{"location.country":["Germany"],"$where":{"$gt":12345678901234567890123456789},"n":-0.000000000000000000001,"esc":"a\u00e9\"<&>","e":1E+400}`
	if got := string(cmd.LeadProviderCriteria[0].Filters); got != wantFilters {
		t.Errorf("filters:\n got %s\nwant %s", got, wantFilters)
	}
	if got := string(cmd.CustomFilterCriteria[0].Value); got != "2.0" {
		t.Errorf("custom value = %s, want 2.0", got)
	}
	crm := cmd.CRMFilters
	if got := string(crm.Query); got != `{"$and":[{"a.b":9007199254740993}]}` {
		t.Errorf("query = %s", got)
	}
	if !crm.TextSearch.Set || !crm.TextSearch.Null || crm.Provider.V != "bullhorn" {
		t.Errorf("crm provider/textSearch = %+v / %+v", crm.Provider, crm.TextSearch)
	}
	f := crm.Filters.V[0]
	if f.Path != "x.y" || f.Mode != "eq" || string(f.Value) != "null" || !f.Exclude.Set || f.Exclude.V {
		t.Errorf("crm filter = %+v", f)
	}
	// What is served is what was accepted: the ICP's JSON carries the same text.
	ev, err := domain.DecideCreate(nil, "id", domain.Actor{UserID: caller, Tenant: "org_1"}, cmd, fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := events.MarshalJSON(ev.ICP)
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{wantFilters, `"customFilterCriteria":[{"type":"maxPeoplePerCompany","value":2.0}]`,
		`"crmFilters":{"provider":"bullhorn","textSearch":null,"query":{"$and":[{"a.b":9007199254740993}]},"filters":[{"path":"x.y","mode":"eq","value":null,"exclude":false}]}`} {
		if !strings.Contains(string(doc), part) {
			t.Errorf("served JSON %s\nlacks %s", doc, part)
		}
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatalf("served JSON is not an object: %v", err)
	}
}

func TestParseCreateKeepsOnlyKeysSentInCRMFilters(t *testing.T) {
	cmd := mustParse(t, valid(`"crmFilters":{"provider":"bullhorn"}`))
	ev, err := domain.DecideCreate(nil, "id", domain.Actor{UserID: caller, Tenant: "personal:" + caller}, cmd, fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := events.MarshalJSON(ev.ICP)
	if !strings.Contains(string(doc), `"crmFilters":{"provider":"bullhorn"}`) || !strings.Contains(string(doc), `{"provider":"baseProvider","filters":{}}`) {
		t.Fatalf("keys invented on output: %s", doc)
	}
}

func TestParseCreateNormalisesUserIDsAndTimes(t *testing.T) {
	cmd := mustParse(t, valid(`"userIds":["user_b","user_a","user_b","`+caller+`"],"activeUntil":"2024-01-15T12:30:00.123456+02:00","description":null`))
	if want := []string{"user_b", "user_a", caller}; !reflect.DeepEqual(cmd.UserIDs, want) {
		t.Errorf("userIds = %v, want %v", cmd.UserIDs, want)
	}
	if cmd.ActiveUntil == nil || cmd.ActiveUntil.String() != "2024-01-15T10:30:00.123Z" {
		t.Errorf("activeUntil = %v, want 2024-01-15T10:30:00.123Z", cmd.ActiveUntil)
	}
	if cmd.Description != nil {
		t.Errorf("description = %q, want nil", *cmd.Description)
	}
	cmd = mustParse(t, valid(`"userIds":["user_b"]`))
	if want := []string{"user_b", caller}; !reflect.DeepEqual(cmd.UserIDs, want) {
		t.Errorf("userIds = %v, want the caller appended: %v", cmd.UserIDs, want)
	}
}

func TestParseCreateIgnoresUnknownMembersAndReadsEscapedKeys(t *testing.T) {
	cmd := mustParse(t, `{"n\u0061me":"Escaped","leadProviderCriteria":[],"Name":"other case","extra":[1,{"x":2}]}`)
	if cmd.Name != "Escaped" {
		t.Fatalf("name = %q, want the member spelled with an escape", cmd.Name)
	}
}

func TestParseCreateDoesNotAliasTheBody(t *testing.T) {
	body := []byte(valid(`"crmFilters":{"query":{"k":"v"}}`))
	cmd, err := ParseCreate(body, caller)
	if err != nil {
		t.Fatal(err)
	}
	for i := range body {
		body[i] = ' '
	}
	if string(cmd.CRMFilters.Query) != `{"k":"v"}` || string(cmd.LeadProviderCriteria[0].Filters) != `{}` || cmd.Name != "N" {
		t.Fatalf("command changed with the body: %+v", cmd)
	}
}

func TestCreateHashIdentifiesTheContent(t *testing.T) {
	a := mustParse(t, `{"name":"N","leadProviderCriteria":[{"provider":"baseProvider","filters":{"a":1}}]}`)
	b := mustParse(t, "{ \"leadProviderCriteria\" : [ { \"filters\" : { \"a\" : 1 } , \"provider\":\"baseProvider\"} ] ,\n \"name\" : \" N \", \"ignored\": 1 }")
	c := mustParse(t, `{"name":"N","leadProviderCriteria":[{"provider":"baseProvider","filters":{"a":2}}]}`)
	if HashCreate(a) != HashCreate(b) {
		t.Errorf("same content, different hashes")
	}
	if HashCreate(a) == HashCreate(c) {
		t.Errorf("different filters, same hash")
	}
}

func TestJSONInteger(t *testing.T) {
	for _, tc := range []struct {
		lit   string
		n     int64
		whole bool
	}{
		{"0", 0, true}, {"-0", 0, true}, {"10", 10, true}, {"-7", -7, true}, {"2.0", 2, true}, {"2.50", 0, false},
		{"10.5", 0, false}, {"1e3", 1000, true}, {"1E+3", 1000, true}, {"15e-1", 0, false}, {"150e-1", 15, true},
		{"0.0e5", 0, true}, {"1.0000000000000000001", 0, false}, {"1e-999999999", 0, false},
		{"123456789012345678901234567890", math.MaxInt64, true}, {"-1e999999999", math.MinInt64, true},
		{"9223372036854775807", math.MaxInt64, true}, {"1000", 1000, true}, {"0.001e3", 1, true},
	} {
		n, whole := jsonInteger([]byte(tc.lit))
		if n != tc.n || whole != tc.whole {
			t.Errorf("jsonInteger(%s) = %d, %v; want %d, %v", tc.lit, n, whole, tc.n, tc.whole)
		}
	}
}
