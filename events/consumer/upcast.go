package consumer

import (
	"fmt"

	"github.com/icpservice/icp/events"
)

// upcaster rewrites the JSON payload of one schema version of an event type
// into the JSON of the next version.
type upcaster func(data []byte) ([]byte, error)

// upcastKey names the version an upcaster starts from.
type upcastKey struct {
	typ  string
	from int
}

// upcasters is the one place where older schema versions are turned into the
// current one, so that handlers only ever see the current shape. Every event
// type is at version 1 today, so it is empty. When a type gets version N+1:
// add the payload type in events, raise events.CurrentSchema, publish its
// schema in events/schemas, register {type, N} here with a function that
// rewrites vN JSON into vN+1 JSON, and change the On* method's payload type.
// Chains apply in order (v1 to v2 to v3).
var upcasters = map[upcastKey]upcaster{}

// decoder turns a recorded event into its current payload.
type decoder struct {
	up      map[upcastKey]upcaster
	current map[string]int
}

func newDecoder() decoder { return decoder{up: upcasters, current: events.CurrentSchema} }

// decode upcasts rec's payload to the current version of its type and
// decodes it. Errors wrap events.ErrUnknownVersion (a newer release wrote
// it: retry later) or events.ErrCorrupt (no release can read it: dead-
// letter).
func (d decoder) decode(rec events.Recorded) (any, error) {
	data, v := rec.Data, rec.SchemaVersion
	if cur, known := d.current[rec.Type]; known {
		for v < cur {
			up, ok := d.up[upcastKey{rec.Type, v}]
			if !ok {
				return nil, fmt.Errorf("%w: %s v%d: no upcaster to v%d", events.ErrCorrupt, rec.Type, v, v+1)
			}
			next, err := up(data)
			if err != nil {
				return nil, fmt.Errorf("%w: upcasting %s v%d to v%d: %v", events.ErrCorrupt, rec.Type, v, v+1, err)
			}
			data, v = next, v+1
		}
	}
	payload, err := events.Decode(rec.Type, v, data)
	if err != nil {
		return nil, err
	}
	if err := checkPayloadID(rec, payload); err != nil {
		return nil, err
	}
	return payload, nil
}

// checkPayloadID refuses a payload that names another ICP than the stream it
// was recorded in.
func checkPayloadID(rec events.Recorded, payload any) error {
	if id := events.PayloadICPID(payload); id != rec.ICPID() {
		return fmt.Errorf("%w: payload names ICP %q in stream %s", events.ErrCorrupt, id, rec.StreamID)
	}
	return nil
}
