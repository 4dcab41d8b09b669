package lint

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/herald-notify/herald/internal/testutil"
)

// fixtures is the repository's copy of the recorded WhatsApp traffic (testdata/SOURCES.md).
var fixtures = testutil.WhatsAppFixtures()

// cassetteBodies returns the non-empty `string: '...'` bodies of a VCR cassette.
func cassetteBodies(t *testing.T, name string) []string {
	t.Helper()
	var out []string
	for _, b := range testutil.CassetteStrings(t, name) {
		if b != "" {
			out = append(out, b)
		}
	}
	return out
}

// fixtureDefinitions returns every template definition in the fixtures, raw, keyed by
// file and name.language.
func fixtureDefinitions(t *testing.T) map[string]json.RawMessage {
	t.Helper()
	out := map[string]json.RawMessage{}
	data, err := os.ReadFile(filepath.Join(fixtures, "templates", "definitions-examples.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ex map[string]json.RawMessage
	if err := json.Unmarshal(data, &ex); err != nil {
		t.Fatal(err)
	}
	for name, raw := range ex {
		out["examples/"+name] = raw
	}
	var listing struct{ Data []json.RawMessage }
	if err := json.Unmarshal([]byte(cassetteBodies(t, "get_templates.yml")[0]), &listing); err != nil {
		t.Fatal(err)
	}
	for _, raw := range listing.Data {
		var id struct{ Name, Language string }
		_ = json.Unmarshal(raw, &id)
		out["listing/"+id.Name+"."+id.Language] = raw
	}
	out["by_id"] = json.RawMessage(cassetteBodies(t, "get_a_template_by_id.yml")[0])
	out["named_create"] = json.RawMessage(cassetteBodies(t, "create_a_template_with_named_parameters.yml")[0])
	return out
}

// TestFixtures lints every template definition in the fixtures. The complete definitions
// (with examples) are clean: the MARKETING ones promote, which MARKETING allows, and the
// UTILITY ones are plain transactional text. The listing omits examples, so every variable
// there lacks one; Meta's older samples end the body with a variable, and the purchase
// feedback template asks for a survey.
func TestFixtures(t *testing.T) {
	t.Parallel()
	defs := fixtureDefinitions(t)
	if len(defs) != 7+25+2 {
		t.Fatalf("%d fixture definitions, want 34", len(defs))
	}
	for key, raw := range defs {
		fs, err := LintJSON(raw)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		d := parse(t, string(raw))
		lintChecked(t, d)
		var got []string
		for _, f := range fs {
			if f.Code == "missing_example" || f.Code == "missing_media_example" {
				continue // checked below
			}
			got = append(got, fmt.Sprintf("%s %s %s %s", f.Severity, f.Code, f.Component, f.Span.Text))
		}
		var want []string
		switch {
		case strings.Contains(key, "sample_happy_hour_announcement"):
			want = []string{"error var_at_end body {{2}}"}
		case strings.Contains(key, "sample_movie_ticket_confirmation"):
			want = []string{"error var_at_end body {{4}}"}
		case key == "listing/sample_purchase_feedback.en_US":
			want = []string{"warning survey body feedback", "error survey buttons[0] Survey"}
		case key == "listing/sample_purchase_feedback.pt_BR":
			want = []string{"warning survey body feedback"} // Portuguese borrows the word
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", key, got, want)
		}

		// Every variable without an example is reported, once, and nothing else is.
		missing := 0
		for _, f := range fs {
			if f.Code == "missing_example" {
				missing++
			}
		}
		wantMissing := 0
		if strings.HasPrefix(key, "listing/") {
			for _, c := range normalised(d).Components {
				if c.Type == "BODY" {
					wantMissing = len(distinctVars(c.Text))
				}
			}
		}
		if missing != wantMissing {
			t.Errorf("%s: %d missing_example findings, want %d:\n%s", key, missing, wantMissing, describe(fs))
		}
	}
}

func distinctVars(text string) map[string]bool {
	m := map[string]bool{}
	for _, v := range scanVars(text) {
		m[v.key] = true
	}
	return m
}

// The promotional fixture templates, filed as UTILITY, are flagged.
func TestFixturePromotionsAsUtility(t *testing.T) {
	t.Parallel()
	defs := fixtureDefinitions(t)
	tests := []struct{ key, code, component, span string }{
		{"examples/seasonal_promotion", "promo_in_utility", "body", "Shop now"},
		{"examples/coupon_code_fall2023_25off", "promo_in_utility", "header", "Sale"},
		{"examples/coupon_code_fall2023_25off", "copy_code_not_marketing", "buttons", ""},
		{"examples/abandoned_cart", "percent_off", "body", "10% off"},
		{"examples/seasonal_promotion", "promo_in_utility", "buttons[0]", "Promos"},
	}
	for _, tc := range tests {
		d := parse(t, string(defs[tc.key]))
		d.Category = "UTILITY"
		fs := lintChecked(t, d)
		found := false
		for _, f := range fs {
			if f.Code == tc.code && f.Component == tc.component && f.Span.Text == tc.span && f.Severity == Error {
				found = true
			}
		}
		if !found {
			t.Errorf("%s as UTILITY: want error %s on %s %q, got\n%s", tc.key, tc.code, tc.component, tc.span, describe(fs))
		}
	}
}
