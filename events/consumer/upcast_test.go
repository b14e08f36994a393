package consumer

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
)

// A synthetic "v0" of ICPCreated, older than any real version, in which the
// creator was called "owner" and the ICP carried no leadsPerList: the
// upcaster hook turns it into v1 before decoding, so a handler only ever
// sees ICPCreatedV1.
func TestOlderSchemaVersionsAreUpcastBeforeDecoding(t *testing.T) {
	v0to1 := func(data []byte) ([]byte, error) {
		var v0 map[string]json.RawMessage
		if err := json.Unmarshal(data, &v0); err != nil {
			return nil, err
		}
		var icp map[string]any
		if err := json.Unmarshal(v0["icp"], &icp); err != nil {
			return nil, err
		}
		icp["leadsPerList"] = 10
		return json.Marshal(map[string]any{"icp": icp, "tenant": v0["tenant"], "createdBy": v0["owner"]})
	}
	d := decoder{up: map[upcastKey]upcaster{{events.TypeICPCreated, 0}: v0to1}, current: events.CurrentSchema}
	id := uuid.NewString()
	rec := events.Recorded{Type: events.TypeICPCreated, SchemaVersion: 0, StreamID: events.StreamID(id),
		Data: []byte(`{"icp":{"id":"` + id + `","name":"Old","createdAt":"2024-01-01T00:00:00Z","userIds":["user_1"]},"tenant":"org_1","owner":"user_1"}`)}
	got, err := d.decode(rec)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := got.(domain.ICPCreatedV1)
	if !ok || p.CreatedBy != "user_1" || p.ICP.LeadsPerList != 10 || p.ICP.Name != "Old" || p.Tenant != "org_1" {
		t.Fatalf("upcast payload %#v", got)
	}

	// Without an upcaster for that version, the event can never be read.
	if _, err := newDecoder().decode(rec); !errors.Is(err, events.ErrCorrupt) {
		t.Errorf("v0 without an upcaster: %v, want ErrCorrupt", err)
	}
	// An upcaster that fails makes the event corrupt, not retried.
	bad := decoder{up: map[upcastKey]upcaster{{events.TypeICPCreated, 0}: func([]byte) ([]byte, error) { return nil, errors.New("no") }}, current: events.CurrentSchema}
	if _, err := bad.decode(rec); !errors.Is(err, events.ErrCorrupt) {
		t.Errorf("failing upcaster: %v, want ErrCorrupt", err)
	}
	// A newer version is not upcast (it cannot be) but retried later.
	rec.SchemaVersion = 2
	if _, err := d.decode(rec); !errors.Is(err, events.ErrUnknownVersion) {
		t.Errorf("v2: %v, want ErrUnknownVersion", err)
	}
	// The current version passes through untouched.
	rec.SchemaVersion, rec.Data = 1, []byte(`{"icp":{"id":"`+id+`","name":"New","createdAt":"2024-01-01T00:00:00Z"},"tenant":"org_1","createdBy":"user_2"}`)
	if got, err := d.decode(rec); err != nil || got.(domain.ICPCreatedV1).CreatedBy != "user_2" {
		t.Errorf("v1: %#v, %v", got, err)
	}
}
