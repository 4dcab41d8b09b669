package templates

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestSampleDefinitions(t *testing.T) {
	t.Parallel()
	defs := SampleDefinitions()
	var names []string
	for _, d := range defs {
		names = append(names, d.Name)
	}
	if !slices.Equal(names, []string{"order_ready", "booking_reminder", "bonus_expiring"}) {
		t.Fatalf("samples = %v", names)
	}
	wantParams := map[string][]string{
		"order_ready":      {"address", "order", "until"},
		"booking_reminder": {"from", "hotel", "name", "to"},
		"bonus_expiring":   {"amount", "date", "name"},
	}
	for _, d := range defs {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			if d.Language != "ru" || d.Status != StatusApproved || d.Category != CategoryUtility || d.ParameterFormat != FormatNamed {
				t.Fatalf("%+v", d)
			}
			if !slices.Equal(d.prog.keys, wantParams[d.Name]) {
				t.Fatalf("params %v, want %v", d.prog.keys, wantParams[d.Name])
			}
			if d.prog.footer == "" {
				t.Error("no footer")
			}
			// Every variable has an example, and the examples render.
			params := map[string]string{}
			for _, ex := range d.Components[0].Example.BodyTextNamedParams {
				params[ex.ParamName] = ex.Example
			}
			for _, k := range d.prog.keys {
				if params[k] == "" {
					t.Errorf("no example for {{%s}}", k)
				}
			}
			in := Input{Params: params}
			for _, b := range d.prog.buttons {
				if b.dynamic {
					ex := d.Components[2].Buttons[0].Example
					if len(ex) != 1 || !strings.HasPrefix(ex[0], b.url) {
						t.Fatalf("URL button example %v does not fit %s", ex, b.url)
					}
					in.Buttons = map[string]string{b.index: strings.TrimPrefix(ex[0], b.url)}
				}
			}
			text, err := d.RenderText(in)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(text, "{{") {
				t.Errorf("unfilled variable in %q", text)
			}
			if _, err := d.RenderWhite(in); err != nil {
				t.Fatal(err)
			}
			// The JSON is what Meta's create API takes (and what Put stores).
			enc, _ := json.Marshal(d)
			if _, err := ParseDefinition(enc); err != nil {
				t.Fatal(err)
			}
		})
	}

	b := defs[0].Components[2].Buttons[0]
	if b.Type != ButtonURL || b.Text != "Мой заказ" || b.URL != "https://shop.example/orders/{{1}}" {
		t.Errorf("order_ready button = %+v", b)
	}
	// Fresh copies: changing one call's result does not leak into the next.
	other := SampleDefinitions()[0]
	other.Status = StatusPaused
	other.Components[0].Text = "changed"
	if again := SampleDefinitions()[0]; again.Status != StatusApproved || again.Components[0].Text == "changed" {
		t.Error("SampleDefinitions shares state between calls")
	}
}
