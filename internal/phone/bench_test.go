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
		{"E164_invalid", "+70000000000"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = phone.Normalize(bc.raw, "RU")
			}
		})
	}
}

// realisticMix is an importer's CSV in miniature: mostly Russian mobiles, then the other
// large senders' countries, a few landlines, toll-free numbers and shared-code neighbours
// (Kazakhstan on +7, Canada and the Caribbean on +1, Jersey on +44) that make
// libphonenumber search for the region.
var realisticMix = []string{
	"+79001234567", "+79161234567", "+79261234567", "+79031234567", "+79501234567",
	"+79871234567", "+79991234567", "+79211234567", "+74951234567", "+78123456789",
	"+77011234567", // KZ mobile on +7
	"+16502530000", "+12125551234", "+14155552671", "+16135550123", "+18765550123",
	"+447911123456", "+442071838750", "+447400123456", "+447797123456", // +44 7797: Jersey
	"+4915123456789", "+491701234567", "+4930123456",
	"+8613812345678", "+8618612345678", "+861012345678",
	"+919876543210", "+918123456789",
	"+5511912345678", "+6281234567890", "+2348031234567", "+380501234567", "+998901234567",
	"+971501234567", "+905321234567", "+393123456789", "+33612345678",
}

// BenchmarkNormalizeMix is Normalize over realisticMix, all valid E.164: the importer's and
// the worker's common case.
func BenchmarkNormalizeMix(b *testing.B) {
	for _, n := range realisticMix {
		if _, err := phone.Normalize(n, "RU"); err != nil {
			b.Fatalf("Normalize(%q): %v", n, err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_, _ = phone.Normalize(realisticMix[i], "RU")
		if i++; i == len(realisticMix) {
			i = 0
		}
	}
}
