package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/esdbstore"
	"github.com/icpservice/icp/events/esdbstore/esdbtest"
	"github.com/icpservice/icp/events/sqlitestore"
	"github.com/icpservice/icp/platform/datadir"
	"github.com/icpservice/icp/projections/rebuild/historytest"
)

// exported is one line of icpctl events.
type exported struct {
	ID             string          `json:"id"`
	Type           string          `json:"type"`
	SchemaVersion  int             `json:"schemaVersion"`
	Stream         string          `json:"stream"`
	ICPID          string          `json:"icpId"`
	Version        uint64          `json:"version"`
	Position       uint64          `json:"position"`
	Time           time.Time       `json:"time"`
	Metadata       json.RawMessage `json:"metadata"`
	Payload        json.RawMessage `json:"payload"`
	PayloadBase64  string          `json:"payloadBase64"`
	MetadataBase64 string          `json:"metadataBase64"`
}

func parseLines(t *testing.T, out string) []exported {
	t.Helper()
	var evs []exported
	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		var e exported
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("line %d %q: %v", i+1, line, err)
		}
		evs = append(evs, e)
	}
	return evs
}

// checkExported fails unless got is exactly the recorded events want, in
// order, with metadata and payload byte for byte.
func checkExported(t *testing.T, got []exported, want []events.Recorded) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d events exported, want %d", len(got), len(want))
	}
	for i, r := range want {
		g := got[i]
		if g.ID != r.ID || g.Type != r.Type || g.SchemaVersion != r.SchemaVersion || g.Stream != r.StreamID ||
			g.ICPID != r.ICPID() || g.Version != r.Version || g.Position != r.Position || !g.Time.Equal(r.Time) {
			t.Fatalf("event %d: exported %+v, recorded %+v", i, g, r)
		}
		if json.Valid(r.Data) {
			if !bytes.Equal(g.Payload, r.Data) {
				t.Fatalf("event %d: payload %s, recorded %s", i, g.Payload, r.Data)
			}
		} else if b, err := base64.StdEncoding.DecodeString(g.PayloadBase64); err != nil || !bytes.Equal(b, r.Data) || string(g.Payload) != "null" {
			t.Fatalf("event %d: corrupt payload exported as %s / %q, recorded %q", i, g.Payload, g.PayloadBase64, r.Data)
		}
		if !bytes.Equal(g.Metadata, r.Metadata) {
			t.Fatalf("event %d: metadata %s, recorded %s", i, g.Metadata, r.Metadata)
		}
	}
}

