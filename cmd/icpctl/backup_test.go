package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/sqlitestore"
	"github.com/icpservice/icp/internal/natsauth"
	"github.com/icpservice/icp/platform/datadir"
	"github.com/icpservice/icp/projections/rebuild/historytest"
)

// list returns the ids of the caller's ICPs, in the list's order.
func (s *service) list(t *testing.T) []string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.base+"/api/v1/entities/icps", nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := s.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("list: %d", resp.StatusCode)
	}
	var icps []struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&icps); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(icps))
	for i, icp := range icps {
		ids[i] = icp.ID
	}
	return ids
}

// createN creates n ICPs and returns their ids.
func (s *service) createN(t *testing.T, n int, name string) []string {
	t.Helper()
	var ids []string
	for i := range n {
		id, err := s.create(s.client(), fmt.Sprintf("%s %d", name, i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// generationOf returns the generation the event store in dir holds now.
func generationOf(t *testing.T, dir string) string {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(dir, datadir.EventsFile), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	g, err := st.Generation(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// busGenerations returns the icp-generation header and ICP id of the first
// message on ICP_EVENTS and of the last ICPCreated message, read from the
// running service's embedded NATS.
func (s *service) busGenerations(t *testing.T, dir string) (first, firstICP, last, lastICP string) {
	t.Helper()
	nc, err := nats.Connect(s.NATSURL(), nats.UserCredentials(natsauth.ServiceCredsPath(dir)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	str, err := js.Stream(ctx, events.BusStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := str.GetMsg(ctx, str.CachedInfo().State.FirstSeq)
	if err != nil {
		t.Fatal(err)
	}
	lm, err := str.GetLastMsgForSubject(ctx, events.Subject(events.TypeICPCreated))
	if err != nil {
		t.Fatal(err)
	}
	return m.Header.Get(events.HeaderGeneration), m.Header.Get(events.HeaderSubject),
		lm.Header.Get(events.HeaderGeneration), lm.Header.Get(events.HeaderSubject)
}

// checkRealigned asserts the state a restore or a realign must leave: icpd
// ready, the list holding exactly want in order, a new create readable
// after them, and every message published since under a generation that
// is the store's and not old.
func checkRealigned(t *testing.T, dir string, want []string, old string) {
	t.Helper()
	svc := startService(t, dir)
	defer svc.stop()
	if got := svc.list(t); !slices.Equal(got, want) {
		t.Fatalf("list after the restore:\n got %v\nwant %v (the backup's ICPs, each once)", got, want)
	}
	fresh := svc.createN(t, 1, "after the restore")
	if got := svc.list(t); !slices.Equal(got, append(slices.Clone(want), fresh...)) {
		t.Fatalf("list after a new create:\n got %v\nwant %v then %v", got, want, fresh)
	}
	first, firstICP, last, lastICP := svc.busGenerations(t, dir)
	gen := generationOf(t, dir)
	if gen == old || first != gen || last != gen {
		t.Errorf("generations: store %q (was %q), first message %q, last %q", gen, old, first, last)
	}
	if firstICP != want[0] || lastICP != fresh[0] {
		t.Errorf("bus from %s to %s, want from %s (published again) to %s", firstICP, lastICP, want[0], fresh[0])
	}
}

func TestBackupWhileServingThenRestoreRealignsEverything(t *testing.T) {
	dir := t.TempDir()
	set := filepath.Join(t.TempDir(), "backup")
	svc := startService(t, dir)
	before := svc.createN(t, 3, "before the backup")
	code, out, errOut := icpctl(t, "backup", "--data-dir", dir, "--to", set)
	if code != 0 || !strings.Contains(out, "up to position 3") {
		t.Fatalf("backup: exit %d, %q, %q", code, out, errOut)
	}
	after := svc.createN(t, 2, "after the backup")
	svc.stop()
	old := generationOf(t, dir)

	for _, name := range []string{"", datadir.EventsFile, datadir.DevKeyFile, manifestFile, datadir.NATSAuthDir, filepath.Join(datadir.NATSAuthDir, datadir.ServiceCredsFile)} {
		info, err := os.Stat(filepath.Join(set, name))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s in the backup has mode %v: others may read it", name, info.Mode().Perm())
		}
	}

	code, out, errOut = icpctl(t, "restore", "--data-dir", dir, "--from", set)
	if code != 0 || !strings.Contains(out, "restored the event store up to position 3") || !strings.Contains(out, "generation") {
		t.Fatalf("restore: exit %d, %q, %q", code, out, errOut)
	}
	checkRealigned(t, dir, before, old)
	for _, id := range after {
		if slices.Contains(before, id) {
			t.Fatalf("id %s created after the backup is among the backup's", id)
		}
	}
}

// An older events.db put back by hand (with its -wal and -shm): icpd
// refuses to publish naming the command; creates accepted meanwhile are
// kept; one realign brings everything back.
func TestOlderStoreCopiedBackByHandIsRealignedByOneCommand(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, datadir.EventsFile)
	saved := filepath.Join(t.TempDir(), "events.db")
	svc := startService(t, dir)
	before := svc.createN(t, 3, "before the copy")
	svc.stop()
	copyFiles(t, db, saved)
	svc = startService(t, dir)
	svc.createN(t, 2, "lost with the copy")
	svc.stop()
	old := generationOf(t, dir)

	copyFiles(t, saved, db)
	svc = startServiceUnready(t, dir)
	waitFor(t, 30*time.Second, "icpd not ready naming the realign command", func() bool {
		err := svc.Ready(context.Background())
		return err != nil && strings.Contains(err.Error(), "icpctl realign")
	})
	// A create while the relay refuses is acknowledged (pending) and
	// recorded; realign must have it published and listed.
	id, err := svc.create(svc.client(), "while refused")
	if err != nil {
		t.Fatalf("create while the relay refuses: %v", err)
	}
	before = append(before, id)
	svc.stop()

	code, out, errOut := icpctl(t, "realign", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "purged") || !strings.Contains(out, "rebuilt") {
		t.Fatalf("realign: exit %d, %q, %q", code, out, errOut)
	}
	checkRealigned(t, dir, before, old)
}

func TestRestoreRefusesWhileTheStoreIsOpenAndADamagedSet(t *testing.T) {
	dir := t.TempDir()
	set := filepath.Join(t.TempDir(), "backup")
	seedStore(t, dir, historytest.Spec{ICPs: 2})
	if code, _, errOut := icpctl(t, "backup", "--data-dir", dir, "--to", set); code != 0 {
		t.Fatalf("backup: %q", errOut)
	}
	if code, _, errOut := icpctl(t, "backup", "--data-dir", dir, "--to", set); code == 0 || !strings.Contains(errOut, "exists") {
		t.Fatalf("backup over an existing set: exit %d, %q", code, errOut)
	}

	// On a new host: an empty data directory, no bus yet.
	fresh := t.TempDir()
	if code, out, errOut := icpctl(t, "restore", "--data-dir", fresh, "--from", set); code != 0 || !strings.Contains(out, "rebuilt") {
		t.Fatalf("restore into an empty directory: exit %d, %q, %q", code, out, errOut)
	}
	if code, out, errOut := icpctl(t, "verify", "--data-dir", fresh); code != 0 {
		t.Fatalf("verify after the restore: exit %d, %q, %q", code, out, errOut)
	}
	if generationOf(t, fresh) == generationOf(t, dir) {
		t.Error("the restored store kept the generation of the one it was backed up from")
	}
	startService(t, fresh).stop()

	holdInChild(t, filepath.Join(dir, datadir.EventsFile))
	code, _, errOut := icpctl(t, "restore", "--data-dir", dir, "--from", set)
	if code == 0 || !strings.Contains(errOut, "stop icpd first") {
		t.Fatalf("restore while the store is open elsewhere: exit %d, %q", code, errOut)
	}

	other := t.TempDir()
	f, err := os.OpenFile(filepath.Join(set, datadir.EventsFile), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	f.Close()
	code, _, errOut = icpctl(t, "restore", "--data-dir", other, "--from", set)
	if code == 0 || !strings.Contains(errOut, "checksum") {
		t.Fatalf("restore of a damaged set: exit %d, %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(other, datadir.EventsFile)); !os.IsNotExist(err) {
		t.Errorf("a refused restore left %s behind: %v", datadir.EventsFile, err)
	}
}

// A manifest is outside input: restore opens and writes only the files a
// backup can hold, whatever it names.
func TestRestoreRefusesAHostileManifest(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	for name, manifest := range map[string]string{
		"path out of the set":   `{"format":1,"files":{"events.db":"` + sum + `","../events.db":"` + sum + `"}}`,
		"path out of nats-auth": `{"format":1,"files":{"events.db":"` + sum + `","nats-auth/../../x":"` + sum + `"}}`,
		"hidden file":           `{"format":1,"files":{"events.db":"` + sum + `","nats-auth/.x":"` + sum + `"}}`,
		"no event store":        `{"format":1,"files":{}}`,
		"other format":          `{"format":2,"files":{"events.db":"` + sum + `"}}`,
		"bad checksum":          `{"format":1,"files":{"events.db":"zz"}}`,
		"bad generation":        `{"format":1,"generation":"a b","files":{"events.db":"` + sum + `"}}`,
		"unknown field":         `{"format":1,"extra":1,"files":{"events.db":"` + sum + `"}}`,
		"too large":             `{"format":1,"files":{"events.db":"` + sum + `"},"generation":"` + strings.Repeat("a", maxManifestBytes) + `"}`,
	} {
		t.Run(name, func(t *testing.T) {
			set := t.TempDir()
			if err := os.WriteFile(filepath.Join(set, manifestFile), []byte(manifest), 0o600); err != nil {
				t.Fatal(err)
			}
			data := t.TempDir()
			code, _, errOut := icpctl(t, "restore", "--data-dir", data, "--from", set)
			if code == 0 || !strings.Contains(errOut, manifestFile) {
				t.Fatalf("exit %d, %q", code, errOut)
			}
			if entries, _ := os.ReadDir(data); len(entries) != 0 {
				t.Errorf("a refused restore wrote %d entries into the data directory", len(entries))
			}
		})
	}
}

// A backup taken while the store is appended to is a consistent prefix of
// the store: the events up to its head, identical, and nothing else.
func TestBackupWhileAppendingIsAPrefixOfTheStore(t *testing.T) {
	dir := t.TempDir()
	seedStore(t, dir, historytest.Spec{ICPs: 50})
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, datadir.EventsFile), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stop, done := make(chan struct{}), make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if _, err := historytest.Write(ctx, st, historytest.Spec{ICPs: 100, UpdateEvery: 3, RandomIDs: true}); err != nil {
				done <- err
				return
			}
		}
	}()
	// Taken once the writer is under way, while it appends.
	waitFor(t, 30*time.Second, "appends under way", func() bool {
		h, err := st.Head(ctx)
		return err == nil && h > 100
	})
	set := filepath.Join(t.TempDir(), "backup")
	code, out, errOut := icpctl(t, "backup", "--data-dir", dir, "--to", set)
	if code != 0 {
		t.Fatalf("backup: exit %d, %q, %q", code, out, errOut)
	}
	m, err := readManifest(set)
	if err != nil {
		t.Fatal(err)
	}
	// The writer goes on past the copy's head, then stops.
	waitFor(t, 30*time.Second, "appends past the backup", func() bool {
		h, err := st.Head(ctx)
		return err == nil && h > m.Head
	})
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	gen, head, err := storeFacts(ctx, filepath.Join(set, datadir.EventsFile), true)
	if err != nil {
		t.Fatal(err)
	}
	live := readAll(t, st)
	if head != m.Head || head < 100 || head >= uint64(len(live)) || gen == "" {
		t.Fatalf("backup head %d (manifest %d, generation %q); the store holds %d events", head, m.Head, gen, len(live))
	}
	copied, err := sqlitestore.Open(ctx, filepath.Join(set, datadir.EventsFile), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer copied.Close()
	got := readAll(t, copied)
	if uint64(len(got)) != head {
		t.Fatalf("the copy holds %d events up to position %d", len(got), head)
	}
	for i, r := range got {
		if w := live[i]; r.ID != w.ID || r.Position != w.Position || r.StreamID != w.StreamID || r.Version != w.Version || string(r.Data) != string(w.Data) {
			t.Fatalf("event %d of the copy is %s at %d, the store's is %s at %d", i, r.ID, r.Position, w.ID, w.Position)
		}
	}
}
