package telemetry_test

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/herald-notify/herald/internal/telemetry"
)

// TestLazy: a lazy logger writes exactly what the handler it wraps writes, groups and
// levels included.
func TestLazy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		log  func(*slog.Logger)
	}{
		{"with", func(l *slog.Logger) { l.With("job", "j1", "to", "+7900***4567").Info("sent", "channel", "white") }},
		{"nested with", func(l *slog.Logger) { l.With("a", 1).With("b", 2).Warn("x", "c", 3) }},
		{"group", func(l *slog.Logger) { l.With("a", 1).WithGroup("g").With("b", 2).Error("x", "c", 3) }},
		{"empty group", func(l *slog.Logger) { l.With("a", 1).WithGroup("").Info("x") }},
		{"below level", func(l *slog.Logger) { l.With("a", 1).Debug("hidden") }},
		{"siblings", func(l *slog.Logger) {
			base := l.With("a", 1)
			base.With("b", 2).Info("one")
			base.With("c", 3).Info("two")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var want, got bytes.Buffer
			opts := &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			}}
			tt.log(slog.New(slog.NewJSONHandler(&want, opts)))
			tt.log(slog.New(telemetry.Lazy(slog.NewJSONHandler(&got, opts))))
			if got.String() != want.String() {
				t.Fatalf("lazy:\n%s\nplain:\n%s", got.String(), want.String())
			}
			if !telemetry.Lazy(slog.NewJSONHandler(&got, opts)).Enabled(context.Background(), slog.LevelInfo) {
				t.Fatal("lazy handler disabled a level its handler enables")
			}
		})
	}
}
