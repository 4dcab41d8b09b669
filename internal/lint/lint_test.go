package lint

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/herald-notify/herald/internal/templates"
)

// parse decodes a definition without validating it, the way LintJSON does.
func parse(t *testing.T, js string) *templates.Definition {
	t.Helper()
	var d templates.Definition
	if err := json.Unmarshal([]byte(js), &d); err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	return &d
}

// def writes a definition: category, parameter format and components as JSON.
func def(category, format, components string) string {
	return fmt.Sprintf(`{"name":"t","language":"ru","category":%q,"parameter_format":%q,"components":[%s]}`, category, format, components)
}

func body(text, example string) string {
	if example == "" {
		return fmt.Sprintf(`{"type":"BODY","text":%q}`, text)
	}
	return fmt.Sprintf(`{"type":"BODY","text":%q,"example":%s}`, text, example)
}

func buttons(bs ...string) string {
	return `{"type":"BUTTONS","buttons":[` + strings.Join(bs, ",") + `]}`
}

func qr(text string) string { return fmt.Sprintf(`{"type":"QUICK_REPLY","text":%q}`, text) }

func urlButton(url, example string) string {
	if example == "" {
		return fmt.Sprintf(`{"type":"URL","text":"Открыть","url":%q}`, url)
	}
	return fmt.Sprintf(`{"type":"URL","text":"Открыть","url":%q,"example":[%q]}`, url, example)
}

const okBody = `{"type":"BODY","text":"Ваш заказ готов к выдаче."}`

