package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/icpservice/icp/domain"
)

// ErrUnknownVersion means the event's type or schema version is newer than
// this code knows: a newer release wrote it. It is not corrupt; retry it
// later, once this code is upgraded. Never dead-letter it.
var ErrUnknownVersion = errors.New("unknown event type or schema version")

// ErrCorrupt means the payload can never be decoded by any release: dead-letter it.
var ErrCorrupt = errors.New("corrupt event payload")

// CurrentSchema is the schema version this code writes for each event type.
var CurrentSchema = map[string]int{
	TypeICPCreated: 1,
	TypeICPUpdated: 1,
	TypeICPDeleted: 1,
}

// Encode builds a Proposed event of the current schema version for payload,
// which must be one of the domain.ICP*V1 payload types.
func Encode(id string, payload any, meta Metadata) (Proposed, error) {
	var typ string
	switch payload.(type) {
	case domain.ICPCreatedV1, *domain.ICPCreatedV1:
		typ = TypeICPCreated
	case domain.ICPUpdatedV1, *domain.ICPUpdatedV1:
		typ = TypeICPUpdated
	case domain.ICPDeletedV1, *domain.ICPDeletedV1:
		typ = TypeICPDeleted
	default:
		return Proposed{}, fmt.Errorf("events: cannot encode %T", payload)
	}
	data, err := MarshalJSON(payload)
	if err != nil {
		return Proposed{}, err
	}
	return Proposed{ID: id, Type: typ, SchemaVersion: CurrentSchema[typ], Data: data, Metadata: meta.Encode()}, nil
}

// EncodeCreated is Encode for a create, which also returns the bytes of the
// payload's "icp" member: MarshalJSON(p.ICP), the document the read model
// will hold and a read will answer (see ParseCanonicalCreated). The event is
// byte for byte the one Encode makes (TestEncodeCreatedIsEncode).
func EncodeCreated(id string, p domain.ICPCreatedV1, meta Metadata) (ev Proposed, icp []byte, err error) {
	bp := encodeBufs.Get().(*[]byte)
	defer putEncodeBuf(bp)
	const open = `{"icp":`
	b := append((*bp)[:0], open...)
	if b, err = appendICP(b, &p.ICP); err != nil {
		return Proposed{}, nil, err
	}
	end := len(b)
	b = append(b, `,"tenant":`...)
	b = appendString(b, p.Tenant, false)
	b = append(b, `,"createdBy":`...)
	b = appendString(b, p.CreatedBy, false)
	b = append(b, '}')
	*bp = b
	data := bytes.Clone(b)
	return Proposed{ID: id, Type: TypeICPCreated, SchemaVersion: CurrentSchema[TypeICPCreated], Data: data, Metadata: meta.Encode()},
		data[len(open):end:end], nil
}

// Decode returns the event's payload as domain.ICPCreatedV1, ICPUpdatedV1 or
// ICPDeletedV1. Errors wrap ErrUnknownVersion (retry later) or ErrCorrupt
// (dead-letter), so callers can tell the two apart with errors.Is.
func Decode(typ string, schemaVersion int, data []byte) (any, error) {
	known, ok := CurrentSchema[typ]
	if !ok {
		return nil, fmt.Errorf("%w: type %q", ErrUnknownVersion, typ)
	}
	if schemaVersion > known {
		return nil, fmt.Errorf("%w: %s v%d (this code knows up to v%d)", ErrUnknownVersion, typ, schemaVersion, known)
	}
	if schemaVersion < 1 {
		return nil, fmt.Errorf("%w: %s with schema version %d", ErrCorrupt, typ, schemaVersion)
	}
	var (
		p   any
		err error
	)
	switch typ {
	case TypeICPCreated:
		var v domain.ICPCreatedV1
		err = unmarshalPayload(data, &v)
		if err == nil {
			err = checkCreated(v)
		}
		p = v
	case TypeICPUpdated:
		var v domain.ICPUpdatedV1
		err = unmarshalPayload(data, &v)
		if err == nil {
			err = checkUpdated(v)
		}
		p = v
	case TypeICPDeleted:
		var v domain.ICPDeletedV1
		err = unmarshalPayload(data, &v)
		if err == nil && (v.ID == "" || v.DeletedAt.IsZero()) {
			err = errors.New("missing id or deletedAt")
		}
		p = v
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s v%d: %v", ErrCorrupt, typ, schemaVersion, err)
	}
	return p, nil
}

