package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/relay"
	"github.com/icpservice/icp/events/sqlitestore"
	"github.com/icpservice/icp/internal/natsauth"
	"github.com/icpservice/icp/internal/natsserver"
	"github.com/icpservice/icp/platform/datadir"
	"github.com/icpservice/icp/projections/rebuild/historytest"
)

// streamMessages returns every message of a JetStream stream, in order.
func streamMessages(t *testing.T, nc *nats.Conn, name string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// checkReplayed fails unless msgs are exactly recs, in order, as the relay
// would publish them but on the replay subjects.
func checkReplayed(t *testing.T, msgs []*jetstream.RawStreamMsg, recs []events.Recorded) {
	t.Helper()
	if len(msgs) != len(recs) {
		t.Fatalf("%d messages, want %d", len(msgs), len(recs))
	}
	for i, r := range recs {
		m := msgs[i]
		if m.Subject != ReplaySubjectPrefix+r.Type || m.Header.Get(nats.MsgIdHdr) != r.ID || !bytes.Equal(m.Data, r.Data) {
			t.Fatalf("message %d: subject %s, id %s, data %s; want event %s at %d", i, m.Subject, m.Header.Get(nats.MsgIdHdr), m.Data, r.ID, r.Position)
		}
		for k, v := range events.Headers(r) {
			if got := m.Header.Get(k); got != v {
				t.Fatalf("message %d: header %s = %q, want %q", i, k, got, v)
			}
		}
		back, err := events.FromHeaders(m.Header.Get, m.Data)
		if err != nil || back.ID != r.ID || back.Position != r.Position || back.Version != r.Version {
			t.Fatalf("message %d does not read back as its event: %+v, %v", i, back, err)
		}
	}
}

// With icpd stopped, republish starts the embedded NATS on the data
// directory itself; a second run inside the dedup window stores nothing.
func TestRepublishWithTheServiceStopped(t *testing.T) {
	dir := t.TempDir()
	seedStore(t, dir, historytest.Spec{ICPs: 30, UpdateEvery: 3})
	code, out, errOut := icpctl(t, "republish", "--data-dir", dir, "--from-position", "5", "--progress", "none")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	st, err := sqlitestore.Open(context.Background(), filepath.Join(dir, datadir.EventsFile), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	all := readAll(t, st)
	st.Close()
	want := all[4:]
	if !strings.Contains(out, fmt.Sprintf("republished %d events (positions 5 to %d)", len(want), len(all))) || !strings.Contains(out, fmt.Sprintf(": %d stored, 0 already held", len(want))) {
		t.Fatalf("stdout %q", out)
	}
	code, out, errOut = icpctl(t, "republish", "--data-dir", dir, "--from-position", "5", "--to-position", "12", "--progress", "none")
	if code != 0 || !strings.Contains(out, ": 0 stored, 8 already held") {
		t.Fatalf("second run: exit %d, %q %q", code, out, errOut)
	}
	code, _, errOut = icpctl(t, "republish", "--data-dir", dir, "--from-position", strconv.Itoa(len(all)+1), "--progress", "none")
	if code == 0 || !strings.Contains(errOut, "beyond the event store's last position") {
		t.Fatalf("from beyond the head: exit %d, %q", code, errOut)
	}

	// The embedded server admits only the data directory's users: the
	// replayed events are in their account.
	id, err := natsauth.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := natsserver.Start(natsserver.Config{StoreDir: filepath.Join(dir, datadir.NATSDir), Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := nats.Connect("", nats.InProcessServer(srv.Inner()), nats.UserCredentials(natsauth.ServiceCredsPath(dir)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	checkReplayed(t, streamMessages(t, nc, ReplayStream), want)
}

// With icpd running, republish goes through --nats to ICP_REPLAY and leaves
// ICP_EVENTS and the relay alone: the relay's tail stays the store's head,
// later creates are published once each, in order.
func TestRepublishBesideARunningRelay(t *testing.T) {
	dir := t.TempDir()
	svc := startService(t, dir)
	client := svc.client()
	for i := range 10 {
		if _, err := svc.create(client, fmt.Sprintf("before %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	nc, err := nats.Connect(svc.NATSURL(), nats.UserCredentials(natsauth.ServiceCredsPath(dir)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(dir, datadir.EventsFile), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	onBus := func(head uint64) func() bool {
		return func() bool {
			p, err := relay.BusPosition(context.Background(), nc)
			return err == nil && p == head
		}
	}
	waitFor(t, 30*time.Second, "the relay to publish the creates", onBus(10))

	// icpd's credentials are found in the data directory.
	code, out, errOut := icpctl(t, "republish", "--data-dir", dir, "--nats", svc.NATSURL(), "--from-position", "1", "--progress", "none")
	if code != 0 || !strings.Contains(out, "republished 10 events") {
		t.Fatalf("republish: exit %d, %q %q", code, out, errOut)
	}
	for i := range 5 {
		if _, err := svc.create(client, fmt.Sprintf("after %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "the relay to publish the later creates", onBus(15))

	all := readAll(t, st)
	checkReplayed(t, streamMessages(t, nc, ReplayStream), all[:10])
	bus := streamMessages(t, nc, events.BusStream)
	if len(bus) != len(all) {
		t.Fatalf("ICP_EVENTS holds %d messages, the store %d events", len(bus), len(all))
	}
	for i, m := range bus {
		if p, _ := strconv.ParseUint(m.Header.Get(events.HeaderPosition), 10, 64); p != all[i].Position || m.Header.Get(nats.MsgIdHdr) != all[i].ID {
			t.Fatalf("ICP_EVENTS message %d is position %d, want %d", i, p, all[i].Position)
		}
	}
}

// Without --nats, republish will not start a second NATS server on a data
// directory another process (a running icpd) is using: it publishes through
// icpd's embedded server at --embedded-nats-addr with icpd's credentials,
// and says where it looked when none answers.
func TestRepublishRefusesToStartASecondServer(t *testing.T) {
	dir := t.TempDir()
	seedStore(t, dir, historytest.Spec{ICPs: 3})
	holdInChild(t, filepath.Join(dir, datadir.EventsFile))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	silent := l.Addr().String() // nothing answers NATS there once closed
	l.Close()
	code, _, errOut := icpctl(t, "republish", "--data-dir", dir, "--embedded-nats-addr", silent, "--from-position", "1", "--progress", "none")
	if code == 0 || !strings.Contains(errOut, "another process (a running icpd?) has") || !strings.Contains(errOut, "--embedded-nats-addr "+silent) {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, datadir.NATSDir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a NATS server was started on the data directory: %v", err)
	}

	// The server of "icpd" (the process holding the store is not one, so
	// the test runs the embedded server as icpd would).
	id, err := natsauth.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := natsserver.Start(natsserver.Config{StoreDir: filepath.Join(t.TempDir(), "nats"), Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	code, out, errOut := icpctl(t, "republish", "--data-dir", dir, "--embedded-nats-addr", strings.TrimPrefix(srv.ClientURL(), "nats://"), "--from-position", "1", "--progress", "none")
	if code != 0 || !strings.Contains(out, ": 3 stored") {
		t.Fatalf("through icpd's server: exit %d, %q %q", code, out, errOut)
	}
	nc, err := nats.Connect(srv.ClientURL(), nats.UserCredentials(natsauth.ServiceCredsPath(dir)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if n := len(streamMessages(t, nc, ReplayStream)); n != 3 {
		t.Fatalf("%s holds %d messages, want 3", ReplayStream, n)
	}
}

func TestRepublishRefusesInvalidFlags(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "--from-position"},
		{[]string{"--from-position", "0"}, "at least 1"},
		{[]string{"--from-position", "9", "--to-position", "3"}, "before --from-position"},
		{[]string{"--from-position", "1", "--replay-max-age", "1m"}, "--replay-max-age"},
		{[]string{"--from-position", "1", "--event-store", "esdb://localhost:2113?tls=false"}, "--nats is required"},
	} {
		code, _, errOut := icpctl(t, append([]string{"republish", "--data-dir", dir}, tc.args...)...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want it to mention %q", tc.args, code, errOut, tc.want)
		}
	}
}