func TestStructure(t *testing.T) {
	t.Parallel()
	long := func(n int) string { return "Текст " + strings.Repeat("ж", n-6) }
	phone := `{"type":"PHONE_NUMBER","text":"Позвонить","phone_number":"+74951234567"}`
	tests := []struct {
		name string
		def  string
		want []string // "severity code component span-text", in Lint's order
	}{
		{"clean positional", def("UTILITY", "", body("Заказ {{1}} готов к выдаче до {{2}}.", `{"body_text":[["1","2"]]}`)), nil},
		{"clean named", def("UTILITY", "named", body("Заказ {{order}} готов к выдаче до {{until}}.",
			`{"body_text_named_params":[{"param_name":"order","example":"1"},{"param_name":"until","example":"2"}]}`)), nil},
		{"body 1024 ok", def("UTILITY", "", body(long(1024), "")), nil},
		{"body 1025", def("UTILITY", "", body(long(1025), "")), []string{"error body_too_long body ж"}},
		{"header and footer 60 ok", def("UTILITY", "", `{"type":"HEADER","format":"TEXT","text":"`+long(60)+`"},`+okBody+`,{"type":"FOOTER","text":"`+long(60)+`"}`), nil},
		{"header and footer 61", def("UTILITY", "", `{"type":"HEADER","format":"TEXT","text":"`+long(61)+`"},`+okBody+`,{"type":"FOOTER","text":"`+long(61)+`"}`),
			[]string{"error header_too_long header ж", "error footer_too_long footer ж"}},
		{"gap", def("UTILITY", "", body("Заказ {{1}} и {{3}} готов.", `{"body_text":[["1","2","3"]]}`)),
			[]string{"error var_gap body {{3}}"}},
		{"mixed", def("UTILITY", "NAMED", body("Заказ {{order}} готов до {{1}}.", `{"body_text_named_params":[{"param_name":"order","example":"1"}]}`)),
			[]string{"error var_mixed body {{1}}"}},
		{"named in positional", def("UTILITY", "", body("Заказ {{order}} готов.", "")),
			[]string{"error var_format_mismatch body {{order}}"}},
		{"positional in named", def("UTILITY", "NAMED", body("Заказ {{1}} готов.", "")),
			[]string{"error var_format_mismatch body {{1}}"}},
		{"upper-case name", def("UTILITY", "NAMED", body("Заказ {{Order}} готов.", "")),
			[]string{"error var_malformed body {{Order}}"}},
		{"spaces in braces", def("UTILITY", "", body("Заказ {{ 1 }} готов.", "")),
			[]string{"error var_malformed body {{ 1 }}"}},
		{"unclosed", def("UTILITY", "", body("Заказ {{1 готов.", "")),
			[]string{"error var_malformed body {{1 готов."}},
		{"named repeated, example twice", def("UTILITY", "NAMED", body("Заказ {{order}} и снова {{order}} готов.",
			`{"body_text_named_params":[{"param_name":"order","example":"1"},{"param_name":"order","example":"2"}]}`)),
			[]string{"error example_duplicate body ", "warning var_repeated body {{order}}"}},
		{"named example missing and extra", def("UTILITY", "NAMED", body("Заказ {{order}} готов.",
			`{"body_text_named_params":[{"param_name":"other","example":"1"}]}`)),
			[]string{"warning example_extra body ", "error missing_example body {{order}}"}},
		{"at start", def("UTILITY", "", body("  {{1}}, ваш заказ готов.", `{"body_text":[["1"]]}`)),
			[]string{"error var_at_start body {{1}}"}},
		{"at end", def("UTILITY", "", body("Ваш заказ готов, {{1}} \n", `{"body_text":[["1"]]}`)),
			[]string{"error var_at_end body {{1}}"}},
		{"adjacent", def("UTILITY", "", body("Заказ {{1}} {{2}} готов.", `{"body_text":[["1","2"]]}`)),
			[]string{"error var_adjacent body {{1}} {{2}}"}},
		{"hyphen is not adjacent", def("UTILITY", "", body("Рейс {{1}}-{{2}} подтверждён.", `{"body_text":[["1","2"]]}`)), nil},
		{"examples short", def("UTILITY", "", `{"type":"HEADER","format":"TEXT","text":"Заказ {{1}}"},`+body("Заказ {{1}} и {{2}} готов.", `{"body_text":[["1"]]}`)),
			[]string{"error missing_example header {{1}}", "error missing_example body {{2}}"}},
		{"empty example value", def("UTILITY", "", body("Заказ {{1}} готов.", `{"body_text":[[" "]]}`)),
			[]string{"error missing_example body {{1}}"}},
		{"header two variables", def("UTILITY", "", `{"type":"HEADER","format":"TEXT","text":"Заказ {{1}} {{2}}","example":{"header_text":["a","b"]}},`+okBody),
			[]string{"error header_too_many_vars header {{2}}"}},
		{"footer variable", def("UTILITY", "", okBody+`,{"type":"FOOTER","text":"Отписаться: {{1}}"}`),
			[]string{"error footer_variable footer {{1}}"}},
		{"media header without sample", def("UTILITY", "", `{"type":"HEADER","format":"IMAGE"},`+okBody),
			[]string{"warning missing_media_example header "}},
		{"no body", def("UTILITY", "", `{"type":"FOOTER","text":"Подпись"}`), []string{"error no_body template "}},
		{"two bodies", def("UTILITY", "", okBody+","+okBody), []string{"error duplicate_component template "}},
		{"no category", def("", "", okBody), []string{"warning no_category template "}},
		{"unknown category", def("PROMO", "", okBody), []string{"error unknown_category template "}},
		{"bad name", `{"name":"Order Ready","language":"ru","category":"UTILITY","components":[` + okBody + `]}`,
			[]string{"error bad_name template "}},
		{"buttons ok", def("UTILITY", "", okBody+","+buttons(qr("Да"), qr("Нет"), urlButton("https://shop.example/o/{{1}}", "https://shop.example/o/1"), phone)), nil},
		{"three URL buttons", def("UTILITY", "", okBody+","+buttons(urlButton("https://a.example/", ""), urlButton("https://b.example/", ""), urlButton("https://c.example/", ""))),
			[]string{"error too_many_url_buttons buttons "}},
		{"two phone buttons", def("UTILITY", "", okBody+","+buttons(phone, phone)), []string{"error too_many_phone_buttons buttons "}},
		{"eleven quick replies", def("UTILITY", "", okBody+","+buttons(qr("1"), qr("2"), qr("3"), qr("4"), qr("5"), qr("6"), qr("7"), qr("8"), qr("9"), qr("10"), qr("11"))),
			[]string{"error too_many_buttons buttons ", "error too_many_quick_replies buttons "}},
		{"ten quick replies ok", def("UTILITY", "", okBody+","+buttons(qr("1"), qr("2"), qr("3"), qr("4"), qr("5"), qr("6"), qr("7"), qr("8"), qr("9"), qr("10"))), nil},
		{"not grouped", def("UTILITY", "", okBody+","+buttons(qr("Да"), phone, qr("Нет"))), []string{"error buttons_not_grouped buttons "}},
		{"copy code in utility", def("UTILITY", "", okBody+`,{"type":"BUTTONS","buttons":[{"type":"COPY_CODE","example":"A1"}]}`),
			[]string{"error copy_code_not_marketing buttons "}},
		{"copy code in marketing", def("MARKETING", "", okBody+`,{"type":"BUTTONS","buttons":[{"type":"COPY_CODE","example":"A1"}]}`), nil},
		{"label too long", def("UTILITY", "", okBody+","+buttons(qr("Подтвердить получение заказа"))), []string{"error button_text_too_long buttons[0] аза"}},
		{"label missing", def("UTILITY", "", okBody+","+buttons(qr(""))), []string{"error button_text_missing buttons[0] "}},
		{"url variable not at end", def("UTILITY", "", okBody+","+buttons(urlButton("https://shop.example/{{1}}/track", "https://shop.example/1/track"))),
			[]string{"error url_var_not_at_end buttons[0].url {{1}}"}},
		{"url two variables", def("UTILITY", "", okBody+","+buttons(urlButton("https://shop.example/{{1}}/{{2}}", "https://shop.example/1/2"))),
			[]string{"error url_var_not_at_end buttons[0].url {{1}}", "error url_too_many_vars buttons[0].url {{2}}"}},
		{"url variable in host", def("UTILITY", "", okBody+","+buttons(urlButton("https://{{1}}", "https://shop.example"))),
			[]string{"error url_var_in_host buttons[0].url {{1}}"}},
		{"url variable without example", def("UTILITY", "", okBody+","+buttons(urlButton("https://shop.example/o/{{1}}", ""))),
			[]string{"error missing_example buttons[0].url {{1}}"}},
		{"url without url", def("UTILITY", "", okBody+","+buttons(`{"type":"URL","text":"Открыть"}`)),
			[]string{"error button_url_missing buttons[0].url "}},
		{"phone without number", def("UTILITY", "", okBody+","+buttons(`{"type":"PHONE_NUMBER","text":"Позвонить"}`)),
			[]string{"error button_phone_missing buttons[0] "}},
		{"limited time offer in utility", def("UTILITY", "", okBody+`,{"type":"LIMITED_TIME_OFFER"}`),
			[]string{"error promo_in_utility template "}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := parse(t, tc.def)
			var got []string
			for _, f := range lintChecked(t, d) {
				got = append(got, fmt.Sprintf("%s %s %s %s", f.Severity, f.Code, f.Component, f.Span.Text))
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
			// Lint never passes what the catalogue refuses.
			if _, err := templates.ParseDefinition([]byte(tc.def)); err != nil && !HasErrors(Lint(d)) {
				t.Errorf("ParseDefinition refuses it (%v) but Lint finds no error", err)
			}
		})
	}
}

