// Package historytest writes realistic ICP histories into an event store for
// the tests and benchmarks of the replay tools: creates, updates that change
// fields and members, deletes, free-form JSON that must survive byte for
// byte.
package historytest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
)

// Spec shapes a history.
type Spec struct {
	// ICPs is the number of ICPs created.
	ICPs int
	// UpdateEvery: every n-th ICP gets two updates (0: none).
	UpdateEvery int
	// DeleteEvery: every n-th ICP is deleted after its updates (0: none).
	DeleteEvery int
	// Tenant of every ICP (default "org_hist").
	Tenant string
	// Writers is the number of concurrent appenders (default 32): the
	// store's group commit needs company to be fast.
	Writers int
	// RandomIDs gives the ICPs random (version 4) ids, as releases before
	// time-ordered ids wrote them, instead of version 7 ids in creation
	// order, as the service writes them now.
	RandomIDs bool
}

// ICP is one ICP of a written history: its id and the version of its last
// event.
type ICP struct {
	ID      string
	Version uint64
	Deleted bool
}

// Write appends the history spec describes to store and returns its ICPs in
// creation order. Creates are appended concurrently, then updates, then
// deletes, so each ICP's events are in version order and ICPs interleave in
// the global order.
func Write(ctx context.Context, store events.Store, spec Spec) ([]ICP, error) {
	if spec.Tenant == "" {
		spec.Tenant = "org_hist"
	}
	if spec.Writers <= 0 {
		spec.Writers = 32
	}
	icps := newICPs(spec)
	for _, s := range steps(icps, spec) {
		if err := appendStep(ctx, store, icps, spec.Writers, s); err != nil {
			return nil, err
		}
	}
	return icps, nil
}

// step proposes the event of one round of the history for the i-th ICP;
// false: the ICP has none in that round.
type step func(i int) (events.Proposed, bool, error)

// newICPs returns the ICPs of spec with their ids, at version 0.
func newICPs(spec Spec) []ICP {
	icps := make([]ICP, spec.ICPs)
	for i := range icps {
		if spec.RandomIDs {
			icps[i].ID = uuid.NewString()
		} else {
			icps[i].ID = uuid.Must(uuid.NewV7()).String()
		}
	}
	return icps
}

// steps returns the rounds of the history in order: the creates, two rounds
// of updates, the deletes (which mark icps deleted as they are proposed).
func steps(icps []ICP, spec Spec) []step {
	var out []step
	out = append(out, func(i int) (events.Proposed, bool, error) {
		p, err := Created(icps[i].ID, spec.Tenant, fmt.Sprintf("user_%d", i%50), i)
		return p, true, err
	})
	for round := range 2 {
		out = append(out, func(i int) (events.Proposed, bool, error) {
			if spec.UpdateEvery <= 0 || i%spec.UpdateEvery != 0 {
				return events.Proposed{}, false, nil
			}
			p, err := Updated(icps[i].ID, spec.Tenant, fmt.Sprintf("user_%d", i%50), round)
			return p, true, err
		})
	}
	out = append(out, func(i int) (events.Proposed, bool, error) {
		if spec.DeleteEvery <= 0 || i%spec.DeleteEvery != 0 {
			return events.Proposed{}, false, nil
		}
		icps[i].Deleted = true
		p, err := Deleted(icps[i].ID, spec.Tenant, fmt.Sprintf("user_%d", i%50))
		return p, true, err
	})
	return out
}

// appendStep appends the events of one round for every ICP with writers
// concurrent appenders, each ICP's after its previous version, and counts
// them in icps. It returns the first error; the writer that met it stops,
// the others finish the round.
func appendStep(ctx context.Context, store events.Store, icps []ICP, writers int, s step) error {
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range writers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(icps) {
					return
				}
				p, ok, err := s(i)
				if err == nil && ok {
					if _, err = store.Append(ctx, events.StreamID(icps[i].ID), icps[i].Version, []events.Proposed{p}); err == nil {
						icps[i].Version++
					}
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

var t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

// Created is the ICPCreated event of an ICP with free-form JSON whose key
// order, big numbers and HTML characters must survive exactly.
func Created(id, tenant, user string, n int) (events.Proposed, error) {
	desc := fmt.Sprintf("Decision makers <&> in DACH, batch %d", n)
	at := domain.NewTime(t0.Add(time.Duration(n) * time.Millisecond))
	icp := domain.ICP{
		ID: id, Name: fmt.Sprintf("DACH Tech Leaders %d", n), Description: &desc,
		CreatedAt: at, UpdatedAt: at,
		LeadProviderCriteria: []domain.LeadProviderCriterion{{
			Provider: "baseProvider",
			Filters:  json.RawMessage(`{"z_last":1,"job_title":["CTO","VP Engineering"],"employees":{"$gt":12345678901234567890},"location":["DE","AT","CH"]}`),
		}},
		CustomFilterCriteria: []domain.CustomFilter{{Type: "maxPeoplePerCompany", Value: json.RawMessage(`2.50`)}},
		UserIDs:              []string{user, "user_shared"},
		LeadsPerList:         100,
	}
	return events.Encode(uuid.NewString(), domain.ICPCreatedV1{ICP: icp, Tenant: tenant, CreatedBy: user},
		events.Metadata{Tenant: tenant, UserID: user, CommandHash: "sha256:" + id[:8], CorrelationID: uuid.NewString()})
}

// Updated renames the ICP and changes its members (round 0: adds one, round
// 1: drops user_shared).
func Updated(id, tenant, user string, round int) (events.Proposed, error) {
	ch := domain.ICPChanges{Name: domain.Some(fmt.Sprintf("renamed %d", round))}
	switch round {
	case 0:
		ch.UserIDs = domain.Some([]string{user, "user_shared", "user_added"})
	default:
		ch.UserIDs = domain.Some([]string{user, "user_added"})
		ch.Description = domain.Null[string]()
	}
	return events.Encode(uuid.NewString(), domain.ICPUpdatedV1{ID: id, UpdatedAt: domain.NewTime(t0.Add(time.Hour)), UpdatedBy: user, Changes: ch},
		events.Metadata{Tenant: tenant, UserID: user})
}

// Deleted deletes the ICP.
func Deleted(id, tenant, user string) (events.Proposed, error) {
	return events.Encode(uuid.NewString(), domain.ICPDeletedV1{ID: id, DeletedAt: domain.NewTime(t0.Add(2 * time.Hour)), DeletedBy: user},
		events.Metadata{Tenant: tenant, UserID: user})
}
