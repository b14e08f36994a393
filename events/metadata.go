package events

import "encoding/json"

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

// Encode returns the metadata's JSON form.
func (m Metadata) Encode() []byte {
	b, err := json.Marshal(m)
	if err != nil { // cannot happen: only strings
		panic(err)
	}
	return b
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
