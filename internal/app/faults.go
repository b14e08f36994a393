package app

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"

	"github.com/icpservice/icp/internal/config"
	"github.com/icpservice/icp/platform/datadir"
	"github.com/icpservice/icp/platform/private"
	"github.com/icpservice/icp/platform/redact"
	"github.com/icpservice/icp/platform/sqlite"
)

// The faults below turn what went wrong on the way up into one line an
// operator can act on: the setting, its value, the cause and what to change.

// listen opens the listener of a setting, explaining a failure in its terms.
// fix says what to do besides choosing another address.
func listen(flag, addr, alternative string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	f := &config.Fault{Flag: flag, Fix: "choose another with " + config.Setting(flag) + alternative}
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		f.Msg = fmt.Sprintf("--%s %s is in use by another process", flag, addr)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		f.Msg = fmt.Sprintf("--%s %s is not an address of this machine", flag, addr)
	case errors.Is(err, syscall.EACCES):
		f.Msg = fmt.Sprintf("--%s %s needs privileges this process lacks (ports below 1024)", flag, addr)
	default:
		f.Msg, f.Err = fmt.Sprintf("--%s %s cannot be listened on", flag, addr), err
	}
	return nil, f
}

// otherDataDir is the advice that ends every data directory fault.
var otherDataDir = "or choose another with " + config.Setting("data-dir")

// prepareDataDir creates the data directory owner-only, makes an existing
// one that others can reach owner-only (logging that it did), and checks
// that this process can write in it.
func prepareDataDir(dir string, log *slog.Logger) error {
	fault := func(msg string, err error, fix string) error {
		return &config.Fault{Flag: "data-dir", Msg: fmt.Sprintf("--data-dir %s %s", dir, msg), Err: err, Fix: fix}
	}
	if err := os.MkdirAll(dir, private.DirMode); err != nil {
		return fault("cannot be created", err, "create it, "+otherDataDir)
	}
	changed, err := private.Tighten(dir)
	switch {
	case errors.Is(err, private.ErrNotDir):
		return fault("is not a directory", nil, otherDataDir)
	case err != nil:
		return fault("is open to other users and cannot be made owner-only", err, "make it so with chmod -R go-rwx, "+otherDataDir)
	case changed > 0:
		log.Warn("the data directory was open to other users; made it owner-only", "data_dir", dir, "paths_changed", changed)
	}
	probe, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fault("is not writable", err, "give this process's user write access, "+otherDataDir)
	}
	probe.Close()
	if err := os.Remove(probe.Name()); err != nil {
		return fault("is not writable", err, "give this process's user write access, "+otherDataDir)
	}
	return nil
}

// dataFileFault explains why an SQLite file of the data directory could not
// be opened.
func dataFileFault(dir, file string, err error) error {
	f := &config.Fault{Flag: "data-dir"}
	path := filepath.Join(dir, file)
	var newer *sqlite.SchemaError
	switch {
	case errors.As(err, &newer):
		f.Msg = fmt.Sprintf("--data-dir %s holds %s from a newer release of icpd (%s)", dir, file, newer)
		f.Fix = "run that release or a later one, " + otherDataDir
	case errors.Is(err, sqlite.ErrNotDatabase):
		f.Msg = fmt.Sprintf("--data-dir %s holds %s, which is not an SQLite database", dir, file)
		f.Fix = "move " + path + " away if it is not icpd's, restore it from a backup if it is, " + otherDataDir
	default:
		f.Msg, f.Err = fmt.Sprintf("--data-dir %s: %s cannot be opened", dir, file), err
		f.Fix = "check its owner, permissions and free space, " + otherDataDir
	}
	return f
}

// eventStoreFault explains why the event store could not be opened.
func eventStoreFault(cfg config.Config, err error) error {
	if cfg.EventStore == "" {
		return dataFileFault(cfg.DataDir, datadir.EventsFile, err)
	}
	return &config.Fault{
		Flag: "event-store",
		Msg:  "--event-store " + redact.URL(cfg.EventStore) + " cannot be used",
		Err:  err,
		Fix:  "correct it with " + config.Setting("event-store") + " (esdb://host:2113?tls=false), or empty for the embedded store",
	}
}

// readModelFault explains why the read model could not be opened.
func readModelFault(cfg config.Config, err error) error {
	if cfg.ReadModel == "" {
		return dataFileFault(cfg.DataDir, datadir.ReadModelFile, err)
	}
	return &config.Fault{
		Flag: "read-model",
		Msg:  "--read-model " + redact.URL(cfg.ReadModel) + " cannot be used",
		Err:  err,
		Fix:  "correct it with " + config.Setting("read-model") + " (mongodb://host:27017/icp), or empty for the embedded read model",
	}
}

// devKeyFault explains why the development signing key could not be read
// or created.
func devKeyFault(dir string, err error) error {
	return &config.Fault{
		Flag: "data-dir",
		Msg:  fmt.Sprintf("--data-dir %s: the development signing key %s cannot be used", dir, datadir.DevKeyFile),
		Err:  err,
		Fix:  "remove it to have a new one made (tokens signed with the old one stop working), " + otherDataDir,
	}
}

// embeddedBusFault explains why the embedded NATS server did not start.
func embeddedBusFault(dir string, err error) error {
	return &config.Fault{
		Flag: "data-dir",
		Msg:  fmt.Sprintf("--data-dir %s: the embedded NATS server cannot start in %s", dir, datadir.NATS(dir)),
		Err:  err,
		Fix:  "make it a writable directory, " + otherDataDir + ", or use a NATS server with " + config.Setting("nats"),
	}
}

// busStreamsFault explains why the bus refused the relay's streams.
func busStreamsFault(cfg config.Config, err error) error {
	where := "the embedded NATS server"
	if cfg.NATSURL != "" {
		where = "--nats " + redact.URLs(cfg.NATSURL)
	}
	return &config.Fault{
		Flag: "nats",
		Msg:  where + " refused the event streams",
		Err:  err,
		Fix:  "check that JetStream is enabled there and that " + config.Setting("stream-max-age") + ", " + config.Setting("stream-max-bytes") + " and " + config.Setting("stream-duplicates") + " suit the existing stream",
	}
}

// authFault explains why the Clerk verifier could not be built.
func authFault(cfg config.Config, err error) error {
	return &config.Fault{
		Flag: "auth-jwks-url",
		Msg:  "--auth-jwks-url " + redact.URL(cfg.AuthJWKSURL) + " cannot be used",
		Err:  err,
		Fix:  "correct it with " + config.Setting("auth-jwks-url"),
	}
}

// WriteFaults writes err to w as one line per problem, each prefixed with
// prog: the problems joined by errors.Join are split apart, and each
// problem's own line breaks are folded.
func WriteFaults(w io.Writer, prog string, err error) {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			WriteFaults(w, prog, e)
		}
		return
	}
	if err != nil {
		fmt.Fprintf(w, "%s: %s\n", prog, config.OneLine(err.Error()))
	}
}
