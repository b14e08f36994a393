package events_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/projections/rebuild/historytest"
)

// decodeCases are payloads at and around the edges of what events.Decode
// accepts: DecodeRecordedDoc must reach the same verdict on each.
func decodeCases(t testing.TB) []events.Recorded {
	t.Helper()
	p, err := historytest.Created("0b6f7d2e-8c1a-4c2e-9d3f-3f5a1e2b4c6d", "org_a", "user_1", 1)
	if err != nil {
		t.Fatal(err)
	}
	good := string(p.Data)
	created := func(data string) events.Recorded {
		return events.Recorded{Type: events.TypeICPCreated, SchemaVersion: 1, Data: []byte(data)}
	}
	cases := []events.Recorded{
		created(good),
		created(" \n" + good + " \t\n"),
		created(good + " x"),
		created(good + "]"), // the streaming decoder stops at the value's end
		created(good + "}"),
		created(good + good),
		created(good[:len(good)-1]),
		created(""),
		created("null"),
		created("[]"),
		created(`"text"`),
		created(strings.Replace(good, `"icp":`, `"ICP":`, 1)), // keys match case-insensitively
		created(strings.Replace(good, `"tenant":"org_a"`, `"tenant":"org_a","tenant":"org_b"`, 1)),
		created(strings.Replace(good, `"tenant":"org_a"`, `"tenant":""`, 1)),
		created(strings.Replace(good, `"tenant":"org_a"`, `"tenant":null`, 1)),
		created(strings.Replace(good, `"tenant":"org_a"`, `"tenant":7`, 1)),
		created(strings.Replace(good, `"tenant":"org_a"`, `"tenant":"org_\xff"`, 1)),
		created(strings.Replace(good, `"tenant":"org_a"`, `"tenant":"org_a","extra":{"x":[1,2]}`, 1)),
		created(strings.Replace(good, `"id":"0b6f`, `"id":"","x":"0b6f`, 1)),
		created(strings.Replace(good, `"createdAt":"`, `"createdAt":"not a time","x":"`, 1)),
		created(strings.Replace(good, `"createdAt":"`, `"createdAt":null,"x":"`, 1)),
		created(strings.Replace(good, `"leadsPerList":100`, `"leadsPerList":1e2`, 1)),
		created(strings.Replace(good, `"leadsPerList":100`, `"leadsPerList":99999999999999999999`, 1)),
		created(strings.Replace(good, `"userIds":[`, `"userIds":[null,`, 1)),
		{Type: events.TypeICPCreated, SchemaVersion: 0, Data: []byte(good)},
		{Type: events.TypeICPCreated, SchemaVersion: 2, Data: []byte(good)},
		{Type: events.TypeICPUpdated, SchemaVersion: 1, Data: []byte(good)},
		{Type: events.TypeICPDeleted, SchemaVersion: 1, Data: []byte(good)},
		{Type: "ICPArchived", SchemaVersion: 1, Data: []byte(good)},
	}
	if !strings.Contains(good, `"leadsPerList":100`) || !strings.Contains(good, `"userIds":[`) {
		t.Fatalf("the sample payload changed shape; the cases above no longer edit it: %s", good)
	}
	return cases
}

func TestDecodePayloadAgreesWithEventsDecode(t *testing.T) {
	for i, r := range decodeCases(t) {
		checkDecodeAgrees(t, i, r)
	}
}

// FuzzDecodePayload searches for a create payload on which the two
// decodings disagree (go test -fuzz FuzzDecodePayload ./events).
func FuzzDecodePayload(f *testing.F) {
	for _, r := range decodeCases(f) {
		if r.Type == events.TypeICPCreated && r.SchemaVersion == 1 {
			f.Add(r.Data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecodeAgrees(t, 0, events.Recorded{Type: events.TypeICPCreated, SchemaVersion: 1, Data: data})
	})
}

func checkDecodeAgrees(t *testing.T, i int, r events.Recorded) {
	t.Helper()
	got, doc, gotErr := events.DecodeRecordedDoc(r)
	want, wantErr := events.DecodeRecorded(r)
	if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
		t.Fatalf("case %d (%s v%d %q): error %v, events.Decode says %v", i, r.Type, r.SchemaVersion, r.Data, gotErr, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("case %d (%q): decoded\n%#v\nevents.Decode gives\n%#v", i, r.Data, got, want)
	}
	if doc != nil {
		enc, err := events.MarshalJSON(want.(domain.ICPCreatedV1).ICP)
		if err != nil || string(enc) != string(doc) {
			t.Fatalf("case %d (%q): doc %s, events.MarshalJSON gives %s (%v)", i, r.Data, doc, enc, err)
		}
	}
}
