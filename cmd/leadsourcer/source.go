package main

import (
	"context"
	"log/slog"

	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events/consumer"
)

// sourcer decides what to source for an ICP. This example only logs it; a
// real worker would call the lead providers here.
//
// Idempotency: the consumer delivers at least once, so the same ICPCreated
// can come twice (see events/CONSUMERS.md). Logging twice is harmless; a
// worker with side effects records (ICP id, version) with its result and
// skips an event it has already recorded.
type sourcer struct {
	log *slog.Logger
}

// created logs the lead lists a new ICP asks for: one search per lead
// provider criterion, LeadsPerList leads each.
func (s sourcer) created(ctx context.Context, ev consumer.Event[domain.ICPCreatedV1]) error {
	icp := ev.Payload.ICP
	providers := make([]string, 0, len(icp.LeadProviderCriteria))
	for _, c := range icp.LeadProviderCriteria {
		kind := "person"
		if c.Type.Set && !c.Type.Null {
			kind = c.Type.V
		}
		providers = append(providers, c.Provider+"/"+kind)
	}
	attrs := []any{
		slog.String("icp", icp.ID),
		slog.String("name", icp.Name),
		slog.String("tenant", ev.Payload.Tenant),
		slog.Any("providers", providers),
		slog.Int("leadsPerList", icp.LeadsPerList),
		slog.Int("customFilters", len(icp.CustomFilterCriteria)),
		slog.Bool("crmFilters", icp.CRMFilters != nil),
		slog.Uint64("position", ev.Position),
		slog.String("event", ev.ID),
	}
	if icp.ActiveUntil != nil {
		attrs = append(attrs, slog.String("activeUntil", icp.ActiveUntil.String()))
	}
	if len(providers) == 0 {
		s.log.InfoContext(ctx, "nothing to source: the ICP has no lead provider criteria", attrs...)
		return nil
	}
	s.log.InfoContext(ctx, "would source leads", attrs...)
	return nil
}