// DecodeRecorded decodes a recorded event's payload (see Decode).
func DecodeRecorded(r Recorded) (any, error) { return Decode(r.Type, r.SchemaVersion, r.Data) }

// unmarshalPayload decodes data, which must be exactly one JSON value:
// json.Unmarshal refuses anything after it. (A json.Decoder, used before,
// copies data into its buffer first and cost about 40% more CPU per
// payload.)
func unmarshalPayload(data []byte, v any) error {
	return json.Unmarshal(data, v)
}

// MarshalJSON encodes v without HTML escaping, so free-form JSON held as
// json.RawMessage keeps its characters ('<', '>', '&' stay as they are).
// The result is the caller's: a fresh slice of exactly its length.
func MarshalJSON(v any) ([]byte, error) {
	switch icp := v.(type) {
	case domain.ICP:
		return marshalICP(&icp)
	case *domain.ICP:
		if icp != nil {
			return marshalICP(icp)
		}
	}
	bp := encodeBufs.Get().(*[]byte)
	defer putEncodeBuf(bp)
	buf := bytes.NewBuffer((*bp)[:0])
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(v)
	*bp = buf.Bytes() // keep what the buffer grew to for the next call
	if err != nil {
		return nil, err
	}
	return bytes.Clone(bytes.TrimSuffix(*bp, []byte("\n"))), nil
}

func marshalICP(icp *domain.ICP) ([]byte, error) {
	bp := encodeBufs.Get().(*[]byte)
	defer putEncodeBuf(bp)
	b, err := appendICP((*bp)[:0], icp)
	if err != nil {
		return nil, err
	}
	*bp = b
	return bytes.Clone(b), nil
}

// encodeBufs holds the encoders' buffers between calls: growing a fresh
// buffer to an event's size on every call was the create path's largest
// source of garbage. Every result is copied out of them.
var encodeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// maxPooledEncodeBuf keeps a rare huge encoding from holding its buffer.
const maxPooledEncodeBuf = 64 << 10

func putEncodeBuf(b *[]byte) {
	if cap(*b) <= maxPooledEncodeBuf {
		encodeBufs.Put(b)
	}
}

// checkCreated refuses a create that no release could have written: one without
// icp.id, icp.createdAt or tenant.
func checkCreated(c domain.ICPCreatedV1) error {
	if c.ICP.ID == "" || c.Tenant == "" || c.ICP.CreatedAt.IsZero() {
		return errors.New("missing icp.id, icp.createdAt or tenant")
	}
	return nil
}

// checkUpdated refuses an update that no release could have written: one without
// id or updatedAt, or one that clears a field that cannot be cleared (only
// description, crmFilters and activeUntil can be null).
func checkUpdated(u domain.ICPUpdatedV1) error {
	if u.ID == "" || u.UpdatedAt.IsZero() {
		return errors.New("missing id or updatedAt")
	}
	c := u.Changes
	for name, null := range map[string]bool{
		"name":                 c.Name.Null,
		"leadProviderCriteria": c.LeadProviderCriteria.Null,
		"customFilterCriteria": c.CustomFilterCriteria.Null,
		"userIds":              c.UserIDs.Null,
		"leadsPerList":         c.LeadsPerList.Null,
	} {
		if null {
			return fmt.Errorf("changes.%s cannot be null", name)
		}
	}
	return nil
}
