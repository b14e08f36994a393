package consumer

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
)

// FuzzUpcastDecode feeds any payload, at any schema version, through the
// consumer's decoding with a chain of upcasters in place (a synthetic v0 of
// ICPCreated, as TestOlderSchemaVersionsAreUpcastBeforeDecoding has it), the
// way a worker sees bus messages (go test -fuzz FuzzUpcastDecode
// ./events/consumer; the seeds run with go test). Whatever the input: no
// panic; an error is ErrUnknownVersion only for a version newer than this
// code knows, ErrCorrupt otherwise; a decoded payload names the ICP of the
// stream the message claims.
func FuzzUpcastDecode(f *testing.F) {
	v0to1 := func(data []byte) ([]byte, error) {
		var v0 map[string]json.RawMessage
		if err := json.Unmarshal(data, &v0); err != nil {
			return nil, err
		}
		return json.Marshal(map[string]json.RawMessage{"icp": v0["icp"], "tenant": v0["tenant"], "createdBy": v0["owner"]})
	}
	d := decoder{up: map[upcastKey]upcaster{{events.TypeICPCreated, 0}: v0to1}, current: events.CurrentSchema}
	const id = "0b6f7d2e-8c1a-4c2e-9d3f-3f5a1e2b4c6d"
	for _, s := range []string{
		`{"icp":{"id":"` + id + `","name":"Old","createdAt":"2024-01-01T00:00:00Z"},"tenant":"org_1","owner":"user_1"}`,
		`{"icp":{"id":"` + id + `","name":"New","createdAt":"2024-01-01T00:00:00Z"},"tenant":"org_1","createdBy":"user_1"}`,
		`{"icp":{"id":"another","createdAt":"2024-01-01T00:00:00Z"},"tenant":"org_1"}`,
		`{"icp":null}`, `{"icp":[]}`, "", "null", "{", "\xff",
	} {
		for _, v := range []int{-1, 0, 1, 2} {
			f.Add(v, []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, version int, data []byte) {
		rec := events.Recorded{ID: "e", Type: events.TypeICPCreated, SchemaVersion: version, Data: data, StreamID: events.StreamID(id)}
		got, err := d.decode(rec)
		newer := version > events.CurrentSchema[events.TypeICPCreated]
		switch {
		case newer != errors.Is(err, events.ErrUnknownVersion):
			t.Fatalf("v%d: %v; unknown version must mean exactly a newer one", version, err)
		case err != nil && !newer && !errors.Is(err, events.ErrCorrupt):
			t.Fatalf("v%d: %v, want ErrCorrupt", version, err)
		case err != nil:
			return
		}
		p, ok := got.(domain.ICPCreatedV1)
		if !ok || p.ICP.ID != id {
			t.Fatalf("v%d decoded as %#v, want an ICPCreatedV1 of %s", version, got, id)
		}
	})
}
