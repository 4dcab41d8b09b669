package telemetry_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/telemetry"
)

// TestLoggerDurations: both formats spell a duration as Go does, and the JSON logs keep every
// other kind as it was.
func TestLoggerDurations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		format string
		want   string
	}{
		{"json", `"timeout":"30s"`},
		{"json", `"took":"1.5ms"`},
		{"json", `"n":3`},
		{"text", `timeout=30s`},
		{"text", `took=1.5ms`},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		telemetry.NewLogger(&b, "info", tt.format).Info("drain", "timeout", 30*time.Second, "took", 1500*time.Microsecond, "n", 3)
		if !strings.Contains(b.String(), tt.want) {
			t.Errorf("%s log %q lacks %s", tt.format, b.String(), tt.want)
		}
		if tt.format == "json" && !json.Valid(b.Bytes()) {
			t.Errorf("not JSON: %q", b.String())
		}
	}
}
