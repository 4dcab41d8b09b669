package telemetry

import (
	"context"
	"log/slog"
	"slices"
)

// Lazy wraps h so that Logger.With costs almost nothing until a record is logged. A worker
// derives a logger with the job id and the masked number for every job, and most jobs log
// nothing at the configured level: the JSON handler would format those attributes each time
// (4% of a busy worker's CPU) for nothing. Lazy keeps them aside and formats them with the
// first record that is enabled.
func Lazy(h slog.Handler) slog.Handler {
	if l, ok := h.(*lazyHandler); ok {
		return l
	}
	return &lazyHandler{h: h}
}

type lazyHandler struct {
	h     slog.Handler
	attrs []slog.Attr // pending, not yet given to h
}

var _ slog.Handler = (*lazyHandler)(nil)

func (l *lazyHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return l.h.Enabled(ctx, level)
}

func (l *lazyHandler) Handle(ctx context.Context, r slog.Record) error {
	return l.resolve().Handle(ctx, r)
}

func (l *lazyHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return l
	}
	return &lazyHandler{h: l.h, attrs: append(slices.Clip(l.attrs), attrs...)}
}

func (l *lazyHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return l
	}
	// Pending attributes belong outside the group: hand them over first.
	return &lazyHandler{h: l.resolve().WithGroup(name)}
}

func (l *lazyHandler) resolve() slog.Handler {
	if len(l.attrs) == 0 {
		return l.h
	}
	return l.h.WithAttrs(l.attrs)
}
