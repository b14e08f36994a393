package app_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/internal/natsauth"
)

// TestEmbeddedBusNeedsCredentials starts icpd --dev: its embedded NATS
// listens where --embedded-nats-addr says, turns away a client without
// credentials, and lets a worker with the .creds icpd wrote read the event
// stream but not publish on it. icpd itself is ready, so its own in-process
// connections were admitted with its credentials.
func TestEmbeddedBusNeedsCredentials(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	a := runApp(t, "--dev", "--addr=127.0.0.1:0", "--embedded-nats-addr="+addr, "--admin-addr=", "--data-dir="+dir, "--log-level=warn")
	if a.NATSURL() != "nats://"+addr {
		t.Fatalf("embedded NATS at %s, want nats://%s", a.NATSURL(), addr)
	}
	waitFor(t, 30*time.Second, "icpd ready", func() bool { return a.Ready(context.Background()) == nil })

	if nc, err := nats.Connect(a.NATSURL()); err == nil {
		nc.Close()
		t.Fatal("the embedded NATS admitted a client without credentials")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("without credentials: %v, want an authorization violation", err)
	}

	perm := make(chan error, 1)
	wk, err := nats.Connect(a.NATSURL(), nats.UserCredentials(natsauth.WorkerCredsPath(dir)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case perm <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatalf("worker credentials: %v", err)
	}
	defer wk.Close()
	js, _ := jetstream.New(wk)
	if _, err := js.Stream(context.Background(), events.BusStream); err != nil {
		t.Fatalf("the worker cannot see %s: %v", events.BusStream, err)
	}
	if err := wk.Publish(events.BusSubjectPrefix+"ICPCreated", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-perm:
		if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), events.BusSubjectPrefix) {
			t.Fatalf("worker publish on the event subjects: %v, want a permissions violation", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a worker's publish on the event subjects raised no permissions violation")
	}
}
