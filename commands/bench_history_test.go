package commands_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/icpservice/icp/commands"
	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/sqlitestore"
)

// BenchmarkPatchByHistory measures one PATCH of an ICP against the number of
// versions the ICP already has, on the embedded SQLite store, with history
// events (and PATCHes) of about 1 KB and about 100 KB. The history is built
// once per sub-benchmark with direct bulk appends, the store is then closed
// and opened again (nothing warm in memory), and one PATCH runs before the
// timer starts. Each timed PATCH replaces the criteria with a value of the
// same size. Run it with a fixed count, e.g.
//
//	go test -run '^$' -bench BenchmarkPatchByHistory -benchtime=20x ./commands/
func BenchmarkPatchByHistory(parent *testing.B) {
	for _, versions := range []int{1, 100, 1_000, 10_000} {
		for _, size := range []struct {
			name  string
			bytes int
		}{{"1KB", 1 << 10}, {"100KB", 100 << 10}} {
			var (
				once  sync.Once
				h     *commands.Handler
				id    string
				setup error
			)
			parent.Run(fmt.Sprintf("versions=%d/size=%s", versions, size.name), func(b *testing.B) {
				// Go runs a benchmark's function more than once; the
				// history is built at the first run only.
				once.Do(func() { h, id, setup = buildHistory(parent, versions, size.bytes) })
				if setup != nil {
					b.Fatal(setup)
				}
				ctx := context.Background()
				bodies := [2][]byte{patchBody(size.bytes, "x"), patchBody(size.bytes, "y")}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					cmd, err := commands.ParseUpdate(bodies[i%2])
					if err != nil {
						b.Fatal(err)
					}
					if _, err := h.Update(ctx, alice, id, cmd, nil, commands.RequestMeta{}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// criteriaOf returns leadProviderCriteria of about size bytes of JSON.
func criteriaOf(size int, fill string) []domain.LeadProviderCriterion {
	filters := `{"keywords":"` + strings.Repeat(fill, max(size-64, 1)) + `"}`
	return []domain.LeadProviderCriterion{{Provider: "baseProvider", Filters: json.RawMessage(filters)}}
}

func patchBody(size int, fill string) []byte {
	b, err := json.Marshal(map[string]any{"leadProviderCriteria": criteriaOf(size, fill)})
	if err != nil {
		panic(err)
	}
	return b
}

// buildHistory creates an ICP and appends updates of about size bytes until
// it has versions versions, then reopens the store and PATCHes once. The
// store lives as long as b, the benchmark that runs the sub-benchmarks: a
// sub-benchmark's own cleanups run after each of its runs.
func buildHistory(b *testing.B, versions, size int) (*commands.Handler, string, error) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "events.db")
	st, err := sqlitestore.Open(ctx, path, sqlitestore.Options{})
	if err != nil {
		return nil, "", err
	}
	created, err := commands.NewHandler(st).Create(ctx, alice, domain.CreateICP{
		Name: "History", LeadProviderCriteria: criteriaOf(size, "c"), CustomFilterCriteria: []domain.CustomFilter{},
		UserIDs: []string{alice.UserID}, LeadsPerList: 20,
	}, "", commands.RequestMeta{})
	if err != nil {
		return nil, "", err
	}
	id := created.State.ICP.ID
	stream := events.StreamID(id)
	perBatch := max(1, (4<<20)/size) // about 4 MiB a transaction
	md := events.Metadata{Tenant: alice.Tenant, UserID: alice.UserID}
	batch := make([]events.Proposed, 0, perBatch)
	for v := 1; v < versions; {
		batch = batch[:0]
		for len(batch) < perBatch && v+len(batch) < versions {
			ev, err := events.Encode(uuid.NewString(), domain.ICPUpdatedV1{ID: id, UpdatedAt: domain.NewTime(time.Now()), UpdatedBy: alice.UserID,
				Changes: domain.ICPChanges{LeadProviderCriteria: domain.Some(criteriaOf(size, string(rune('a'+(v+len(batch))%26))))}}, md)
			if err != nil {
				return nil, "", err
			}
			batch = append(batch, ev)
		}
		if _, err := st.Append(ctx, stream, uint64(v), batch); err != nil {
			return nil, "", err
		}
		v += len(batch)
	}
	if err := st.Close(); err != nil {
		return nil, "", err
	}
	if st, err = sqlitestore.Open(ctx, path, sqlitestore.Options{}); err != nil {
		return nil, "", err
	}
	b.Cleanup(func() { _ = st.Close() })
	h := commands.NewHandler(st)
	cmd, err := commands.ParseUpdate(patchBody(size, "w"))
	if err != nil {
		return nil, "", err
	}
	if _, err := h.Update(ctx, alice, id, cmd, nil, commands.RequestMeta{}); err != nil {
		return nil, "", err
	}
	return h, id, nil
}
