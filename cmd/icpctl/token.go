package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/icpservice/icp/api/auth"
	"github.com/icpservice/icp/platform/datadir"
)

// TokenCmd prints a bearer token for icpd in development mode (--dev): the
// token is signed with the key in the data directory, which icpd verifies
// with. The key is created on first use, so the command may run before icpd.
type TokenCmd struct {
	DataDir string        `name:"data-dir" env:"ICP_DATA_DIR" default:"./data" type:"path" help:"icpd's data directory (holds the development key)."`
	User    string        `name:"user" required:"" help:"User id (the token's sub), e.g. user_alice."`
	Org     string        `name:"org" help:"Active organisation id; without it the caller acts in its personal scope."`
	Admin   bool          `name:"admin" help:"Make the caller an admin of --org."`
	TTL     time.Duration `name:"ttl" default:"1h" help:"Token lifetime (at most 168h)."`
}

func (c *TokenCmd) claims() auth.DevClaims {
	return auth.DevClaims{UserID: c.User, OrgID: c.Org, Admin: c.Admin, TTL: c.TTL}
}

// Validate is called by kong after parsing: invalid flags are a usage error
// and no key is created for them.
func (c *TokenCmd) Validate() error {
	if c.User == "" {
		return errors.New("--user is required")
	}
	return c.claims().Validate()
}

// Run prints the token and a newline on stdout, nothing else; a note on
// stderr when the key had to be created.
func (c *TokenCmd) Run(g *Globals) error {
	path := filepath.Join(c.DataDir, datadir.DevKeyFile)
	_, statErr := os.Stat(path)
	key, err := auth.LoadOrCreateDevKey(c.DataDir)
	if err != nil {
		return err
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		fmt.Fprintf(g.Stderr, "icpctl: created the development key %s; run icpd --dev with --data-dir %s to accept its tokens\n", key.Path(), c.DataDir)
	}
	token, err := key.Mint(c.claims())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(g.Stdout, token)
	return err
}
