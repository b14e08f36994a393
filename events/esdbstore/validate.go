package esdbstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/icpservice/icp/events"
)

// encodeAppend checks an append's arguments, reporting every problem at
// once, and converts its events for the client.
//
// Refused: an empty or non-UTF-8 stream name, or one starting with "$" (the
// server's system streams); no events; an id that is not a lowercase UUID or
// is the nil UUID (the client would replace it with a random one, and a
// retry would no longer be recognised); an empty type or one starting with
// "$"; a schema version below 1; data that is not JSON (it is stored as
// application/json); metadata that is neither empty nor JSON. The server's
// own limits (the append size, 1 MiB by default) are left to the server.
func encodeAppend(stream string, evs []events.Proposed) ([]esdb.EventData, error) {
	var errs []error
	switch {
	case stream == "":
		errs = append(errs, errors.New("empty stream name"))
	case !utf8.ValidString(stream):
		errs = append(errs, errors.New("stream name is not valid UTF-8"))
	case strings.HasPrefix(stream, "$"):
		errs = append(errs, errors.New("stream names starting with $ are the server's system streams"))
	}
	if len(evs) == 0 {
		errs = append(errs, errors.New("no events"))
	}
	out := make([]esdb.EventData, len(evs))
	for i, e := range evs {
		id, err := uuid.Parse(e.ID)
		if err != nil || id.String() != e.ID || id == uuid.Nil {
			errs = append(errs, fmt.Errorf("event %d: id %q is not a lowercase non-nil UUID", i, e.ID))
		}
		switch {
		case e.Type == "":
			errs = append(errs, fmt.Errorf("event %d: empty type", i))
		case strings.HasPrefix(e.Type, "$"):
			errs = append(errs, fmt.Errorf("event %d: types starting with $ are the server's", i))
		}
		if e.SchemaVersion < 1 {
			errs = append(errs, fmt.Errorf("event %d: schema version %d, want >= 1", i, e.SchemaVersion))
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
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w to %q: %w", ErrInvalidAppend, stream, errors.Join(errs...))
	}
	return out, nil
}
