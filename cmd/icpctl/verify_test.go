package main

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/icpservice/icp/platform/datadir"
)

// verify passes on the read model icpd keeps, and finds a row edited behind
// the service's back, with the service running and after it stopped.
func TestVerifyFindsARowEditedBehindTheServicesBack(t *testing.T) {
	dir := t.TempDir()
	svc := startService(t, dir)
	client := svc.client()
	var ids []string
	for i := range 12 {
		id, err := svc.create(client, fmt.Sprintf("icp %d", i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if _, err := svc.rename(client, ids[1], "renamed"); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := icpctl(t, "verify", "--data-dir", dir, "--settle", "10s", "--progress", "none")
	if code != 0 || out != "" || !strings.Contains(errOut, "12 ICPs compared, 0 differ") {
		t.Fatalf("verify of an intact read model: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, datadir.ReadModelFile)+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE icps SET doc = CAST(replace(CAST(doc AS TEXT), 'renamed', 'tampered') AS BLOB) WHERE id = ?`, ids[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE icps SET version = 9 WHERE id = ?`, ids[2]); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"content\t" + ids[1] + "\tat version 2 these differ: document",
		"version\t" + ids[2] + "\tthe read model has version 9, the history version 1",
	}
	check := func(when string) {
		t.Helper()
		code, out, errOut := icpctl(t, "verify", "--data-dir", dir, "--settle", "300ms", "--progress", "none")
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if code == 0 || len(lines) != 2 || !strings.Contains(errOut, "differs from the history in 2 ICPs") {
			t.Fatalf("verify %s: exit %d, stdout %q, stderr %q", when, code, out, errOut)
		}
		for _, w := range want {
			found := false
			for _, l := range lines {
				found = found || l == w
			}
			if !found {
				t.Errorf("verify %s: %q not in %q", when, w, lines)
			}
		}
	}
	check("with icpd running")
	svc.stop()
	check("with icpd stopped")
}

func TestVerifyRefusesWhatItCannotCheck(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := icpctl(t, "verify", "--data-dir", dir); code == 0 || !strings.Contains(errOut, "no read model at") {
		t.Errorf("no read model: exit %d, %q", code, errOut)
	}
	if code, _, errOut := icpctl(t, "verify", "--data-dir", dir, "--settle", "-1s"); code == 0 || !strings.Contains(errOut, "--settle") {
		t.Errorf("negative settle: exit %d, %q", code, errOut)
	}
}
