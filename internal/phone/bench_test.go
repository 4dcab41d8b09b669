package phone_test

import (
	"testing"

	"github.com/herald-notify/herald/internal/phone"
)

// BenchmarkNormalize measures the worker's per-job cost of number validation: jobs from the
// producer and the API arrive already in E.164, national input is the importer's case.
func BenchmarkNormalize(b *testing.B) {
	for _, bc := range []struct{ name, raw string }{
		{"E164", "+79001234567"},
		{"E164_US", "+16502530000"},
		{"national", "8 900 123-45-67"},
		{"invalid", "+7 000 000-00-00"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = phone.Normalize(bc.raw, "RU")
			}
		})
	}
}
