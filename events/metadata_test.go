package events_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/icpservice/icp/events"
)

func sameAsJSONMarshal(t *testing.T, m events.Metadata) {
	t.Helper()
	want, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Encode(); string(got) != string(want) {
		t.Fatalf("Encode of %#v:\n got %s\nwant %s", m, got, want)
	}
}

// TestMetadataEncodeIsJSONMarshal: Encode writes what json.Marshal writes,
// for every field set (a field added to Metadata and not to Encode fails
// here), every field empty, and strings json.Marshal escapes.
func TestMetadataEncodeIsJSONMarshal(t *testing.T) {
	var all events.Metadata
	v := reflect.ValueOf(&all).Elem()
	for i := range v.NumField() {
		v.Field(i).SetString("v" + v.Type().Field(i).Name)
	}
	sameAsJSONMarshal(t, all)
	sameAsJSONMarshal(t, events.Metadata{})
	for _, s := range []string{`<a&b>`, `quote " and \ backslash`, "tab\t nl\n nul\x00", "é ☃ 😀", "\u2028\u2029", "bad \xff utf-8",
		strings.Repeat("long ", 100)} {
		sameAsJSONMarshal(t, events.Metadata{Tenant: s, UserID: s, CommandHash: s, IdempotencyKey: s, CorrelationID: s, TraceParent: s, TraceState: s})
		sameAsJSONMarshal(t, events.Metadata{Tenant: "t", UserID: "u", IdempotencyKey: s})
	}
}

func FuzzMetadataEncode(f *testing.F) {
	f.Add("org_1", "user_a", "sha256:00", "key <1>", "c-1", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "a=b")
	f.Add("", "", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, tenant, user, hash, key, corr, tp, ts string) {
		sameAsJSONMarshal(t, events.Metadata{Tenant: tenant, UserID: user, CommandHash: hash, IdempotencyKey: key,
			CorrelationID: corr, TraceParent: tp, TraceState: ts})
	})
}
