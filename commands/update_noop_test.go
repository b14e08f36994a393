package commands_test

import (
	"context"
	"testing"
	"time"

	"github.com/icpservice/icp/commands"
	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
)

// An update that sets only values the ICP already holds records nothing and
// answers the ICP at its version and updatedAt; one that mixes changed and
// unchanged members records the changed ones alone.
func TestUpdateOfUnchangedValuesRecordsNothing(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	clk := &clock{t: time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)}
	h := commands.NewHandler(st, commands.WithClock(clk.now))
	created, err := h.Create(ctx, alice, parse(t, body1, alice), "", commands.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	id := created.State.ICP.ID
	clk.add(time.Minute)
	for _, body := range []string{
		`{"name":"DACH Tech Leaders"}`,
		`{"leadProviderCriteria":[{"provider":"baseProvider","type":"person","filters":{"job_title":["CTO"], "n":12345678901234567890}}],"description":null}`,
		`{"userIds":["user_bob","user_alice"],"leadsPerList":10,"crmFilters":null,"customFilterCriteria":[]}`,
	} {
		res, err := h.Update(ctx, alice, id, parseUpdate(t, body), nil, commands.RequestMeta{})
		if err != nil {
			t.Fatal(err)
		}
		if res.State.Version != 1 || !res.State.ICP.UpdatedAt.Equal(created.State.ICP.UpdatedAt.Time) || doc(t, res.State) != doc(t, created.State) {
			t.Fatalf("update %s answered version %d, %s; want the ICP as created", body, res.State.Version, doc(t, res.State))
		}
		if evs := readStream(t, st, id); len(evs) != 1 {
			t.Fatalf("update %s recorded %d events", body, len(evs)-1)
		}
	}

	res, err := h.Update(ctx, alice, id, parseUpdate(t, `{"name":"DACH Tech Leaders","leadsPerList":11}`), []uint64{1}, commands.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	evs := readStream(t, st, id)
	if res.State.Version != 2 || len(evs) != 2 || !res.State.ICP.UpdatedAt.Equal(clk.now()) {
		t.Fatalf("a changing update: version %d, %d events, updatedAt %v", res.State.Version, len(evs), res.State.ICP.UpdatedAt)
	}
	p, err := events.DecodeRecorded(evs[1])
	if err != nil {
		t.Fatal(err)
	}
	if c := p.(domain.ICPUpdatedV1).Changes; c.Name.Set || !c.LeadsPerList.Set || c.LeadsPerList.V != 11 {
		t.Fatalf("the event records %+v, want leadsPerList alone", c)
	}
}
