package templates

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herald-notify/herald/internal/testutil"
)

// fixtures is the repository's copy of the recorded WhatsApp traffic (testdata/SOURCES.md).
var fixtures = testutil.WhatsAppFixtures()

func cassetteStrings(t *testing.T, name string) []string { return testutil.CassetteStrings(t, name) }

// cassetteJSON returns the non-empty bodies of a cassette; each must be JSON.
func cassetteJSON(t *testing.T, name string) []string {
	t.Helper()
	var out []string
	for _, s := range cassetteStrings(t, name) {
		if s == "" {
			continue
		}
		if !json.Valid([]byte(s)) {
			t.Fatalf("%s: extracted body is not JSON: %.200s", name, s)
		}
		out = append(out, s)
	}
	return out
}

func TestCassetteExtraction(t *testing.T) {
	t.Parallel()
	bodies := cassetteJSON(t, "send_template_with_success_response_by_passing_components_json.yml")
	if len(bodies) != 2 {
		t.Fatalf("got %d bodies, want request and response", len(bodies))
	}
	want := `{"messaging_product":"whatsapp","recipient_type":"individual","to":13437772910,"type":"template","template":{"name":"sample_shipping_confirmation","language":{"code":"en_US"},"components":[{"type":"body","parameters":[{"type":"TEXT","text":"2 hours"}]}]}}`
	if bodies[0] != want {
		t.Fatalf("request body:\n got %s\nwant %s", bodies[0], want)
	}
}

func TestFixtureListingParses(t *testing.T) {
	t.Parallel()
	bodies := cassetteJSON(t, "get_templates.yml")
	if len(bodies) != 1 {
		t.Fatalf("got %d bodies, want 1", len(bodies))
	}
	defs, after, err := ParseListing([]byte(bodies[0]))
	if err != nil {
		t.Fatal(err)
	}
	if len(defs) != 25 {
		t.Fatalf("parsed %d definitions, want all 25", len(defs))
	}
	if after != "" {
		t.Errorf("after = %q, want empty: the page has cursors but no next", after)
	}
	byKey := map[string]*Definition{}
	for _, d := range defs {
		if d.ParameterFormat != FormatPositional || d.Status != StatusApproved {
			t.Errorf("%s: format %s status %s", legacyKey(d.Name, d.Language), d.ParameterFormat, d.Status)
		}
		byKey[legacyKey(d.Name, d.Language)] = d
	}
	hw := byKey["hello_world.en_US"]
	if hw == nil || hw.ID != "711633970112948" || hw.Category != CategoryMarketing || len(hw.Components) != 3 {
		t.Fatalf("hello_world.en_US = %+v", hw)
	}
	if got := hw.Components[1].Text; !strings.HasPrefix(got, "Welcome and congratulations!! This message demonstrates your ability") || !strings.Contains(got, "Platform\u2019s Cloud API") {
		t.Errorf("hello_world body = %q", got)
	}
	ht := byKey["sample_happy_hour_announcement.pt_BR"]
	if ht == nil || ht.PreviousCategory != "APPOINTMENT_UPDATE" || ht.Components[0].Format != HeaderVideo ||
		!strings.Contains(ht.Components[1].Text, "\nLocal: {{1}}\nHor\u00e1rio: {{2}}") {
		t.Fatalf("sample_happy_hour_announcement.pt_BR = %+v", ht)
	}
	if got := ht.prog.body.keys; len(got) != 2 || got[0] != "1" || got[1] != "2" {
		t.Errorf("compiled body variables = %v", got)
	}
	pf := byKey["sample_purchase_feedback.en_US"]
	if b := pf.Components[3].Buttons; len(b) != 1 || b[0].Type != ButtonURL || b[0].URL != "https://www.example.com/" {
		t.Errorf("purchase feedback buttons = %+v", b)
	}
}

func TestFixtureListingNextPage(t *testing.T) {
	t.Parallel()
	page := `{"data":[{"name":"a","language":"ru","components":[{"type":"BODY","text":"x"}]}],
		"paging":{"cursors":{"before":"B","after":"QVFIU"},"next":"https://graph.facebook.com/v21.0/1/message_templates?after=QVFIU"}}`
	defs, after, err := ParseListing([]byte(page))
	if err != nil || len(defs) != 1 || after != "QVFIU" {
		t.Fatalf("ParseListing = %d defs, after %q, err %v", len(defs), after, err)
	}
	_, _, err = ParseListing([]byte(`{"data":[{"name":"ok","language":"ru","components":[{"type":"BODY","text":"x"}]},{"name":"bad","language":"ru","components":[]}]}`))
	if err == nil || !strings.Contains(err.Error(), "entry 1") {
		t.Fatalf("invalid entry: err = %v, want one naming entry 1", err)
	}
}

