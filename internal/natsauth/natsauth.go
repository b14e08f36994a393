// Package natsauth is the identity of the embedded NATS server: an operator,
// a system account and the service's account, whose nkey seeds are kept in
// the data directory, and the credentials files (.creds, a user JWT and its
// nkey seed) of the clients that may connect to it. The .creds files are
// the form `nats --creds FILE` and nats.go's nats.UserCredentials read.
//
// Everything lives in <data-dir>/nats-auth (mode 0700), every file mode
// 0600. A restart reads the same seeds, so the identity and every .creds
// file handed out stay valid.
//
// The nkeys and JWTs are made with github.com/nats-io/nkeys and
// github.com/nats-io/jwt/v2, the libraries nats-server itself verifies them
// with; only the file handling is written here.
package natsauth

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/icpservice/icp/events"
	"github.com/icpservice/icp/events/watermark"
	"github.com/icpservice/icp/platform/datadir"
	"github.com/icpservice/icp/platform/private"
)

// Files of the identity, under datadir.NATSAuthDir.
const (
	operatorSeedFile = "operator.nk"
	systemSeedFile   = "system.nk"
	accountSeedFile  = "account.nk"

	// maxFileBytes bounds what is read from any file of the identity; a
	// .creds file is about 1 KiB.
	maxFileBytes = 64 << 10
)

// ServiceCredsPath is where icpd writes its own credentials under dataDir.
func ServiceCredsPath(dataDir string) string {
	return filepath.Join(datadir.NATSAuth(dataDir), datadir.ServiceCredsFile)
}

// WorkerCredsPath is where icpd writes the workers' credentials under dataDir.
func WorkerCredsPath(dataDir string) string {
	return filepath.Join(datadir.NATSAuth(dataDir), datadir.WorkerCredsFile)
}

// WorkerPermissions is what a worker's user may do: look at streams and
// consumers, create and use consumers (events/consumer makes its durable),
// acknowledge, create the dead-letter stream and publish dead letters on
// icp.dlq.>, read ICP_EVENTS by sequence and keep a watermark in
// ICP_WATERMARKS (events/watermark; not the projector's). It may not publish on icp.events.> or icp.replay.>, nor
// create, change, purge or delete the event streams, nor touch the
// projector's durable or dead-letter as the projector. Subscriptions are
// not restricted: reading events is what a worker is for.
func WorkerPermissions() jwt.Permissions {
	const projector = "projector" // projections/projector's DefaultDurable
	return jwt.Permissions{Pub: jwt.Permission{Deny: jwt.StringList{
		"$JS.API.CONSUMER.*.*." + projector,
		"$JS.API.CONSUMER.*.*." + projector + ".>",
		"$JS.API.CONSUMER.*.*.*." + projector,
		"$JS.ACK.*." + projector + ".>",
		events.DLQSubject(projector),
		"$KV." + watermark.Bucket + "." + events.BusStream + "." + projector,
	}, Allow: jwt.StringList{
		"$JS.API.INFO",
		"$JS.API.STREAM.INFO.*",
		"$JS.API.STREAM.NAMES",
		"$JS.API.STREAM.LIST",
		"$JS.API.STREAM.CREATE." + events.DLQStream,
		"$JS.API.CONSUMER.>",
		"$JS.ACK.>",
		"$JS.FC.>",
		events.DLQSubjects,
		// A durable's watermark (events/watermark): the messages of
		// ICP_EVENTS by sequence, and its own key in the bucket.
		"$JS.API.STREAM.MSG.GET." + events.BusStream,
		"$JS.API.DIRECT.GET." + events.BusStream,
		"$JS.API.STREAM.CREATE.KV_" + watermark.Bucket,
		"$JS.API.STREAM.MSG.GET.KV_" + watermark.Bucket,
		"$JS.API.DIRECT.GET.KV_" + watermark.Bucket + ".>",
		"$KV." + watermark.Bucket + ".>",
	}}}
}

// Creds is one client's credentials, as written to Path.
type Creds struct {
	Path string
	JWT  string // the user JWT, signed by the service's account
	Seed string // the user's nkey seed
}

