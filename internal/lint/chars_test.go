package lint

import (
	"fmt"
	"strings"
	"testing"
)

// TestSpansCountCharacters: positions are in characters, as a person counts them, whatever
// the script: the same wording at the same place gives the same span in Cyrillic and Latin.
func TestSpansCountCharacters(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, text, word string
		start, end       int
	}{
		// 14 Cyrillic characters before the offending word: 14, not 28.
		{"cyrillic", "Ваш заказ ждёт. Скидка на следующий {{1}}.", "Скидка", 16, 22},
		{"latin", "Your order is ready. Discount on the next {{1}}.", "Discount", 21, 29},
		{"emoji before", "📦 Заказ готов, скидка на {{1}} тоже.", "скидка", 15, 21},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := Lint(withBody("UTILITY", tc.text))
			for _, f := range fs {
				if f.Code != "promo_in_utility" {
					continue
				}
				if f.Span.Start != tc.start || f.Span.End != tc.end || f.Span.Text != tc.word {
					t.Fatalf("span %+v, want [%d:%d] %q", f.Span, tc.start, tc.end, tc.word)
				}
				var b strings.Builder
				Format(&b, "x.json", []Finding{f})
				if want := fmt.Sprintf("body[%d:%d]", tc.start, tc.end); !strings.Contains(b.String(), want) {
					t.Errorf("Format: %q does not say %s", b.String(), want)
				}
				return
			}
			t.Fatalf("no promo_in_utility finding in %+v", fs)
		})
	}
}

// TestNameFollowsMeta: the name rule runs whatever else is wrong, so a bad name is never
// hidden behind other findings, and Errors counts what both lint and add report.
func TestNameFollowsMeta(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", MaxNameLen)
	tests := []struct {
		name, tplName string
		bad           bool
	}{
		{"lower, digits, underscores", "order_ready_2", false},
		{"longest allowed", long, false},
		{"space and capitals", "Bad Name", true},
		{"hyphen", "order-ready", true},
		{"dot", "order.ready", true},
		{"cyrillic", "заказ", true},
		{"too long", long + "a", true},
		{"empty", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// A body with its own error too: the name must still be reported.
			js := fmt.Sprintf(`{"name":%q,"language":"ru","category":"UTILITY","components":[{"type":"BODY","text":"{{1}} Скидка"}]}`, tc.tplName)
			fs, err := LintJSON([]byte(js))
			if err != nil {
				t.Fatal(err)
			}
			got := 0
			for _, f := range fs {
				if f.Code == "bad_name" {
					got++
				}
			}
			if (got == 1) != tc.bad || got > 1 {
				t.Errorf("name %q: %d bad_name findings, want bad=%v (%+v)", tc.tplName, got, tc.bad, fs)
			}
			n := 0
			for _, f := range fs {
				if f.Severity == Error {
					n++
				}
			}
			if Errors(fs) != n || Errors(fs) < 2 {
				t.Errorf("Errors = %d, want %d (at least 2)", Errors(fs), n)
			}
		})
	}
}
