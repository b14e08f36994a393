package esdbstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/icpservice/icp/events"
)

// encodeAppend checks an append's arguments, reporting every problem at
// once, and converts its events for the client.
//
// Refused, beyond the port's rules (events.AppendProblems): a stream name
// starting with "$" (the server's system streams); the nil UUID as an id
// (the client would replace it with a random one, and a retry would no
// longer be recognised); a type starting with "$"; data that is not JSON (it
// is stored as application/json); metadata that is neither empty nor JSON.
// The server's own limits (the append size, 1 MiB by default) are left to
// the server.
func encodeAppend(stream string, evs []events.Proposed) ([]esdb.EventData, error) {
	errs := events.AppendProblems(stream, evs)
	if strings.HasPrefix(stream, "$") {
		errs = append(errs, errors.New("stream names starting with $ are the server's system streams"))
	}
	out := make([]esdb.EventData, len(evs))
	for i, e := range evs {
		id, err := uuid.Parse(e.ID)
		if err == nil && id == uuid.Nil {
			errs = append(errs, fmt.Errorf("event %d: id %q is not a lowercase non-nil UUID", i, e.ID))
		}
		if strings.HasPrefix(e.Type, "$") {
			errs = append(errs, fmt.Errorf("event %d: types starting with $ are the server's", i))
		}
		if !json.Valid(e.Data) {
			errs = append(errs, fmt.Errorf("event %d: data is not JSON", i))
		}
		if len(e.Metadata) > 0 && !json.Valid(e.Metadata) {
			errs = append(errs, fmt.Errorf("event %d: metadata is not JSON", i))
		}
		out[i] = esdb.EventData{
			EventID:     id,
			EventType:   e.Type,
			ContentType: esdb.ContentTypeJson,
			Data:        e.Data,
			Metadata:    encodeEnvelope(e.SchemaVersion, e.Metadata),
		}
	}
	if err := events.InvalidAppend("esdbstore", stream, errs); err != nil {
		return nil, err
	}
	return out, nil
}