// Identity is what the embedded server trusts and what its clients present.
type Identity struct {
	// Operator is the trusted operator; it names SystemAccount.
	Operator *jwt.OperatorClaims
	// SystemAccount is the public key of the system account.
	SystemAccount string
	// Account is the public key of the service's account: the one that
	// holds the streams (JetStream enabled, no limits).
	Account string
	// AccountJWTs maps the public key of each account (the system account
	// and the service's) to its JWT, signed by the operator.
	AccountJWTs map[string]string
	// Service and Worker are the credentials written to ServiceCredsFile
	// and WorkerCredsFile.
	Service, Worker Creds
}

// LoadOrCreate reads the identity under datadir.NATSAuth(dataDir), creating what is
// missing: the folder (0700), the operator, system and account seeds (the
// first writer wins when two processes start at once), and the .creds files.
// A .creds file that is not one of this account's, or that grants other
// permissions than this build issues, is written again with the same user
// key where it holds one. A file of the identity that is not a regular file,
// that group or others may read or write, or a seed that is not an nkey seed
// of its kind is refused with an error naming the file: the process does not
// start rather than trust or replace a key someone may rely on.
func LoadOrCreate(dataDir string) (*Identity, error) {
	dir, err := privateDir(dataDir)
	if err != nil {
		return nil, err
	}
	op, err := loadOrCreateSeed(filepath.Join(dir, operatorSeedFile), nkeys.PrefixByteOperator)
	if err != nil {
		return nil, err
	}
	sys, err := loadOrCreateSeed(filepath.Join(dir, systemSeedFile), nkeys.PrefixByteAccount)
	if err != nil {
		return nil, err
	}
	acc, err := loadOrCreateSeed(filepath.Join(dir, accountSeedFile), nkeys.PrefixByteAccount)
	if err != nil {
		return nil, err
	}
	id, err := signIdentity(op, sys, acc)
	if err != nil {
		return nil, err
	}
	if id.Service, err = ensureCreds(filepath.Join(dir, datadir.ServiceCredsFile), acc, id.Account, "icpd", jwt.Permissions{}); err != nil {
		return nil, err
	}
	if id.Worker, err = ensureCreds(filepath.Join(dir, datadir.WorkerCredsFile), acc, id.Account, "worker", WorkerPermissions()); err != nil {
		return nil, err
	}
	return id, nil
}

// privateDir returns the identity's folder under dataDir, created (0700)
// when missing, and refuses it when group or others may access it.
func privateDir(dataDir string) (string, error) {
	if dataDir == "" {
		return "", errors.New("natsauth: data directory is empty")
	}
	dir := datadir.NATSAuth(dataDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("natsauth: %w", err)
	}
	if info, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("natsauth: %w", err)
	} else if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("natsauth: %s is accessible to other users (mode %#o); run chmod 700 on it", dir, perm)
	}
	return dir, nil
}

// signIdentity is the identity of the operator op, the system account sys
// and the service's account acc, its JWTs signed by op; its credentials are
// left to the caller.
func signIdentity(op, sys, acc nkeys.KeyPair) (*Identity, error) {
	opPub, _ := op.PublicKey()
	sysPub, _ := sys.PublicKey()
	accPub, _ := acc.PublicKey()

	oc := jwt.NewOperatorClaims(opPub)
	oc.Name = "icp"
	oc.SystemAccount = sysPub
	opJWT, err := oc.Encode(op)
	if err != nil {
		return nil, fmt.Errorf("natsauth: operator: %w", err)
	}
	if oc, err = jwt.DecodeOperatorClaims(opJWT); err != nil {
		return nil, fmt.Errorf("natsauth: operator: %w", err)
	}

	id := &Identity{Operator: oc, SystemAccount: sysPub, Account: accPub, AccountJWTs: map[string]string{}}
	sc := jwt.NewAccountClaims(sysPub)
	sc.Name = "SYS"
	ac := jwt.NewAccountClaims(accPub)
	ac.Name = "ICP"
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{
		MemoryStorage: jwt.NoLimit, DiskStorage: jwt.NoLimit, Streams: jwt.NoLimit, Consumer: jwt.NoLimit,
		MaxAckPending: jwt.NoLimit,
	}
	for _, c := range []*jwt.AccountClaims{sc, ac} {
		token, err := c.Encode(op)
		if err != nil {
			return nil, fmt.Errorf("natsauth: account %s: %w", c.Name, err)
		}
		id.AccountJWTs[c.Subject] = token
	}
	return id, nil
}

