package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/icpservice/icp/api"
	"github.com/icpservice/icp/commands"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/sqlitestore"
	"github.com/icpservice/icp/projections"
	"github.com/icpservice/icp/projections/sqlitemodel"
)

// listFixture is the API over a real SQLite read model filled directly with
// views (the documents are served as stored, so any JSON object will do),
// with rm as the read model the API reads through.
type listFixture struct {
	store   *sqlitestore.Store
	model   *sqlitemodel.Model
	handler http.Handler
}

func newListFixture(t testing.TB, wrap func(projections.ReadModel) projections.ReadModel) *listFixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, "events.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	m, err := sqlitemodel.Open(ctx, filepath.Join(dir, "read.db"), sqlitemodel.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	var rm projections.ReadModel = m
	if wrap != nil {
		rm = wrap(m)
	}
	h, err := api.New(api.Config{}, api.Deps{Commands: commands.NewHandler(st), ReadModel: rm, Verifier: testTokens})
	if err != nil {
		t.Fatal(err)
	}
	return &listFixture{store: st, model: m, handler: h}
}

// fill stores n ICPs of alice (tenant org_acme), each with a document of
// about size bytes, in position order, and returns the list's expected body.
func (f *listFixture) fill(t testing.TB, n, size int) []byte {
	t.Helper()
	want := []byte{'['}
	var batch []projections.View
	for i := range n {
		id := uuid.NewString()
		doc := fmt.Appendf(nil, `{"id":%q,"n":%d,"pad":"%s","userIds":["user_alice"]}`, id, i, strings.Repeat("x", max(0, size-80)))
		batch = append(batch, projections.View{ID: id, Tenant: "org_acme", Version: 1, Position: uint64(1 + i),
			UserIDs: []string{"user_alice"}, Doc: doc, CreatedBy: "user_alice"})
		if i > 0 {
			want = append(want, ',')
		}
		want = append(want, doc...)
		// The ICP's stream at the view's version: the API checks every view
		// it serves against the event store (withdrawn access).
		if _, err := f.store.Append(context.Background(), events.StreamID(id), events.NoStream, []events.Proposed{{
			ID: uuid.NewString(), Type: events.TypeICPCreated, SchemaVersion: 1, Data: []byte(`{}`), Metadata: []byte(`{}`),
		}}); err != nil {
			t.Fatal(err)
		}
		if len(batch) == 64 || i == n-1 {
			if _, err := f.model.Apply(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
			batch = nil
		}
	}
	return append(want, ']')
}

func listRequest(token string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, api.BasePath, nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}

// TestListStreamsTheSameBytesAcrossChunks: lists longer than a chunk, by
// count and by bytes, answer exactly the array a list read at once would.
func TestListStreamsTheSameBytesAcrossChunks(t *testing.T) {
	for _, c := range []struct {
		name    string
		n, size int
	}{
		{"many small ICPs", 600, 200},          // more views than a chunk holds
		{"large ICPs", 12, 100 << 10},          // more bytes than a chunk holds
		{"one ICP over a chunk", 1, 300 << 10}, // alone in its chunk
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newListFixture(t, nil)
			want := f.fill(t, c.n, c.size)
			w := httptest.NewRecorder()
			f.handler.ServeHTTP(w, listRequest("alice"))
			if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json; charset=utf-8" {
				t.Fatalf("list: %d %q", w.Code, w.Header().Get("Content-Type"))
			}
			if !bytes.Equal(w.Body.Bytes(), want) {
				t.Fatalf("list body of %d bytes differs from the %d bytes expected", w.Body.Len(), len(want))
			}
			var got []json.RawMessage
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || len(got) != c.n {
				t.Fatalf("list body holds %d ICPs (%v), want %d", len(got), err, c.n)
			}
			// bob is a member of none of them.
			w = httptest.NewRecorder()
			f.handler.ServeHTTP(w, listRequest("bob"))
			if w.Code != http.StatusOK || w.Body.String() != "[]" {
				t.Fatalf("bob's list: %d %s", w.Code, w.Body.String())
			}
		})
	}
}

// failingChunks is a read model whose ListChunk fails from its call number
// failAt on (1: the first), as a read model that goes away mid-list.
type failingChunks struct {
	projections.ReadModel
	failAt int32
	calls  atomic.Int32
}

func (f *failingChunks) ListChunk(ctx context.Context, tenant, user string, after uint64, maxViews, maxBytes int) ([]projections.View, error) {
	if f.calls.Add(1) >= f.failAt {
		return nil, fmt.Errorf("%w: the read model went away", projections.ErrUnavailable)
	}
	return f.ReadModel.ListChunk(ctx, tenant, user, after, maxViews, maxBytes)
}

