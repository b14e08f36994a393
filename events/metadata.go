package events

import (
	"bytes"
	"encoding/json"
)

// Metadata travels with every event, in the store and on the bus.
//
// CommandHash is the hash of the canonical command that produced the event;
// for ICPCreated it is how an Idempotency-Key retry is told apart from a
// reuse of the key with another body.
type Metadata struct {
	Tenant         string `json:"tenant"`
	UserID         string `json:"userId"`
	CommandHash    string `json:"commandHash,omitempty"`
	IdempotencyKey string `json:"idempotencyKey,omitempty"`
	CorrelationID  string `json:"correlationId,omitempty"`
	TraceParent    string `json:"traceparent,omitempty"`
	TraceState     string `json:"tracestate,omitempty"`
}

// Encode returns the metadata's JSON form: byte for byte what json.Marshal
// writes for it (TestMetadataEncodeIsJSONMarshal, FuzzMetadataEncode).
// Written out here because every recorded event encodes its metadata, and
// the reflective encoder cost the create path more than the appends below
// (BenchmarkPrepareCreate).
func (m Metadata) Encode() []byte {
	var buf [256]byte
	b := append(buf[:0], `{"tenant":`...)
	b = appendString(b, m.Tenant, true)
	b = append(b, `,"userId":`...)
	b = appendString(b, m.UserID, true)
	b = appendOmitEmpty(b, `,"commandHash":`, m.CommandHash)
	b = appendOmitEmpty(b, `,"idempotencyKey":`, m.IdempotencyKey)
	b = appendOmitEmpty(b, `,"correlationId":`, m.CorrelationID)
	b = appendOmitEmpty(b, `,"traceparent":`, m.TraceParent)
	b = appendOmitEmpty(b, `,"tracestate":`, m.TraceState)
	b = append(b, '}')
	return bytes.Clone(b)
}

// appendOmitEmpty writes a string member tagged omitempty as json.Marshal
// does: nothing when s is empty, else key (with its comma and colon) and s,
// HTML characters escaped.
func appendOmitEmpty(dst []byte, key, s string) []byte {
	if s == "" {
		return dst
	}
	return appendString(append(dst, key...), s, true)
}

// DecodeMetadata reads metadata written by Encode. Unknown keys are ignored so
// that older readers accept metadata from newer writers.
func DecodeMetadata(b []byte) (Metadata, error) {
	var m Metadata
	if len(b) == 0 {
		return m, nil
	}
	err := json.Unmarshal(b, &m)
	return m, err
}
