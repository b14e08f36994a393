package events

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// ErrNotOurs is wrapped by the error of IdentityFromHeaders for a bus
// message that does not carry this service's event identity: no or
// malformed CloudEvents headers, or another ce-source. Such a message was
// published by someone else (a stray); the relay passes over it.
var ErrNotOurs = errors.New("not an event of this service")

// Identity is what a bus message says about the stored event it carries:
// enough to find that event in the store and check it is the same one.
type Identity struct {
	// ID is the event id (ce-id), a lowercase UUID.
	ID string
	// Position is the event's global position in the store (ce-icpposition), >= 1.
	Position uint64
	// Version is the event's version in its ICP stream (ce-icpversion), >= 1.
	Version uint64
	// StreamID is the event's ICP stream (icp-stream, or built from
	// ce-subject when icp-stream is absent).
	StreamID string
	// Type and SchemaVersion come from ce-type (icp.<Type>.v<N>).
	Type          string
	SchemaVersion int
}

// maxHeaderValue bounds the header values IdentityFromHeaders looks at: a
// ce-type or number longer than this is not one this service writes, and
// the parsing stays linear in a bounded size whatever a stray carries.
const maxHeaderValue = 256

// IdentityFromHeaders reads the identity of this service's event from a bus
// message's headers. It requires ce-specversion 1.0, ce-source
// CloudEventsSource, ce-id a lowercase non-nil UUID, ce-type
// icp.<Type>.v<N> with N >= 1 and a Type that is one subject token run
// (no spaces, wildcards or empty tokens), an ICP stream in icp-stream (or
// an ICP id in ce-subject), and ce-icpposition and
// ce-icpversion decimal integers >= 1 without sign or leading zeros. Any
// other message is a stray: the error wraps ErrNotOurs and says which
// header failed. It never reads the body.
func IdentityFromHeaders(get func(string) string) (Identity, error) {
	var id Identity
	bad := func(h, v string) (Identity, error) {
		if len(v) > 64 {
			v = v[:64] + "…"
		}
		return Identity{}, fmt.Errorf("%w: %s %q", ErrNotOurs, h, v)
	}
	if v := get(HeaderSpecVersion); v != "1.0" {
		return bad(HeaderSpecVersion, v)
	}
	if v := get(HeaderSource); v != CloudEventsSource {
		return bad(HeaderSource, v)
	}
	v := get(HeaderID)
	u, err := uuid.Parse(v)
	if err != nil || u == uuid.Nil || u.String() != v {
		return bad(HeaderID, v)
	}
	id.ID = v
	ceType := get(HeaderType)
	if len(ceType) > maxHeaderValue || !strings.HasPrefix(ceType, "icp.") {
		return bad(HeaderType, ceType)
	}
	i := strings.LastIndex(ceType, ".v")
	if i < len("icp.") {
		return bad(HeaderType, ceType)
	}
	typ, ver := ceType[len("icp."):i], ceType[i+len(".v"):]
	n, ok := positive(ver)
	if !ok || n > 1<<31-1 || !subjectTokens(typ) {
		return bad(HeaderType, ceType)
	}
	id.Type, id.SchemaVersion = typ, int(n)
	if id.Position, ok = positive(get(HeaderPosition)); !ok {
		return bad(HeaderPosition, get(HeaderPosition))
	}
	if id.Version, ok = positive(get(HeaderICPVersion)); !ok {
		return bad(HeaderICPVersion, get(HeaderICPVersion))
	}
	id.StreamID = get(HeaderStream)
	if id.StreamID == "" && get(HeaderSubject) != "" {
		id.StreamID = StreamID(get(HeaderSubject))
	}
	if _, ok := ICPIDFromStream(id.StreamID); !ok || len(id.StreamID) > maxHeaderValue {
		return bad(HeaderStream, id.StreamID)
	}
	return id, nil
}

// positive parses a decimal integer >= 1 written the way
// strconv.FormatUint writes it (no sign, no leading zero).
func positive(s string) (uint64, bool) {
	if s == "" || len(s) > 20 || s[0] == '0' {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// subjectTokens reports whether s can follow BusSubjectPrefix in a subject:
// dot-separated non-empty tokens of printable ASCII without wildcards.
func subjectTokens(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '*' || c == '>' {
			return false
		}
	}
	return true
}
