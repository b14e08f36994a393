// Package deploy_test holds deploy/nats.conf to what each role of the
// service does on the bus: a real nats-server (the module's own, the code
// the nats image runs) is started from the file, and the relay, the
// projector and the example worker run against it, each as its own user.
package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/bus"
	"github.com/icpservice/icp/commands"
	"github.com/icpservice/icp/domain"
	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/consumer"
	"github.com/icpservice/icp/events/relay"
	"github.com/icpservice/icp/events/sqlitestore"
	"github.com/icpservice/icp/events/watermark"
	"github.com/icpservice/icp/projections/projector"
	"github.com/icpservice/icp/projections/sqlitemodel"
)

// passwords are the environment docker-compose.yml gives the nats service.
var passwords = map[string]string{
	"api":         "NATS_API_PASSWORD",
	"relay":       "NATS_RELAY_PASSWORD",
	"projector":   "NATS_PROJECTOR_PASSWORD",
	"leadsourcer": "NATS_LEADSOURCER_PASSWORD",
	"admin":       "NATS_ADMIN_PASSWORD",
}

func password(user string) string { return "pw-of-" + user }

// startNATS starts nats-server with deploy/nats.conf, on a free port and a
// temporary store directory instead of the container's.
func startNATS(t *testing.T) string {
	t.Helper()
	for user, env := range passwords {
		t.Setenv(env, password(user))
	}
	opts, err := server.ProcessConfigFile("nats.conf")
	if err != nil {
		t.Fatalf("deploy/nats.conf: %v", err)
	}
	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", server.RANDOM_PORT, 0
	opts.StoreDir = t.TempDir()
	opts.NoLog, opts.NoSigs = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return ns.ClientURL()
}

// conn connects as user and collects the server's asynchronous errors.
type conn struct {
	*nats.Conn
	errs chan error
}