// loadOrCreateSeed reads the nkey seed at path, creating it first when there
// is none.
func loadOrCreateSeed(path string, kind nkeys.PrefixByte) (nkeys.KeyPair, error) {
	data, err := readPrivate(path)
	if errors.Is(err, fs.ErrNotExist) {
		kp, cerr := nkeys.CreatePair(kind)
		if cerr != nil {
			return nil, fmt.Errorf("natsauth: %w", cerr)
		}
		seed, _ := kp.Seed()
		if err := writeNew(path, append(seed, '\n')); err != nil {
			return nil, err
		}
		data, err = readPrivate(path)
	}
	if err != nil {
		return nil, err
	}
	kp, err := nkeys.FromSeed(bytes.TrimSpace(data))
	if err != nil {
		return nil, fmt.Errorf("natsauth: %s holds no nkey seed: %w", path, err)
	}
	pub, _ := kp.PublicKey()
	if !nkeys.IsValidPublicKey(pub) || nkeys.Prefix(pub) != kind {
		return nil, fmt.Errorf("natsauth: %s holds a seed of another kind (want %s)", path, kind)
	}
	return kp, nil
}

// ensureCreds returns the credentials at path, writing them again when the
// file does not hold a user of this account with exactly perms.
func ensureCreds(path string, acc nkeys.KeyPair, accPub, name string, perms jwt.Permissions) (Creds, error) {
	data, err := readPrivate(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Creds{}, err
	}
	var user nkeys.KeyPair
	if err == nil {
		if c, ok := validCreds(data, accPub, name, perms); ok {
			c.Path = path
			return c, nil
		}
		user, _ = jwt.ParseDecoratedUserNKey(data) // keep the user's key if the file holds one
	}
	if user == nil {
		if user, err = nkeys.CreateUser(); err != nil {
			return Creds{}, fmt.Errorf("natsauth: %w", err)
		}
	}
	userPub, _ := user.PublicKey()
	uc := jwt.NewUserClaims(userPub)
	uc.Name = name
	uc.Permissions = perms
	token, err := uc.Encode(acc)
	if err != nil {
		return Creds{}, fmt.Errorf("natsauth: user %s: %w", name, err)
	}
	seed, _ := user.Seed()
	file, err := jwt.FormatUserConfig(token, seed)
	if err != nil {
		return Creds{}, fmt.Errorf("natsauth: user %s: %w", name, err)
	}
	if err := replace(path, file); err != nil {
		return Creds{}, err
	}
	return Creds{Path: path, JWT: token, Seed: string(seed)}, nil
}

// validCreds reports whether data is a .creds file of a user of accPub named
// name with exactly perms, and no expiry.
func validCreds(data []byte, accPub, name string, perms jwt.Permissions) (Creds, bool) {
	token, err := jwt.ParseDecoratedJWT(data)
	if err != nil {
		return Creds{}, false
	}
	user, err := jwt.ParseDecoratedUserNKey(data)
	if err != nil {
		return Creds{}, false
	}
	uc, err := jwt.DecodeUserClaims(token)
	if err != nil {
		return Creds{}, false
	}
	userPub, _ := user.PublicKey()
	var vr jwt.ValidationResults
	uc.Validate(&vr)
	if vr.IsBlocking(true) || uc.Issuer != accPub || uc.IssuerAccount != "" || uc.Subject != userPub ||
		uc.Name != name || uc.Expires != 0 || !reflect.DeepEqual(uc.Permissions, perms) {
		return Creds{}, false
	}
	seed, _ := user.Seed()
	return Creds{JWT: token, Seed: string(seed)}, true
}

// readPrivate reads a file of the identity (see private.ReadFile).
func readPrivate(path string) ([]byte, error) {
	data, err := private.ReadFile(path, maxFileBytes)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("natsauth: %w", err)
	}
	return data, nil
}

// writeNew writes a file of the identity unless it exists (see
// private.WriteNew): of two processes creating the same seed at once the
// first wins and the other reads its seed.
func writeNew(path string, data []byte) error {
	if err := private.WriteNew(path, data); err != nil {
		return fmt.Errorf("natsauth: %w", err)
	}
	return nil
}

// replace writes a file of the identity atomically (see private.Replace).
func replace(path string, data []byte) error {
	if err := private.Replace(path, data); err != nil {
		return fmt.Errorf("natsauth: %w", err)
	}
	return nil
}
