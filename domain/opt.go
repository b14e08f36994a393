package domain

import (
	"bytes"
	"encoding/json"
)

// Opt is a JSON field with three states: absent (Set false), null (Set and
// Null), or a value. Use it with the `omitzero` tag option so that an absent
// field stays absent on output: "keys not sent are not invented".
type Opt[T any] struct {
	Set  bool
	Null bool
	V    T
}

// Some returns a set, non-null Opt.
func Some[T any](v T) Opt[T] { return Opt[T]{Set: true, V: v} }

// Null returns a set, null Opt.
func Null[T any]() Opt[T] { return Opt[T]{Set: true, Null: true} }

// IsZero reports an absent field (for `omitzero`).
func (o Opt[T]) IsZero() bool { return !o.Set }

// Ptr returns nil for absent or null, else a pointer to the value.
func (o Opt[T]) Ptr() *T {
	if !o.Set || o.Null {
		return nil
	}
	v := o.V
	return &v
}

// MarshalJSON writes null or the value.
func (o Opt[T]) MarshalJSON() ([]byte, error) {
	if o.Null || !o.Set {
		return []byte("null"), nil
	}
	return json.Marshal(o.V)
}

// UnmarshalJSON marks the field set, and null when the JSON is null.
func (o *Opt[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		o.Null = true
		var zero T
		o.V = zero
		return nil
	}
	o.Null = false
	return json.Unmarshal(b, &o.V)
}