func connectAs(t *testing.T, url, user string) *conn {
	t.Helper()
	c := &conn{errs: make(chan error, 64)}
	nc, err := nats.Connect(url, nats.UserInfo(user, password(user)), nats.Name("test-"+user),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case c.errs <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	c.Conn = nc
	return c
}

// refused publishes on subject and waits for the server's permissions
// violation naming it.
func (c *conn) refused(t *testing.T, user, subject string) {
	t.Helper()
	if err := c.Publish(subject, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case err := <-c.errs:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"`+subject+`"`) {
				return
			}
		case <-deadline:
			t.Fatalf("%s published on %s without a permissions violation", user, subject)
		}
	}
}

func TestNATSConfigRefusesStrangersAndMissingPasswords(t *testing.T) {
	url := startNATS(t)
	if nc, err := nats.Connect(url); err == nil {
		nc.Close()
		t.Fatal("a client without credentials was admitted")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("without credentials: %v", err)
	}
	if nc, err := nats.Connect(url, nats.UserInfo("relay", "wrong")); err == nil {
		nc.Close()
		t.Fatal("a wrong password was admitted")
	}
	// A password missing from the environment stops the server from
	// starting rather than leaving a user without one (docker-compose.yml
	// refuses an empty one before that).
	t.Setenv("NATS_ADMIN_PASSWORD", "")
	os.Unsetenv("NATS_ADMIN_PASSWORD") // t.Setenv restores it afterwards
	if _, err := server.ProcessConfigFile("nats.conf"); err == nil || !strings.Contains(err.Error(), "NATS_ADMIN_PASSWORD") {
		t.Fatalf("nats.conf with NATS_ADMIN_PASSWORD unset: %v, want an error naming it", err)
	}
}

// TestEachRoleDoesItsWorkAndNothingElse runs the relay, the projector and
// the example worker's consumer, each as its own user, on events the
// command handler records; then checks that no role but the relay may
// publish events, and that each may dead-letter only under its own name.
func TestEachRoleDoesItsWorkAndNothingElse(t *testing.T) {
	url := startNATS(t)
	ctx := context.Background()
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)

	store, err := sqlitestore.Open(ctx, filepath.Join(dir, "events.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	cmds := commands.NewHandler(store)
	p := domain.Actor{UserID: "user_1", Tenant: "org_1"}
	const n = 3
	for i := range n {
		cmd, err := commands.ParseCreate([]byte(`{"name":"ICP `+string(rune('A'+i))+`","leadProviderCriteria":[]}`), p.UserID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cmds.Create(ctx, p, cmd, "", commands.RequestMeta{}); err != nil {
			t.Fatal(err)
		}
	}

	// The relay: creates the streams and the lease bucket, publishes.
	relayConn := connectAs(t, url, "relay")
	if err := bus.EnsureStreams(ctx, relayConn.Conn, bus.StreamConfig{}); err != nil {
		t.Fatalf("the relay user cannot create the streams: %v", err)
	}
	r, err := relay.New(relay.Config{Store: store, Conn: relayConn.Conn, Logger: log, InstanceID: "relay-" + uuid.NewString()[:8]})
	if err != nil {
		t.Fatal(err)
	}
	runPart(t, r.Run)
	admin := connectAs(t, url, "admin")
	waitFor(t, "the relay to publish every event", func() bool {
		pos, err := relay.BusPosition(ctx, admin.Conn)
		return err == nil && pos == n
	})

	// The projector: its durable pull consumer, acknowledged.
	model, err := sqlitemodel.Open(ctx, filepath.Join(dir, "readmodel.db"), sqlitemodel.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = model.Close() })
	proj, err := projector.New(projector.Config{
		URL: url, NatsOptions: []nats.Option{nats.UserInfo("projector", password("projector"))},
		ReadModel: model, Store: store, Logger: log, CheckpointInterval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	runPart(t, proj.Run)
	js, _ := jetstream.New(admin.Conn)
	// The legacy API reads pull and push consumers alike.
	ljs, _ := admin.JetStream()
	acked := func(durable string) func() bool {
		return func() bool {
			info, err := ljs.ConsumerInfo(events.BusStream, durable)
			return err == nil && info.AckFloor.Stream == n && info.NumAckPending == 0
		}
	}
	waitFor(t, "the projector to consume and acknowledge every event", acked(projector.DefaultDurable))

	// The example worker: events/consumer with durable leadsourcer.
	var handled atomic.Int32
	worker, err := consumer.New(consumer.Config{
		URL: url, NatsOptions: []nats.Option{nats.UserInfo("leadsourcer", password("leadsourcer"))},
		Durable: "leadsourcer", Logger: log, MissedCheckInterval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	worker.OnCreated(func(context.Context, consumer.Event[domain.ICPCreatedV1]) error {
		handled.Add(1)
		return nil
	})
	runPart(t, worker.Run)
	waitFor(t, "the worker to handle every event", func() bool { return handled.Load() == n })
	waitFor(t, "the worker to acknowledge every event", acked("leadsourcer"))

	// Each records its watermark under its own key, and may not write
	// another's.
	for _, durable := range []string{projector.DefaultDurable, "leadsourcer"} {
		waitFor(t, durable+"'s watermark", func() bool {
			kv, err := js.KeyValue(ctx, watermark.Bucket)
			if err != nil {
				return false
			}
			e, err := kv.Get(ctx, events.BusStream+"."+durable)
			return err == nil && strings.Contains(string(e.Value()), fmt.Sprintf(`"seq":%d`, n))
		})
	}
	connectAs(t, url, "leadsourcer").refused(t, "leadsourcer", "$KV."+watermark.Bucket+"."+events.BusStream+"."+projector.DefaultDurable)

	// Allowed: dead letters under one's own name, republish onto ICP_REPLAY.
	for _, c := range []struct {
		user, subject string
	}{{"projector", events.DLQSubject(projector.DefaultDurable)}, {"leadsourcer", events.DLQSubject("leadsourcer")}} {
		cjs, _ := jetstream.New(connectAs(t, url, c.user).Conn)
		if _, err := cjs.Publish(ctx, c.subject, []byte("{}")); err != nil {
			t.Errorf("%s cannot dead-letter on %s: %v", c.user, c.subject, err)
		}
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: events.ReplayStream, Subjects: []string{events.ReplaySubjects}}); err != nil {
		t.Fatalf("admin cannot create %s: %v", events.ReplayStream, err)
	}
	if _, err := js.Publish(ctx, events.ReplaySubjectPrefix+events.TypeICPCreated, []byte("{}")); err != nil {
		t.Errorf("admin cannot republish: %v", err)
	}

	// Refused: events from anyone but the relay, replays from the relay,
	// dead letters under another's name, the stream's API for workers.
	forged := events.BusSubjectPrefix + events.TypeICPCreated
	projConn := connectAs(t, url, "projector")
	workerConn := connectAs(t, url, "leadsourcer")
	projConn.refused(t, "projector", forged)
	workerConn.refused(t, "leadsourcer", forged)
	admin.refused(t, "admin", forged)
	relayConn.refused(t, "relay", events.ReplaySubjectPrefix+events.TypeICPCreated)
	workerConn.refused(t, "leadsourcer", events.DLQSubject(projector.DefaultDurable))
	workerConn.refused(t, "leadsourcer", "$JS.API.STREAM.DELETE."+events.BusStream)
	projConn.refused(t, "projector", "$JS.API.STREAM.PURGE."+events.BusStream)
	workerConn.refused(t, "leadsourcer", "$JS.API.CONSUMER.DELETE."+events.BusStream+"."+projector.DefaultDurable)

	// The API learns max_payload from its connection and may do nothing else.
	apiConn := connectAs(t, url, "api")
	if apiConn.MaxPayload() <= 0 {
		t.Error("the api user's connection reports no max_payload")
	}
	apiConn.refused(t, "api", forged)
	apiConn.refused(t, "api", "$JS.API.STREAM.INFO."+events.BusStream)

	s, err := js.Stream(ctx, events.BusStream)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().State.Msgs; got != n {
		t.Fatalf("%s holds %d messages, want the relay's %d", events.BusStream, got, n)
	}
}

// runPart runs a part until the test ends and checks it stopped cleanly.
func runPart(t *testing.T, run func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("part stopped with %v", err)
		}
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}
