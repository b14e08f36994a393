package domain

import (
	"encoding/json"
	"fmt"
	"time"
)

// TimeLayout is the contract's timestamp form: UTC, millisecond precision, Z.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// Time is a timestamp that is written in TimeLayout and read from any RFC 3339
// time. It is always held in UTC, truncated to the millisecond, so that what is
// stored, published and served is the same instant to the byte.
type Time struct{ time.Time }

// NewTime normalises t to UTC milliseconds.
func NewTime(t time.Time) Time { return Time{t.UTC().Truncate(time.Millisecond)} }

// ParseTime reads an RFC 3339 time and normalises it.
func ParseTime(s string) (Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return Time{}, fmt.Errorf("not an RFC 3339 time: %q", s)
	}
	return NewTime(t), nil
}

// String returns the time in TimeLayout.
func (t Time) String() string { return t.UTC().Format(TimeLayout) }

// MarshalJSON writes the time in TimeLayout.
func (t Time) MarshalJSON() ([]byte, error) {
	return []byte(`"` + t.String() + `"`), nil
}

// UnmarshalJSON reads any RFC 3339 time.
func (t *Time) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("timestamp must be a string")
	}
	p, err := ParseTime(s)
	if err != nil {
		return err
	}
	*t = p
	return nil
}
