package main

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/icpservice/icp/bus"
	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/consumer"
	"github.com/icpservice/icp/events/sqlitestore"
	"github.com/icpservice/icp/internal/natsauth"
	"github.com/icpservice/icp/internal/natsserver"
	"github.com/icpservice/icp/platform/datadir"
	"github.com/icpservice/icp/projections"
	"github.com/icpservice/icp/projections/projector"
	"github.com/icpservice/icp/projections/rebuild/historytest"
	"github.com/icpservice/icp/projections/sqlitemodel"
)

// deadLetterSetup leaves in dir what a service leaves after its projector
// dead-lettered three real events (its read model refused their views, as
// it would before an operator raised a limit) and a forged message, and a
// worker ("worker") dead-lettered the same three events (its handler
// failed). Everything then stops, as icpd would be stopped. It returns the
// stored events and the forged message's event id.
func deadLetterSetup(t *testing.T, dir string) ([]events.Recorded, string) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, datadir.EventsFile), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for range 3 {
		id := uuid.NewString()
		ev, err := historytest.Created(id, "org_a", "user_1", 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Append(ctx, events.StreamID(id), events.NoStream, []events.Proposed{ev}); err != nil {
			t.Fatal(err)
		}
	}
	stored := readAll(t, st)

	srv, nc := startDataDirBus(t, dir)
	defer srv.Shutdown()
	defer nc.Close()
	if err := bus.EnsureStreams(ctx, nc, bus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	publish := func(r events.Recorded) {
		m := nats.NewMsg(events.Subject(r.Type))
		for k, v := range events.Headers(r) {
			m.Header.Set(k, v)
		}
		m.Data = r.Data
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range stored {
		publish(r)
	}
	forged := stored[0]
	forged.ID, forged.StreamID, forged.Position = uuid.NewString(), events.StreamID(uuid.NewString()), 2
	publish(forged)
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	rm, err := sqlitemodel.Open(ctx, filepath.Join(dir, datadir.ReadModelFile), sqlitemodel.Options{MaxDocBytes: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer rm.Close()
	quiet := slog.New(slog.DiscardHandler)
	p, err := projector.New(projector.Config{Conn: nc, ReadModel: rm, Store: st, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	w, err := consumer.New(consumer.Config{URL: srv.ClientURL(), NatsOptions: []nats.Option{nats.UserCredentials(natsauth.WorkerCredsPath(dir))}, Durable: "worker", MaxAttempts: 1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	w.OnCreated(func(context.Context, consumer.Event[domain.ICPCreatedV1]) error {
		return errors.New("the worker's service is down")
	})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 2)
	go func() { done <- p.Run(runCtx) }()
	go func() { done <- w.Run(runCtx) }()
	waitFor(t, 30*time.Second, "the dead letters", func() bool {
		return p.Stats().DeadLettered == 4 && w.Stats().DeadLettered == 4
	})
	cancel()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	return stored, forged.ID
}

func TestDLQListAndRedriveTheProjectorsDeadLettersFromTheStore(t *testing.T) {
	dir := t.TempDir()
	stored, forged := deadLetterSetup(t, dir)

	code, out, errOut := icpctl(t, "dlq", "list", "--data-dir", dir, "--consumer", "projector")
	if code != 0 {
		t.Fatalf("list: exit %d, %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "SEQ") {
		t.Fatalf("list printed %d lines, want a header and 4 dead letters:\n%s", len(lines), out)
	}
	for _, r := range stored {
		if !strings.Contains(out, r.ID) || !strings.Contains(out, "icp.ICPCreated.v1") {
			t.Fatalf("event %s missing from the list:\n%s", r.ID, out)
		}
	}
	if !strings.Contains(out, "refused") || !strings.Contains(out, "not in the event store") || !strings.Contains(out, forged) {
		t.Fatalf("reasons missing from the list:\n%s", out)
	}

	// One event: re-applied from the store into the read model, removed.
	code, out, errOut = icpctl(t, "dlq", "redrive", "--data-dir", dir, "--consumer", "projector", "--id", stored[0].ID)
	if code != 0 || !strings.Contains(out, "re-applied from the event store") {
		t.Fatalf("redrive --id: exit %d, %q %q", code, out, errOut)
	}
	wantViews(t, dir, stored[:1], stored[1:])

	// The rest: the real events are re-applied, the forged one is kept.
	code, out, errOut = icpctl(t, "dlq", "redrive", "--data-dir", dir, "--consumer", "projector")
	if code == 0 || strings.Count(out, "redriven") != 2 || !strings.Contains(out, "kept") || !strings.Contains(out, forged) {
		t.Fatalf("redrive: exit %d, %q %q; want 2 re-driven and the forged one kept", code, out, errOut)
	}
	wantViews(t, dir, stored, nil)
	_, out, _ = icpctl(t, "dlq", "list", "--data-dir", dir, "--consumer", "projector")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.Contains(lines[1], forged) {
		t.Fatalf("after the re-drive, list shows:\n%s\nwant only the forged message", out)
	}
	// The worker's dead letters are its own.
	_, out, _ = icpctl(t, "dlq", "list", "--data-dir", dir, "--consumer", "worker")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 5 {
		t.Fatalf("the worker's dead letters:\n%s", out)
	}
}

func TestDLQRedriveRepublishesAWorkersDeadLetterOnTheReplayStream(t *testing.T) {
	dir := t.TempDir()
	stored, _ := deadLetterSetup(t, dir)
	target := stored[1]
	code, out, errOut := icpctl(t, "dlq", "redrive", "--data-dir", dir, "--consumer", "worker", "--id", target.ID)
	if code != 0 || !strings.Contains(out, "published again on icp.replay.ICPCreated") {
		t.Fatalf("redrive: exit %d, %q %q", code, out, errOut)
	}

	srv, nc := startDataDirBus(t, dir)
	defer srv.Shutdown()
	defer nc.Close()
	replayed := streamMessages(t, nc, events.ReplayStream)
	if len(replayed) != 1 {
		t.Fatalf("ICP_REPLAY holds %d messages, want the re-driven one", len(replayed))
	}
	m := replayed[0]
	if m.Subject != "icp.replay.ICPCreated" || m.Header.Get(events.HeaderID) != target.ID || string(m.Data) != string(target.Data) ||
		m.Header.Get(events.HeaderDLQReason) != "" {
		t.Fatalf("re-driven message: %s %v %s", m.Subject, m.Header, m.Data)
	}
	// Its dead letter is gone, the worker's others and the projector's stay.
	for consumer, want := range map[string]int{"worker": 3, "projector": 4} {
		_, out, _ := icpctl(t, "dlq", "list", "--data-dir", dir, "--consumer", consumer)
		if n := len(strings.Split(strings.TrimSpace(out), "\n")) - 1; n != want || (consumer == "worker" && strings.Contains(out, target.ID)) {
			t.Fatalf("%s's dead letters after the re-drive: %d, want %d:\n%s", consumer, n, want, out)
		}
	}
}

func TestDLQRefusesInvalidFlags(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"dlq", "list", "--data-dir", dir},
		{"dlq", "list", "--data-dir", dir, "--consumer", "a.b"},
		{"dlq", "redrive", "--data-dir", dir, "--consumer", "projector", "--timeout", "0s"},
	} {
		if code, _, _ := icpctl(t, args...); code != 80 {
			t.Errorf("%v: exit %d, want 80", args, code)
		}
	}
	if code, _, errOut := icpctl(t, "dlq", "list", "--data-dir", dir, "--consumer", "projector"); code == 0 || !strings.Contains(errOut, "no event store") {
		t.Errorf("list on an empty data directory: exit %d, %q", code, errOut)
	}
}

// wantViews checks that the read model holds the ICPs of applied and not
// those of absent.
func wantViews(t *testing.T, dir string, applied, absent []events.Recorded) {
	t.Helper()
	rm, err := sqlitemodel.Open(context.Background(), filepath.Join(dir, datadir.ReadModelFile), sqlitemodel.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rm.Close()
	for _, r := range applied {
		if v, err := rm.Get(context.Background(), r.ICPID()); err != nil || v.Version != r.Version {
			t.Fatalf("ICP %s after the re-drive: %+v, %v", r.ICPID(), v, err)
		}
	}
	for _, r := range absent {
		if _, err := rm.Get(context.Background(), r.ICPID()); !errors.Is(err, projections.ErrNotFound) {
			t.Fatalf("ICP %s was not re-driven yet but is in the read model: %v", r.ICPID(), err)
		}
	}
}

// startDataDirBus starts the embedded NATS server of the data directory as
// icpd does (operator mode, the directory's identity) and connects with
// icpd's credentials, so that what the test sets up is where icpctl looks.
func startDataDirBus(t *testing.T, dir string) (*natsserver.Server, *nats.Conn) {
	t.Helper()
	id, err := natsauth.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := natsserver.Start(natsserver.Config{StoreDir: filepath.Join(dir, datadir.NATSDir), Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv.Inner()), nats.UserCredentials(natsauth.ServiceCredsPath(dir)))
	if err != nil {
		srv.Shutdown()
		t.Fatal(err)
	}
	return srv, nc
}