// TestListFailingMidwayAbortsTheConnection: once the first chunk is out, a
// failure of the read model cuts the connection, so the client never takes
// a shorter list for the whole one; a failure before it is a normal 503.
func TestListFailingMidwayAbortsTheConnection(t *testing.T) {
	var rm *failingChunks
	f := newListFixture(t, func(m projections.ReadModel) projections.ReadModel {
		rm = &failingChunks{ReadModel: m, failAt: 3}
		return rm
	})
	f.fill(t, 600, 1000) // about 600 KB: three chunks or more
	srv := httptest.NewServer(f.handler)
	t.Cleanup(srv.Close)

	get := func() (*http.Response, []byte, error) {
		req, err := http.NewRequest(http.MethodGet, srv.URL+api.BasePath, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer alice")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp, body, err
	}

	resp, body, err := get()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want the 200 that was already sent", resp.StatusCode)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("reading the body of a list that failed midway: err = %v, want io.ErrUnexpectedEOF (a cut connection)", err)
	}
	if len(body) == 0 || body[0] != '[' {
		t.Fatalf("the first chunk did not arrive: %.40q", body)
	}
	var got []json.RawMessage
	if json.Unmarshal(body, &got) == nil {
		t.Fatalf("the %d bytes received parse as a complete array of %d ICPs", len(body), len(got))
	}
	if n := rm.calls.Load(); n != 3 {
		t.Fatalf("ListChunk called %d times, want 3 (the walk stops at the failure)", n)
	}

	// Failing on the first chunk: nothing was written, a normal error.
	rm.calls.Store(0)
	rm.failAt = 1
	resp, body, err = get()
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"code":"UNAVAILABLE"`) {
		t.Fatalf("list failing at once: %d %s (%v), want 503 UNAVAILABLE", resp.StatusCode, body, err)
	}
	if strings.Contains(string(body), "went away") {
		t.Fatalf("the error answer leaks the cause: %s", body)
	}
}

// heapSampler is a ResponseWriter that discards the body and records the
// largest live heap seen after a full collection, every chunk flushed and
// every MiB written: what a list request holds while it is written.
type heapSampler struct {
	header  http.Header
	status  int
	written int
	next    int
	peak    uint64
}

func (s *heapSampler) Header() http.Header { return s.header }
func (s *heapSampler) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
}

func (s *heapSampler) Write(b []byte) (int, error) {
	s.WriteHeader(http.StatusOK)
	s.written += len(b)
	if s.written >= s.next {
		s.next = s.written + 1<<20
		s.sample()
	}
	return len(b), nil
}

func (s *heapSampler) Flush() { s.sample() }

func (s *heapSampler) sample() {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.peak = max(s.peak, ms.HeapAlloc)
}

// heldWhileListing lists alice's ICPs into a heapSampler and returns how much
// more live heap the request held at its peak than before it, and the bytes
// written.
func heldWhileListing(t *testing.T, h http.Handler) (held uint64, written int) {
	t.Helper()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	s := &heapSampler{header: http.Header{}}
	h.ServeHTTP(s, listRequest("alice"))
	if s.status != http.StatusOK {
		t.Fatalf("list: status %d", s.status)
	}
	if s.peak < base {
		return 0, s.written
	}
	return s.peak - base, s.written
}

// TestListMemoryIsFlat: the live heap a list request holds does not grow
// with the list. Listed into a writer that discards the body, 2 MiB and
// 16 MiB of ICPs hold about the same, and less than either list.
func TestListMemoryIsFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("fills 18 MiB of read model; not run with -short")
	}
	const docSize = 64 << 10
	small := newListFixture(t, nil)
	small.fill(t, 32, docSize) // 2 MiB
	large := newListFixture(t, nil)
	large.fill(t, 256, docSize) // 16 MiB

	heldSmall, wroteSmall := heldWhileListing(t, small.handler)
	heldLarge, wroteLarge := heldWhileListing(t, large.handler)
	t.Logf("listing %d bytes held %d bytes of heap; listing %d bytes held %d", wroteSmall, heldSmall, wroteLarge, heldLarge)
	if wroteLarge < 16<<20 || wroteSmall < 2<<20 {
		t.Fatalf("listed %d and %d bytes, want at least 2 MiB and 16 MiB", wroteSmall, wroteLarge)
	}
	// A chunk (256 KiB) and the read that found it past its budget, the
	// writer's buffers, and the noise of other goroutines.
	const bound = 4 << 20
	if heldLarge > bound {
		t.Fatalf("listing %d bytes held %d bytes of heap, want at most %d: the list is held whole", wroteLarge, heldLarge, bound)
	}
	if heldLarge > heldSmall+2<<20 {
		t.Fatalf("8 times the list held %d bytes of heap against %d: memory grows with the list", heldLarge, heldSmall)
	}
}
