package natsserver_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/watermark"
	"github.com/icpservice/icp/internal/natsauth"
	"github.com/icpservice/icp/internal/natsserver"
	"github.com/icpservice/icp/platform/datadir"
)

func startWithIdentity(t *testing.T, dataDir string) (*natsserver.Server, *natsauth.Identity) {
	t.Helper()
	id, err := natsauth.LoadOrCreate(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := natsserver.Start(natsserver.Config{StoreDir: filepath.Join(dataDir, "nats"), Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv, id
}

// permErrors connects with opts and returns the connection and a channel
// receiving the server's asynchronous errors (permission violations).
func connect(t *testing.T, url string, opts ...nats.Option) (*nats.Conn, chan error) {
	t.Helper()
	errs := make(chan error, 16)
	opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case errs <- err:
		default:
		}
	}))
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc, errs
}

// The embedded server with an identity admits no one without credentials;
// icpd's credentials may do everything, the workers' may consume and
// acknowledge but not publish events.
func TestEmbeddedServerAdmitsOnlyItsUsers(t *testing.T) {
	dir := t.TempDir()
	srv, id := startWithIdentity(t, dir)
	ctx := context.Background()

	if nc, err := nats.Connect(srv.ClientURL()); err == nil {
		nc.Close()
		t.Fatal("a connection without credentials was accepted")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("without credentials: %v, want an authorization violation", err)
	}
	// An in-process connection is no way around it.
	if nc, err := nats.Connect("", nats.InProcessServer(srv.Inner())); err == nil {
		nc.Close()
		t.Fatal("an in-process connection without credentials was accepted")
	}

	// icpd: creates the stream and publishes.
	svc, _ := connect(t, srv.ClientURL(), nats.UserCredentials(natsauth.ServiceCredsPath(dir)))
	sjs, _ := jetstream.New(svc)
	if _, err := sjs.CreateStream(ctx, jetstream.StreamConfig{Name: events.BusStream, Subjects: []string{events.BusSubjects}}); err != nil {
		t.Fatalf("icpd's user cannot create %s: %v", events.BusStream, err)
	}
	if _, err := sjs.Publish(ctx, events.BusSubjectPrefix+"ICPCreated", []byte("one")); err != nil {
		t.Fatalf("icpd's user cannot publish: %v", err)
	}
	// In process, with the same credentials in memory, as icpd connects.
	inproc, err := nats.Connect("", nats.InProcessServer(srv.Inner()), nats.UserJWTAndSeed(id.Service.JWT, id.Service.Seed))
	if err != nil {
		t.Fatalf("in-process connection with icpd's credentials: %v", err)
	}
	inproc.Close()

	// A worker: consumes and acknowledges.
	wk, werrs := connect(t, srv.ClientURL(), nats.UserCredentials(natsauth.WorkerCredsPath(dir)))
	wjs, _ := jetstream.New(wk)
	cons, err := wjs.CreateOrUpdateConsumer(ctx, events.BusStream, jetstream.ConsumerConfig{Durable: "worker", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("the worker cannot create its consumer: %v", err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []jetstream.Msg
	for m := range batch.Messages() {
		got = append(got, m)
	}
	if len(got) != 1 || !bytes.Equal(got[0].Data(), []byte("one")) {
		t.Fatalf("the worker fetched %d messages (%v), want the one published", len(got), batch.Error())
	}
	if err := got[0].DoubleAck(ctx); err != nil {
		t.Fatalf("the worker cannot acknowledge: %v", err)
	}

	// It keeps its own watermark (events/watermark): reads the stream by
	// sequence, creates the bucket, writes its key.
	marks, err := watermark.Open(ctx, wjs, events.BusStream, "worker", watermark.HeaderPosition)
	if err != nil {
		t.Fatalf("the worker cannot open its watermark: %v", err)
	}
	if _, _, err := marks.Check(ctx); err != nil {
		t.Fatalf("the worker cannot check its watermark: %v", err)
	}
	kv, err := wjs.KeyValue(ctx, watermark.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, events.BusStream+".worker", []byte(`{"position":1,"seq":1}`)); err != nil {
		t.Fatalf("the worker cannot record its watermark: %v", err)
	}
	if m, _, err := marks.Mark(ctx); err != nil || m.Seq != 1 {
		t.Fatalf("the worker reads its watermark as %+v, %v", m, err)
	}

	// ... but may not publish on the event subjects, nor touch the stream.
	if err := wk.Publish(events.BusSubjectPrefix+"ICPCreated", []byte("forged")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-werrs:
		if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), events.BusSubjectPrefix+"ICPCreated") {
			t.Fatalf("forged publish: %v, want a permissions violation", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no permissions violation for a worker's publish on the event subjects")
	}
	// Nor may it delete or purge the stream, touch the projector's durable,
	// or dead-letter in the projector's name.
	if _, err := sjs.CreateOrUpdateConsumer(ctx, events.BusStream, jetstream.ConsumerConfig{Durable: "projector", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	for _, subject := range []string{
		"$JS.API.STREAM.DELETE." + events.BusStream,
		"$JS.API.STREAM.PURGE." + events.BusStream,
		"$JS.API.CONSUMER.DELETE." + events.BusStream + ".projector",
		"$JS.API.CONSUMER.CREATE." + events.BusStream + ".projector",
		"$JS.API.CONSUMER.MSG.NEXT." + events.BusStream + ".projector",
		events.DLQSubject("projector"),
		"$KV." + watermark.Bucket + "." + events.BusStream + ".projector",
	} {
		if err := wk.Publish(subject, []byte("{}")); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-werrs:
			if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), `"`+subject+`"`) {
				t.Fatalf("worker publish on %s: %v, want a permissions violation", subject, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no permissions violation for a worker's publish on %s", subject)
		}
	}
	info, err := sjs.Stream(ctx, events.BusStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := info.CachedInfo().State.Msgs; n != 1 {
		t.Fatalf("the stream holds %d messages, want only icpd's one", n)
	}
}

// A restart reads the same identity: the .creds files handed out stay
// byte for byte the same and are still admitted; every file is the owner's
// alone.
func TestIdentitySurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	first, err := natsauth.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	before := map[string][]byte{}
	for _, p := range []string{first.Service.Path, first.Worker.Path} {
		before[p], _ = os.ReadFile(p)
	}
	srv, second := startWithIdentity(t, dir)
	if second.Account != first.Account || second.Operator.Subject != first.Operator.Subject {
		t.Fatal("the account or operator changed on restart")
	}
	for p, b := range before {
		now, _ := os.ReadFile(p)
		if !bytes.Equal(now, b) {
			t.Fatalf("%s was rewritten on restart", p)
		}
	}
	nc, err := nats.Connect(srv.ClientURL(), nats.UserCredentials(first.Worker.Path))
	if err != nil {
		t.Fatalf("creds written before the restart: %v", err)
	}
	nc.Close()

	entries, err := os.ReadDir(filepath.Join(dir, datadir.NATSAuthDir))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 5 {
		t.Errorf("%d files in %s, want 3 seeds and 2 .creds", len(entries), datadir.NATSAuthDir)
	}
	for _, e := range entries {
		info, _ := e.Info()
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %#o, want 0600", e.Name(), perm)
		}
	}
	if info, _ := os.Stat(filepath.Join(dir, datadir.NATSAuthDir)); info.Mode().Perm() != 0o700 {
		t.Errorf("%s has mode %#o, want 0700", datadir.NATSAuthDir, info.Mode().Perm())
	}
}

// Files of the identity are hostile until checked: one others may read, a
// seed that is not one, or a seed of another kind stops the start with the
// file's name; a damaged .creds file is issued again.
func TestIdentityRefusesDamagedFiles(t *testing.T) {
	seed := func(t *testing.T) string {
		dir := t.TempDir()
		if _, err := natsauth.LoadOrCreate(dir); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	for _, tc := range []struct {
		name, file string
		damage     func(path string) error
		want       string
	}{
		{"readable by others", "account.nk", func(p string) error { return os.Chmod(p, 0o644) }, "chmod 600"},
		{"not a seed", "operator.nk", func(p string) error { return os.WriteFile(p, []byte("hello\n"), 0o600) }, "holds no nkey seed"},
		{"a seed of another kind", "operator.nk", func(p string) error {
			b, err := os.ReadFile(filepath.Join(filepath.Dir(p), "account.nk"))
			if err != nil {
				return err
			}
			return os.WriteFile(p, b, 0o600)
		}, "another kind"},
		{"too large", "system.nk", func(p string) error { return os.WriteFile(p, bytes.Repeat([]byte("S"), 1<<20), 0o600) }, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := seed(t)
			path := filepath.Join(dir, datadir.NATSAuthDir, tc.file)
			if err := tc.damage(path); err != nil {
				t.Fatal(err)
			}
			_, err := natsauth.LoadOrCreate(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("got %v, want an error naming %s and saying %q", err, path, tc.want)
			}
		})
	}
	t.Run("damaged creds", func(t *testing.T) {
		dir := seed(t)
		path := natsauth.WorkerCredsPath(dir)
		if err := os.WriteFile(path, []byte("not creds"), 0o600); err != nil {
			t.Fatal(err)
		}
		srv, _ := startWithIdentity(t, dir)
		nc, err := nats.Connect(srv.ClientURL(), nats.UserCredentials(path))
		if err != nil {
			t.Fatalf("the damaged .creds was not issued again: %v", err)
		}
		nc.Close()
	})
}
