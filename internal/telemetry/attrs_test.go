package telemetry_test

import (
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/herald-notify/herald/internal/telemetry"
)

func TestAttrs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kv   []string
		want attribute.Set
	}{
		{nil, attribute.NewSet()},
		{[]string{"channel", "white"}, attribute.NewSet(attribute.String("channel", "white"))},
		{[]string{"channel", "sms"}, attribute.NewSet(attribute.String("channel", "sms"))},
		{[]string{"sender", "white", "reason", "rate"}, attribute.NewSet(attribute.String("sender", "white"), attribute.String("reason", "rate"))},
		{[]string{"a", "1", "b", "2", "c", "3", "d", "4"}, attribute.NewSet(attribute.String("a", "1"), attribute.String("b", "2"),
			attribute.String("c", "3"), attribute.String("d", "4"))},
	}
	for range 2 { // the second pass reads the cache
		for _, tt := range tests {
			got := metric.NewAddConfig([]metric.AddOption{telemetry.Attrs(tt.kv...)}).Attributes()
			if !got.Equals(&tt.want) {
				t.Fatalf("Attrs(%q) = %v, want %v", tt.kv, got.Encoded(attribute.DefaultEncoder()), tt.want.Encoded(attribute.DefaultEncoder()))
			}
		}
	}
}
