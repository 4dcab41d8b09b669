package phone_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/herald-notify/herald/internal/phone"
)

func TestNormalize(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		raw    string
		region string
		want   string // empty: must fail with ErrInvalid
	}{
		{"E.164", "+79001234567", "RU", "+79001234567"},
		{"national with trunk 8 and dashes", "8 900 123-45-67", "RU", "+79001234567"},
		{"national digits only", "89001234567", "RU", "+79001234567"},
		{"national without trunk prefix", "900 123 45 67", "RU", "+79001234567"},
		{"international with brackets", "+7 (900) 123-45-67", "RU", "+79001234567"},
		{"international with dots", "+7.900.123.45.67", "RU", "+79001234567"},
		{"surrounding whitespace", " \t+7 900 123 45 67\n", "RU", "+79001234567"},
		{"full-width digits", "８９００１２３４５６７", "RU", "+79001234567"},
		{"tel URI", "tel:+7-900-123-45-67", "RU", "+79001234567"},
		{"Moscow landline", "8 (495) 123-45-67", "RU", "+74951234567"},
		{"toll free", "8-800-555-35-35", "RU", "+78005553535"},
		{"region in lower case", "8 900 123-45-67", "ru", "+79001234567"},
		{"international ignores region", "+1 650-253-0000", "RU", "+16502530000"},
		{"US national", "(650) 253-0000", "US", "+16502530000"},
		{"German national", "030 123456", "DE", "+4930123456"},
		{"Kazakhstan shares +7", "+7 701 123 45 67", "RU", "+77011234567"},
		{"idempotent on its output", "+74951234567", "US", "+74951234567"},

		{"empty", "", "RU", ""},
		{"blank", "   ", "RU", ""},
		{"letters", "not a number", "RU", ""},
		{"emergency short code", "112", "RU", ""},
		{"too short", "+7 900 123", "RU", ""},
		{"too long", "+7 900 123 45 67 89", "RU", ""},
		{"unassigned range", "+7 000 000-00-00", "RU", ""},
		{"unknown country code", "+999 123 456 789", "RU", ""},
		{"national without a region", "8 900 123-45-67", "", ""},
		{"national with unknown region", "8 900 123-45-67", "XX", ""},
		{"RU national read as US", "8 900 123-45-67", "US", ""},
		{"over 64 characters", "+7 900 123-45-67" + strings.Repeat(" ", 60) + "0", "RU", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := phone.Normalize(tc.raw, tc.region)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("Normalize(%q, %q) = %q, want an error", tc.raw, tc.region, got)
				}
				if !errors.Is(err, phone.ErrInvalid) {
					t.Errorf("error %v does not match ErrInvalid", err)
				}
				if got != "" {
					t.Errorf("Normalize returned %q with its error", got)
				}
				// Errors end up in logs: they must never carry the whole number.
				if d := digits(tc.raw); len(d) >= 7 && strings.Contains(digits(err.Error()), d) {
					t.Errorf("error %q reveals the number %q", err, tc.raw)
				}
				return
			}
			if err != nil {
				t.Fatalf("Normalize(%q, %q): %v", tc.raw, tc.region, err)
			}
			if got != tc.want {
				t.Fatalf("Normalize(%q, %q) = %q, want %q", tc.raw, tc.region, got, tc.want)
			}
			again, err := phone.Normalize(got, "ZZ")
			if err != nil || again != got {
				t.Errorf("Normalize(%q) of its own output = %q, %v", got, again, err)
			}
		})
	}
}

func TestMask(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in, want string
	}{
		{"+79001234567", "+7900*****67"},
		{"79001234567", "7900*****67"},
		{"+16502530000", "+1650*****00"},
		{"+7 (900) 123-45-67", "+7 (9***********67"},
		{"8 900 123-45-67", "8 90*********67"},
		{"1234567", "*******"},
		{"+6834002", "********"},
		{"+790012", "*******"},
		{"1234567890", "1234****90"},
		{"+44", "***"},
		{"123456", "******"},
		{"+79001", "******"},
		{"ab", "**"},
		{"", ""},
		{"ж", "*"},
		{"+7900жжжж67", "+7900****67"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			if got := phone.Mask(tc.in); got != tc.want {
				t.Errorf("Mask(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestMaskReveals checks the rule for any length: at most the first 5 characters (4 when
// there is no leading plus) and the last 2 are shown, the length is kept so the masked
// value still reads as a number of the right size, and short input is hidden completely.
func TestMaskReveals(t *testing.T) {
	t.Parallel()
	for n := 0; n <= 40; n++ {
		for _, prefix := range []string{"", "+"} {
			in := prefix + strings.Repeat("9", n)
			t.Run(fmt.Sprintf("%d runes", utf8.RuneCountInString(in)), func(t *testing.T) {
				t.Parallel()
				out := []rune(phone.Mask(in))
				r := []rune(in)
				if len(out) != len(r) {
					t.Fatalf("Mask(%q) = %q: length changed", in, string(out))
				}
				head, tail := 5, 2
				if prefix == "" {
					head = 4
				}
				if len(r) <= 9 { // too short to hide a middle: hidden completely
					head, tail = 0, 0
				}
				for i, c := range out {
					hidden := i >= head && i < len(r)-tail
					if hidden && c != '*' {
						t.Fatalf("Mask(%q) = %q reveals position %d", in, string(out), i)
					}
					if !hidden && c != r[i] {
						t.Fatalf("Mask(%q) = %q changed shown position %d", in, string(out), i)
					}
				}
			})
		}
	}
}

func TestDigits(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"+79001234567", "79001234567"},
		{"79001234567", "79001234567"},
		{"+", ""},
		{"", ""},
		{"++7", "+7"}, // only the one leading plus of E.164 goes
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			if got := phone.Digits(tc.in); got != tc.want {
				t.Errorf("Digits(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestTimeZones(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want string // the first zone; empty: no zones at all
	}{
		{"+74951234567", "Europe/Moscow"},
		{"+79001234567", "Europe/Moscow"},
		{"+16502530000", "America/Los_Angeles"},
		{"+4930123456", "Europe/Berlin"},
		{"", ""},
		{"garbage", ""},
		{"84951234567", ""}, // not E.164: no region to read it in
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got := phone.TimeZones(tc.in)
			if tc.want == "" {
				if len(got) != 0 {
					t.Fatalf("TimeZones(%q) = %q, want none", tc.in, got)
				}
				return
			}
			if len(got) == 0 || got[0] != tc.want {
				t.Fatalf("TimeZones(%q) = %q, want %q first", tc.in, got, tc.want)
			}
		})
	}
}

func digits(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}