func TestFixtureTemplateByID(t *testing.T) {
	t.Parallel()
	bodies := cassetteJSON(t, "get_a_template_by_id.yml")
	d, err := ParseDefinition([]byte(bodies[0]))
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != StatusPending || d.ParameterFormat != FormatPositional || d.Language != "nl" {
		t.Fatalf("got %+v", d)
	}
	if ex := d.Components[0].Example; ex == nil || len(ex.BodyText) != 1 || ex.BodyText[0][1] != "860198-230332" {
		t.Errorf("example = %+v", ex)
	}
	b := d.Components[1].Buttons
	if b[0].Type != ButtonPhoneNumber || b[0].PhoneNumber != "+59898400766" || b[1].URL != "https://www.luckyshrub.com/support" {
		t.Errorf("buttons = %+v", b)
	}
}

func TestFixtureNamedTemplate(t *testing.T) {
	t.Parallel()
	bodies := cassetteJSON(t, "create_a_template_with_named_parameters.yml")
	d, err := ParseDefinition([]byte(bodies[0])) // the request: parameter_format "named"
	if err != nil {
		t.Fatal(err)
	}
	if d.ParameterFormat != FormatNamed {
		t.Fatalf("parameter_format = %q, want NAMED (upper-cased)", d.ParameterFormat)
	}
	if got := d.prog.keys; len(got) != 2 || got[0] != "name" || got[1] != "order_number" {
		t.Errorf("params = %v", got)
	}
	ex := d.Components[0].Example.BodyTextNamedParams
	if len(ex) != 2 || ex[1] != (NamedExample{ParamName: "order_number", Example: "860198-230332"}) {
		t.Errorf("named examples = %+v", ex)
	}
	var resp struct{ ID, Status string }
	if err := json.Unmarshal([]byte(bodies[1]), &resp); err != nil || resp.Status != StatusPending {
		t.Errorf("response = %+v, %v", resp, err)
	}
}

func TestFixtureDefinitionExamples(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join(fixtures, "templates", "definitions-examples.json"))
	if err != nil {
		t.Fatal(err)
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		t.Fatal(err)
	}
	if len(all) != 7 {
		t.Fatalf("%d examples", len(all))
	}
	for name, raw := range all {
		d, err := ParseDefinition(raw)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if d.Name != name {
			t.Errorf("%s: name %q", name, d.Name)
		}
		// A definition survives our own encoding: what Put stores parses back the same.
		enc, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseDefinition(enc)
		if err != nil {
			t.Errorf("%s: re-parse: %v", name, err)
			continue
		}
		again, _ := json.Marshal(back)
		if !bytes.Equal(enc, again) {
			t.Errorf("%s: round trip changed:\n%s\n%s", name, enc, again)
		}
	}

	// COPY_CODE's example is a string in Meta's JSON and stays one.
	d, _ := ParseDefinition(all["coupon_code_fall2023_25off"])
	cc := d.Components[2].Buttons[1]
	if cc.Type != ButtonCopyCode || len(cc.Example) != 1 || cc.Example[0] != "250FF" {
		t.Fatalf("copy code button = %+v", cc)
	}
	enc, _ := json.Marshal(cc)
	if string(enc) != `{"type":"COPY_CODE","example":"250FF"}` {
		t.Errorf("copy code button encodes as %s", enc)
	}
	seasonal, _ := ParseDefinition(all["seasonal_promotion"])
	if h := seasonal.prog.header; h == nil || len(h.keys) != 1 || h.keys[0] != HeaderParam {
		t.Errorf("positional header variable should read params[%q]: %+v", HeaderParam, h)
	}
}

// TestRenderWhiteMatchesFixtureSend renders the listed sample_shipping_confirmation with the
// value of the recorded send and compares with the recorded request's "template" object.
func TestRenderWhiteMatchesFixtureSend(t *testing.T) {
	t.Parallel()
	defs, _, err := ParseListing([]byte(cassetteJSON(t, "get_templates.yml")[0]))
	if err != nil {
		t.Fatal(err)
	}
	var def *Definition
	for _, d := range defs {
		if d.Name == "sample_shipping_confirmation" && d.Language == "en_US" {
			def = d
		}
	}
	var req struct {
		Template json.RawMessage `json:"template"`
	}
	body := cassetteJSON(t, "send_template_with_success_response_by_passing_components_json.yml")[0]
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		t.Fatal(err)
	}

	wt, err := def.RenderWhite(Input{Params: map[string]string{"1": "2 hours"}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(wt)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"sample_shipping_confirmation","language":{"code":"en_US"},"components":[{"type":"body","parameters":[{"type":"text","text":"2 hours"}]}]}`
	if string(got) != want {
		t.Fatalf("rendered\n got %s\nwant %s", got, want)
	}
	// The recorded request spelled the parameter type "TEXT"; the API takes either case and
	// its documentation writes "text", which is what Herald sends. Everything else is equal
	// byte for byte.
	recorded := strings.Replace(string(req.Template), `"type":"TEXT"`, `"type":"text"`, 1)
	if string(got) != recorded {
		t.Fatalf("rendered\n got %s\nrecorded %s", got, req.Template)
	}
}
