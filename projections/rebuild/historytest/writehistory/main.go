// Command writehistory writes a synthetic ICP history (historytest.Write)
// into the SQLite event store of a data directory, for measuring icpctl
// rebuild and verify on large histories:
//
//	go run ./projections/rebuild/historytest/writehistory -data-dir /tmp/hist -icps 690000 -update-every 5 -delete-every 20
//
// writes 690,000 creates, two updates of every fifth ICP and deletes of one
// in twenty: 1,000,500 events. The appends go through the store's group
// commit from many writers at once, so each transaction holds many events.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/icpservice/icp/events/sqlitestore"
	"github.com/icpservice/icp/projections/rebuild/historytest"
)

func main() {
	dir := flag.String("data-dir", "", "data directory (created); the history goes into its events.db")
	spec := historytest.Spec{}
	flag.IntVar(&spec.ICPs, "icps", 100_000, "ICPs created")
	flag.IntVar(&spec.UpdateEvery, "update-every", 0, "every n-th ICP is updated twice (0: none)")
	flag.IntVar(&spec.DeleteEvery, "delete-every", 0, "every n-th ICP is deleted (0: none)")
	flag.IntVar(&spec.Writers, "writers", 128, "concurrent appenders")
	flag.Parse()
	if err := run(*dir, spec); err != nil {
		fmt.Fprintln(os.Stderr, "writehistory:", err)
		os.Exit(1)
	}
}

func run(dir string, spec historytest.Spec) error {
	if dir == "" || spec.ICPs < 1 {
		return fmt.Errorf("want -data-dir and -icps >= 1")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, "events.db"), sqlitestore.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	start := time.Now()
	if _, err := historytest.Write(ctx, st, spec); err != nil {
		return err
	}
	head, err := st.Head(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("wrote %d ICPs, head position %d, in %s\n", spec.ICPs, head, time.Since(start).Round(time.Millisecond))
	return st.Close()
}
