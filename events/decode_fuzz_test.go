package events_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/projections/rebuild/historytest"
)

// fuzzTypes are the event types FuzzDecode picks from: the three this code
// knows and one it does not.
var fuzzTypes = []string{events.TypeICPCreated, events.TypeICPUpdated, events.TypeICPDeleted, "ICPArchived"}

// FuzzDecode feeds any bytes to the payload decoders of every event type and
// schema version, as a bus message or another writer of the store could
// (go test -fuzz FuzzDecode ./events; the seeds run with go test). Whatever
// the input: no panic; an error says either ErrUnknownVersion (a newer
// release, retried) or ErrCorrupt (never readable, dead-lettered), and the
// first only for a type or version this code does not know; a payload that
// decodes is one a release could have written (it names its ICP).
func FuzzDecode(f *testing.F) {
	p, err := historytest.Created("0b6f7d2e-8c1a-4c2e-9d3f-3f5a1e2b4c6d", "org_a", "user_1", 1)
	if err != nil {
		f.Fatal(err)
	}
	seeds := []string{
		string(p.Data),
		`{"id":"0b6f7d2e-8c1a-4c2e-9d3f-3f5a1e2b4c6d","updatedAt":"2024-01-01T00:00:00Z","updatedBy":"user_1","changes":{"name":"x","description":null}}`,
		`{"id":"0b6f7d2e-8c1a-4c2e-9d3f-3f5a1e2b4c6d","updatedAt":"2024-01-01T00:00:00Z","changes":{"name":null}}`,
		`{"id":"0b6f7d2e-8c1a-4c2e-9d3f-3f5a1e2b4c6d","deletedAt":"2024-01-01T00:00:00Z","deletedBy":"user_1"}`,
		`{"id":"","deletedAt":"2024-01-01T00:00:00Z"}`,
		"", "null", "[]", "{}", `"x"`, "{\"id\":\"\xff\"}",
		// Deep nesting and long numbers: the decoder's work stays linear.
		`{"icp":{"leadProviderCriteria":[{"filters":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}]}}`,
		`{"icp":{"leadsPerList":` + strings.Repeat("9", 5000) + `}}`,
	}
	for _, s := range seeds {
		for typ := range fuzzTypes {
			for _, v := range []int{-1, 0, 1, 2} {
				f.Add(uint8(typ), v, []byte(s))
			}
		}
	}
	f.Fuzz(func(t *testing.T, typ uint8, version int, data []byte) {
		name := fuzzTypes[int(typ)%len(fuzzTypes)]
		got, err := events.Decode(name, version, data)
		known, isKnown := events.CurrentSchema[name]
		unknown := !isKnown || version > known
		switch {
		case err != nil && errors.Is(err, events.ErrUnknownVersion) == errors.Is(err, events.ErrCorrupt):
			t.Fatalf("%s v%d: error %v is neither or both of unknown version and corrupt", name, version, err)
		case unknown && !errors.Is(err, events.ErrUnknownVersion):
			t.Fatalf("%s v%d, which this code does not know: %v, want ErrUnknownVersion", name, version, err)
		case !unknown && errors.Is(err, events.ErrUnknownVersion):
			t.Fatalf("%s v%d, which this code knows: %v, want decoded or ErrCorrupt", name, version, err)
		case err != nil:
			return
		}
		var id string
		switch pl := got.(type) {
		case domain.ICPCreatedV1:
			id = pl.ICP.ID
			if name != events.TypeICPCreated || pl.Tenant == "" {
				t.Fatalf("%s decoded as %#v", name, pl)
			}
		case domain.ICPUpdatedV1:
			id = pl.ID
			if name != events.TypeICPUpdated {
				t.Fatalf("%s decoded as %#v", name, pl)
			}
		case domain.ICPDeletedV1:
			id = pl.ID
			if name != events.TypeICPDeleted {
				t.Fatalf("%s decoded as %#v", name, pl)
			}
		default:
			t.Fatalf("%s v%d decoded as %T", name, version, got)
		}
		if id == "" {
			t.Fatalf("%s v%d decoded without an ICP id: %#v", name, version, got)
		}
		// The projector's decoding reaches the same verdict.
		if _, _, err := events.DecodeRecordedDoc(events.Recorded{Type: name, SchemaVersion: version, Data: data}); err != nil {
			t.Fatalf("%s v%d: Decode accepts, DecodeRecordedDoc says %v", name, version, err)
		}
	})
}
