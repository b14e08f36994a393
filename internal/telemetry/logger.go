package telemetry

import (
	"context"
	"log/slog"
	"sync"
)

type loggerKey struct{}

// WithLogger returns ctx carrying log: the request-scoped logger, whose
// attributes (request id, correlation id, trace id) every line written on the
// request's path carries.
func WithLogger(ctx context.Context, log *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, log)
}

// WithLoggerAttrs is WithLogger(ctx, base.With(attrs...)), except that the
// logger is made only when Logger first asks for it. Most requests write no
// line of their own, and making a logger with attributes formats them at
// once: about 1% of the service's CPU under load when done for every
// request.
func WithLoggerAttrs(ctx context.Context, base *slog.Logger, attrs ...slog.Attr) context.Context {
	return context.WithValue(ctx, loggerKey{}, &lazyLogger{base: base, attrs: attrs})
}

type lazyLogger struct {
	once  sync.Once
	base  *slog.Logger
	attrs []slog.Attr
	log   *slog.Logger
}

func (l *lazyLogger) get() *slog.Logger {
	l.once.Do(func() { l.log = slog.New(l.base.Handler().WithAttrs(l.attrs)) })
	return l.log
}

// Logger returns the logger WithLogger or WithLoggerAttrs put in ctx, or
// fallback when there is none (slog.Default() when fallback is nil too).
func Logger(ctx context.Context, fallback *slog.Logger) *slog.Logger {
	switch l := ctx.Value(loggerKey{}).(type) {
	case *slog.Logger:
		if l != nil {
			return l
		}
	case *lazyLogger:
		return l.get()
	}
	if fallback != nil {
		return fallback
	}
	return slog.Default()
}