func TestLintJSON(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{``, `nope`, `[]`, `"x"`, `{"name":"t"}`, `{"components":"x"}`} {
		if fs, err := LintJSON([]byte(bad)); !errors.Is(err, ErrNotTemplate) || fs != nil {
			t.Errorf("LintJSON(%q) = %v, %v; want ErrNotTemplate", bad, fs, err)
		}
	}
	// A definition ParseDefinition refuses is still linted, and the findings name why.
	js := `{"name":"t","language":"ru","category":"utility","components":[{"type":"body","text":"Скидка на заказ {{1}} и {{3}} сегодня.","example":{"body_text":[["a","b","c"]]}}]}`
	if _, err := templates.ParseDefinition([]byte(js)); err == nil {
		t.Fatal("the definition should be invalid for ParseDefinition")
	}
	fs, err := LintJSON([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, f := range fs {
		codes = append(codes, f.Code)
	}
	if want := []string{"promo_in_utility", "var_gap"}; !reflect.DeepEqual(codes, want) {
		t.Errorf("codes %v, want %v", codes, want)
	}
	// JSON shape of a finding.
	out, _ := json.Marshal(fs[0])
	want := `{"code":"promo_in_utility","severity":"error","component":"body","span":{"start":0,"end":6,"text":"Скидка"},"reason":"promotional wording in a UTILITY template: Meta rejects it or recategorises it as MARKETING"}`
	if string(out) != want {
		t.Errorf("JSON\n got %s\nwant %s", out, want)
	}
}

// Lint leaves the caller's definition as it was and answers the same every time.
func TestLintPureAndDeterministic(t *testing.T) {
	t.Parallel()
	js := def("utility", "", `{"type":"header","format":"text","text":"Распродажа!"},`+
		body("{{1}} скидка -20%, опрос и казино {{2}}", "")+`,{"type":"footer","text":"Пройдите анкету"},`+
		buttons(qr("Да"), `{"type":"url","text":"Скидка","url":"https://{{1}}/x"}`))
	d := parse(t, js)
	before, _ := json.Marshal(d)
	first := lintChecked(t, d)
	after, _ := json.Marshal(d)
	if string(before) != string(after) {
		t.Errorf("Lint modified the definition:\n%s\n%s", before, after)
	}
	for range 5 {
		if again := Lint(parse(t, js)); !reflect.DeepEqual(first, again) {
			t.Fatalf("different answers:\n%s\n%s", describe(first), describe(again))
		}
	}
	// Sorted: by component in reading order, then by position.
	order := []string{"header", "body", "footer", "buttons[0]", "buttons[1]", "buttons[1].url"}
	last, lastStart := -1, -1
	for _, f := range first {
		i := indexOf(order, f.Component)
		if i < 0 {
			t.Fatalf("unexpected component %q", f.Component)
		}
		if i < last || i == last && f.Span.Start < lastStart {
			t.Errorf("not sorted:\n%s", describe(first))
			break
		}
		last, lastStart = i, f.Span.Start
	}
}

func indexOf(ss []string, s string) int {
	for i, x := range ss {
		if x == s {
			return i
		}
	}
	return -1
}

func TestHasErrors(t *testing.T) {
	t.Parallel()
	if HasErrors(nil) || HasErrors([]Finding{{Severity: Warning}}) || !HasErrors([]Finding{{Severity: Warning}, {Severity: Error}}) {
		t.Error("HasErrors is wrong")
	}
	if Lint(nil) != nil {
		t.Error("Lint(nil) should be nil")
	}
}

func TestFormat(t *testing.T) {
	t.Parallel()
	fs := Lint(withBody("", "Скидка на заказ {{1}}\nсегодня."))
	var b strings.Builder
	Format(&b, "order.json", fs)
	want := "order.json: warning no_category template: no category: Meta requires one; linted as UTILITY\n" +
		"order.json: error promo_in_utility body[0:6]: promotional wording in a UTILITY template: Meta rejects it or recategorises it as MARKETING \u2014 \"Скидка\"\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	Format(&b, "x.json", []Finding{{Code: "var_at_end", Severity: Error, Component: "body", Span: Span{Start: 3, End: 8, Text: "{{1}}\n"}, Reason: "r"}})
	if got := b.String(); got != "x.json: error var_at_end body[3:8]: r \u2014 \"{{1}}\\n\"\n" {
		t.Errorf("got %q", got)
	}
}

// Herald's own sample templates lint clean (a bonus balance reminder is utility).
func TestSampleDefinitions(t *testing.T) {
	t.Parallel()
	for _, d := range templates.SampleDefinitions() {
		if fs := lintChecked(t, d); len(fs) != 0 {
			t.Errorf("%s: want no finding, got\n%s", d.Name, describe(fs))
		}
	}
}
