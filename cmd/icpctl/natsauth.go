package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"

	"github.com/nats-io/nats.go"

	"github.com/icpservice/icp/internal/natsauth"
)

// NATSAuthFlags say where icpd's embedded NATS server listens and how icpctl
// authenticates to a NATS server. The environment twins are icpd's, so the
// environment that configures icpd configures icpctl too.
type NATSAuthFlags struct {
	Creds        string `name:"nats-creds" env:"ICP_NATS_CREDS" help:"NATS credentials file (.creds: user JWT and nkey seed); default: icpd's own, <data-dir>/nats-auth/icpd.creds, when it exists."`
	User         string `name:"nats-user" env:"ICP_NATS_USER" help:"NATS user name, for a server with users and passwords (password in ICP_NATS_PASSWORD)."`
	Password     string `name:"nats-password" env:"ICP_NATS_PASSWORD" help:"Password of --nats-user; prefer the environment variable to the flag."`
	EmbeddedAddr string `name:"embedded-nats-addr" env:"ICP_EMBEDDED_NATS_ADDR" default:"127.0.0.1:4222" help:"Address icpd's embedded NATS server listens on (icpd's --embedded-nats-addr)."`
}

func (f *NATSAuthFlags) validate() error {
	var errs []error
	if f.Creds != "" && f.User != "" {
		errs = append(errs, errors.New("--nats-creds and --nats-user are exclusive: choose a credentials file or a user and password"))
	}
	if f.Password != "" && f.User == "" {
		errs = append(errs, errors.New("--nats-password needs --nats-user"))
	}
	if _, _, err := net.SplitHostPort(f.EmbeddedAddr); err != nil {
		errs = append(errs, fmt.Errorf("--embedded-nats-addr %q: want host:port", f.EmbeddedAddr))
	}
	return errors.Join(errs...)
}

// options are the nats.go options that present the credentials: --nats-creds,
// --nats-user, or icpd's credentials file in dataDir when there is one.
func (f *NATSAuthFlags) options(dataDir string) ([]nats.Option, error) {
	switch {
	case f.Creds != "":
		if _, err := os.Stat(f.Creds); err != nil {
			return nil, fmt.Errorf("--nats-creds: %w", err)
		}
		return []nats.Option{nats.UserCredentials(f.Creds)}, nil
	case f.User != "":
		return []nats.Option{nats.UserInfo(f.User, f.Password)}, nil
	}
	path := natsauth.ServiceCredsPath(dataDir)
	if _, err := os.Stat(path); err == nil {
		return []nats.Option{nats.UserCredentials(path)}, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("NATS credentials: %w", err)
	}
	return nil, nil
}
