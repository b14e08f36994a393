package redact

import (
	"context"
	"fmt"
	"log/slog"
)

// Handler returns h with every secret masked from each record's message and
// attributes (strings, errors, anything printed with fmt, inside groups
// too), so that no log line carries a credential whichever part wrote it.
// With a nil Scrubber it returns h itself: without secrets there is nothing
// to pay for.
func (s *Scrubber) Handler(h slog.Handler) slog.Handler {
	if s == nil {
		return h
	}
	return &handler{s: s, inner: h}
}

type handler struct {
	s     *Scrubber
	inner slog.Handler
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, h.s.String(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.s.attr(a))
		return true
	})
	return h.inner.Handle(ctx, out)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(as))
	for i, a := range as {
		clean[i] = h.s.attr(a)
	}
	return &handler{s: h.s, inner: h.inner.WithAttrs(clean)}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{s: h.s, inner: h.inner.WithGroup(name)}
}

// attr masks the secrets of one attribute. Values that print no secret are
// kept as they are (so numbers stay numbers); one that does becomes its
// masked text.
func (s *Scrubber) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, s.String(v.String()))
	case slog.KindGroup:
		g := v.Group()
		clean := make([]any, len(g))
		for i, ga := range g {
			clean[i] = s.attr(ga)
		}
		return slog.Group(a.Key, clean...)
	case slog.KindAny:
		var text string
		if err, ok := v.Any().(error); ok {
			text = err.Error()
		} else {
			text = fmt.Sprint(v.Any())
		}
		if clean := s.String(text); clean != text {
			return slog.String(a.Key, clean)
		}
		return slog.Attr{Key: a.Key, Value: v}
	default:
		return slog.Attr{Key: a.Key, Value: v}
	}
}
