package app

import (
	"io"
	"log/slog"

	"github.com/icpservice/icp/internal/config"
	"github.com/icpservice/icp/platform/redact"
)

// NewLogger returns the process logger: text in development mode, JSON
// otherwise. No line it writes carries a credential of the configured URLs
// (see Scrubber), whoever logs it.
func NewLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if cfg.Dev {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(Scrubber(cfg).Handler(h))
}

// Scrubber masks the credentials of every URL in cfg (--event-store,
// --read-model, --nats, --otlp-endpoint, --auth-jwks-url) wherever they
// appear; nil when none carries one.
func Scrubber(cfg config.Config) *redact.Scrubber {
	return redact.NewScrubber(cfg.EventStore, cfg.ReadModel, cfg.NATSURL, cfg.OTLPEndpoint, cfg.AuthJWKSURL)
}
