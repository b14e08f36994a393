package events_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icpservice/icp/events"
)

func recordedForHeaders() events.Recorded {
	return events.Recorded{
		ID: "0192f0c4-6a3b-7c4d-8e5f-0123456789ab", Type: events.TypeICPUpdated, SchemaVersion: 2,
		StreamID: events.StreamID("0192f0c4-0000-7000-8000-000000000001"), Version: 7, Position: 123456,
		Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Metadata: []byte(`{"tenant":"t"}`),
	}
}

func TestIdentityOfAPublishedEventIsTheStoredEvent(t *testing.T) {
	r := recordedForHeaders()
	h := events.Headers(r)
	id, err := events.IdentityFromHeaders(func(k string) string { return h[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := events.Identity{ID: r.ID, Position: r.Position, Version: r.Version, StreamID: r.StreamID, Type: r.Type, SchemaVersion: r.SchemaVersion}
	if id != want {
		t.Fatalf("identity %+v, want %+v", id, want)
	}
}

func TestStrayHeadersAreNotOurs(t *testing.T) {
	for name, change := range map[string]func(h map[string]string){
		"no headers":        func(h map[string]string) { clear(h) },
		"other source":      func(h map[string]string) { h[events.HeaderSource] = "/other-service" },
		"no source":         func(h map[string]string) { delete(h, events.HeaderSource) },
		"spec version":      func(h map[string]string) { h[events.HeaderSpecVersion] = "0.3" },
		"id not a uuid":     func(h map[string]string) { h[events.HeaderID] = "evt-1" },
		"id upper case":     func(h map[string]string) { h[events.HeaderID] = strings.ToUpper(h[events.HeaderID]) },
		"nil id":            func(h map[string]string) { h[events.HeaderID] = "00000000-0000-0000-0000-000000000000" },
		"type prefix":       func(h map[string]string) { h[events.HeaderType] = "com.example.Foo.v1" },
		"type no version":   func(h map[string]string) { h[events.HeaderType] = "icp.ICPCreated" },
		"type version zero": func(h map[string]string) { h[events.HeaderType] = "icp.ICPCreated.v0" },
		"type wildcard":     func(h map[string]string) { h[events.HeaderType] = "icp.ICP>.v1" },
		"type empty token":  func(h map[string]string) { h[events.HeaderType] = "icp..v1" },
		"position zero":     func(h map[string]string) { h[events.HeaderPosition] = "0" },
		"position signed":   func(h map[string]string) { h[events.HeaderPosition] = "+5" },
		"position leading0": func(h map[string]string) { h[events.HeaderPosition] = "05" },
		"position overflow": func(h map[string]string) { h[events.HeaderPosition] = "18446744073709551616" },
		"no position":       func(h map[string]string) { delete(h, events.HeaderPosition) },
		"version zero":      func(h map[string]string) { h[events.HeaderICPVersion] = "0" },
		"version text":      func(h map[string]string) { h[events.HeaderICPVersion] = "seven" },
		"not an icp stream": func(h map[string]string) { h[events.HeaderStream] = "orders-1" },
		"no stream at all":  func(h map[string]string) { delete(h, events.HeaderStream); delete(h, events.HeaderSubject) },
	} {
		t.Run(name, func(t *testing.T) {
			h := events.Headers(recordedForHeaders())
			change(h)
			_, err := events.IdentityFromHeaders(func(k string) string { return h[k] })
			if !errors.Is(err, events.ErrNotOurs) {
				t.Fatalf("err %v, want ErrNotOurs", err)
			}
		})
	}
}

// FuzzIdentityFromHeaders checks that no header values make the parser
// panic, that it accepts only what it documents, and that an accepted
// identity written back as headers reads the same.
func FuzzIdentityFromHeaders(f *testing.F) {
	h := events.Headers(recordedForHeaders())
	f.Add(h[events.HeaderSpecVersion], h[events.HeaderSource], h[events.HeaderID], h[events.HeaderType], h[events.HeaderPosition], h[events.HeaderICPVersion], h[events.HeaderStream], "")
	f.Add("1.0", "/icp-service", "0192f0c4-6a3b-7c4d-8e5f-0123456789ab", "icp.a.b.v1", "1", "1", "", "x")
	f.Add("1.0", "/icp-service", "0192f0c4-6a3b-7c4d-8e5f-0123456789ab", "icp.v1.v2", "18446744073709551615", "1", "icp-", "")
	f.Add("", "", "", "", "", "", "", "")
	f.Add("1.0", "/icp-service", "{0192f0c4-6a3b-7c4d-8e5f-0123456789ab}", "icp.X.v-1", "-1", "00", "icp-a", "")
	f.Add("1.0", "/icp-service", "urn:uuid:0192f0c4-6a3b-7c4d-8e5f-0123456789ab", "icp..v", "1e3", " 1", "", "")
	f.Fuzz(func(t *testing.T, spec, source, id, ceType, pos, ver, stream, subject string) {
		in := map[string]string{
			events.HeaderSpecVersion: spec, events.HeaderSource: source, events.HeaderID: id,
			events.HeaderType: ceType, events.HeaderPosition: pos, events.HeaderICPVersion: ver,
			events.HeaderStream: stream, events.HeaderSubject: subject,
		}
		got, err := events.IdentityFromHeaders(func(k string) string { return in[k] })
		if err != nil {
			if !errors.Is(err, events.ErrNotOurs) {
				t.Fatalf("error %v does not wrap ErrNotOurs", err)
			}
			return
		}
		if got.Position == 0 || got.Version == 0 || got.SchemaVersion < 1 || got.ID != id {
			t.Fatalf("accepted %+v from %q", got, in)
		}
		if strconv.FormatUint(got.Position, 10) != pos || strconv.FormatUint(got.Version, 10) != ver {
			t.Fatalf("numbers %d/%d from %q/%q are not written back the same", got.Position, got.Version, pos, ver)
		}
		if events.CloudEventsType(got.Type, got.SchemaVersion) != ceType {
			t.Fatalf("ce-type %q read as %q v%d", ceType, got.Type, got.SchemaVersion)
		}
		if _, ok := events.ICPIDFromStream(got.StreamID); !ok || (stream != "" && got.StreamID != stream) {
			t.Fatalf("stream %q accepted from icp-stream %q, ce-subject %q", got.StreamID, stream, subject)
		}
		if strings.ContainsAny(events.Subject(got.Type), " *>\r\n\t") {
			t.Fatalf("type %q makes no subject", got.Type)
		}
	})
}