func TestEventsExportsTheHistoryAsJSONLinesWithFilters(t *testing.T) {
	dir := t.TempDir()
	icps := seedStore(t, dir, historytest.Spec{ICPs: 40, UpdateEvery: 3, DeleteEvery: 5})
	st, err := sqlitestore.Open(context.Background(), filepath.Join(dir, datadir.EventsFile), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// A payload that is not JSON, and one with HTML characters and
	// insignificant spaces that must survive as stored.
	_, err = st.Append(context.Background(), events.StreamID(icps[1].ID), icps[1].Version, []events.Proposed{
		{ID: uuid.NewString(), Type: events.TypeICPUpdated, SchemaVersion: 1, Data: []byte(`{"id":`), Metadata: []byte(`{}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Append(context.Background(), events.StreamID(icps[2].ID), icps[2].Version, []events.Proposed{
		{ID: uuid.NewString(), Type: events.TypeICPUpdated, SchemaVersion: 1, Data: []byte(`{"id": "` + icps[2].ID + `", "changes": {"name": "<b>&</b>"}}`), Metadata: []byte(`{"tenant":"org_hist"}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	all := readAll(t, st)
	filter := func(keep func(events.Recorded) bool) []events.Recorded {
		var out []events.Recorded
		for _, r := range all {
			if keep(r) {
				out = append(out, r)
			}
		}
		return out
	}
	since, until := all[20].Time, all[60].Time
	for _, tc := range []struct {
		name string
		args []string
		want []events.Recorded
	}{
		{"everything", nil, all},
		{"one ICP", []string{"--icp", icps[3].ID}, filter(func(r events.Recorded) bool { return r.ICPID() == icps[3].ID })},
		{"one type", []string{"--type", "ICPDeleted"}, filter(func(r events.Recorded) bool { return r.Type == events.TypeICPDeleted })},
		{"positions", []string{"--from", "5", "--to", "17"}, filter(func(r events.Recorded) bool { return r.Position >= 5 && r.Position <= 17 })},
		{"times", []string{"--since", since.Format(time.RFC3339Nano), "--until", until.Format(time.RFC3339Nano)},
			filter(func(r events.Recorded) bool { return !r.Time.Before(since) && r.Time.Before(until) })},
		{"all at once", []string{"--icp", icps[0].ID, "--type", "ICPUpdated", "--from", "2"},
			filter(func(r events.Recorded) bool {
				return r.ICPID() == icps[0].ID && r.Type == events.TypeICPUpdated && r.Position >= 2
			})},
		{"nothing", []string{"--icp", uuid.NewString()}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := icpctl(t, append([]string{"events", "--data-dir", dir}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			checkExported(t, parseLines(t, out), tc.want)
		})
	}
}

func TestEventsRefusesInvalidFlags(t *testing.T) {
	dir := t.TempDir()
	seedStore(t, dir, historytest.Spec{ICPs: 1})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--icp", "not-an-id"}, "--icp"},
		{[]string{"--icp", strings.ToUpper(uuid.NewString())}, "lowercase UUID"},
		{[]string{"--type", "ICPRenamed"}, "ICPCreated"},
		{[]string{"--since", "yesterday"}, "RFC 3339"},
		{[]string{"--since", "2025-01-02T00:00:00Z", "--until", "2025-01-01T00:00:00Z"}, "not before"},
		{[]string{"--from", "9", "--to", "3"}, "--from 9 is after --to 3"},
		{[]string{"--follow", "--until", "2025-01-01T00:00:00Z"}, "--to"},
		{[]string{"--event-store", "http://x"}, "esdb://"},
	} {
		code, out, errOut := icpctl(t, append([]string{"events", "--data-dir", dir}, tc.args...)...)
		if code == 0 || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want an error mentioning %q", tc.args, code, out, errOut, tc.want)
		}
	}
	code, _, errOut := icpctl(t, "events", "--data-dir", t.TempDir())
	if code == 0 || !strings.Contains(errOut, "no event store at") {
		t.Errorf("empty data dir: exit %d, %q", code, errOut)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader in two
// goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// --follow streams events recorded by another process while icpd runs, and
// stops at --to.
func TestEventsFollowsARunningService(t *testing.T) {
	dir := t.TempDir()
	svc := startService(t, dir)
	client := svc.client()
	first, err := svc.create(client, "before")
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		// Positions 1..4: the create above, then three more.
		done <- run([]string{"events", "--data-dir", dir, "--follow", "--to", "4"}, &out, &errOut)
	}()
	waitFor(t, 10*time.Second, "the first event on stdout", func() bool { return strings.Contains(out.String(), first) })
	for i := range 3 {
		if _, err := svc.create(client, fmt.Sprintf("during %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("events --follow --to 4 did not end after position 4 was recorded")
	}
	st, err := sqlitestore.Open(context.Background(), filepath.Join(dir, datadir.EventsFile), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	checkExported(t, parseLines(t, out.String()), readAll(t, st))
}

// The same export from EventStoreDB (an in-process server speaking its gRPC
// protocol).
func TestEventsReadsEventStoreDB(t *testing.T) {
	srv := esdbtest.Start(t)
	ctx := context.Background()
	st, err := esdbstore.Open(ctx, srv.ConnString(), esdbstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := historytest.Write(ctx, st, historytest.Spec{ICPs: 15, UpdateEvery: 2, Writers: 4}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := icpctl(t, "events", "--data-dir", t.TempDir(), "--event-store", srv.ConnString())
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	checkExported(t, parseLines(t, out), readAll(t, st))
}
