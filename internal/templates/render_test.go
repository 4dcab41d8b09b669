package templates

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/herald-notify/herald/internal/job"
)

func mustParse(t testing.TB, s string) *Definition {
	t.Helper()
	d, err := ParseDefinition([]byte(s))
	if err != nil {
		t.Fatalf("parse %s: %v", s, err)
	}
	return d
}

func sample(t testing.TB, name string) *Definition {
	t.Helper()
	for _, d := range SampleDefinitions() {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("no sample %s", name)
	return nil
}

// Definitions the render tests share.
const (
	defPositionalHeader = `{"name":"abandoned_cart","language":"en_US","components":[
		{"type":"HEADER","format":"TEXT","text":"Forget something, {{1}}?"},
		{"type":"BODY","text":"Use code {{2}} to get {{1}} off! {{1}} only today."},
		{"type":"BUTTONS","buttons":[{"type":"QUICK_REPLY","text":"Stop"},{"type":"PHONE_NUMBER","text":"Call","phone_number":"15550051310"},{"type":"COPY_CODE","example":"25OFF"}]}]}`
	defNamedHeader = `{"name":"named_header","language":"ru","parameter_format":"named","components":[
		{"type":"header","format":"text","text":"Заказ {{order}}"},
		{"type":"body","text":"Заказ {{order}} для {{name}} готов."},
		{"type":"footer","text":"Магазин"}]}`
	defImage = `{"name":"promo_image","language":"en","components":[{"type":"HEADER","format":"IMAGE"},{"type":"BODY","text":"Hi {{1}}"}]}`
	defVideo = `{"name":"promo_video","language":"en","components":[{"type":"HEADER","format":"VIDEO"},{"type":"BODY","text":"Static body"}]}`
	defDoc   = `{"name":"receipt","language":"ru","components":[{"type":"HEADER","format":"DOCUMENT"},{"type":"BODY","text":"Чек {{1}}"}]}`
	defNoVar = `{"name":"hello_world","language":"en_US","components":[{"type":"HEADER","format":"TEXT","text":"Hello World"},{"type":"BODY","text":"Welcome!"},{"type":"FOOTER","text":"Team"},
		{"type":"BUTTONS","buttons":[{"type":"URL","text":"Site","url":"https://example.com/"}]}]}`
	defLocation = `{"name":"delivery","language":"en_US","components":[{"type":"HEADER","format":"LOCATION"},{"type":"BODY","text":"Order {{1}}"}]}`
	defMPM      = `{"name":"cart","language":"en_US","components":[{"type":"BODY","text":"Items"},{"type":"BUTTONS","buttons":[{"type":"MPM","text":"View items"}]}]}`
	defFlow     = `{"name":"signup","language":"en_US","components":[{"type":"BODY","text":"Sign up"},{"type":"BUTTONS","buttons":[{"type":"FLOW","text":"Start"}]}]}`
)

func TestRenderWhite(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		def  *Definition
		in   Input
		want string
	}{
		{
			name: "named body and URL button",
			def:  sample(t, "order_ready"),
			in: Input{
				Params:  map[string]string{"order": "123456", "address": "ул. Текстильщиков, д. 20", "until": "21.02.2021"},
				Buttons: map[string]string{"0": "123456"},
			},
			want: `{"name":"order_ready","language":{"code":"ru"},"components":[` +
				`{"type":"body","parameters":[{"type":"text","parameter_name":"order","text":"123456"},{"type":"text","parameter_name":"address","text":"ул. Текстильщиков, д. 20"},{"type":"text","parameter_name":"until","text":"21.02.2021"}]},` +
				`{"type":"button","sub_type":"url","index":"0","parameters":[{"type":"text","text":"123456"}]}]}`,
		},
		{
			name: "positional header from params header, body by position, quick reply and copy code",
			def:  mustParse(t, defPositionalHeader),
			in: Input{
				Params:  map[string]string{"header": "Pablo", "1": "10%", "2": "10OFF"},
				Buttons: map[string]string{"0": "stop-promos", "2": "10OFF"},
			},
			want: `{"name":"abandoned_cart","language":{"code":"en_US"},"components":[` +
				`{"type":"header","parameters":[{"type":"text","text":"Pablo"}]},` +
				`{"type":"body","parameters":[{"type":"text","text":"10%"},{"type":"text","text":"10OFF"}]},` +
				`{"type":"button","sub_type":"quick_reply","index":"0","parameters":[{"type":"payload","payload":"stop-promos"}]},` +
				`{"type":"button","sub_type":"COPY_CODE","index":"2","parameters":[{"type":"coupon_code","coupon_code":"10OFF"}]}]}`,
		},
		{
			name: "quick reply without payload is omitted",
			def:  mustParse(t, defPositionalHeader),
			in: Input{
				Params:  map[string]string{"header": "Pablo", "1": "10%", "2": "10OFF"},
				Buttons: map[string]string{"2": "10OFF"},
			},
			want: `{"name":"abandoned_cart","language":{"code":"en_US"},"components":[` +
				`{"type":"header","parameters":[{"type":"text","text":"Pablo"}]},` +
				`{"type":"body","parameters":[{"type":"text","text":"10%"},{"type":"text","text":"10OFF"}]},` +
				`{"type":"button","sub_type":"COPY_CODE","index":"2","parameters":[{"type":"coupon_code","coupon_code":"10OFF"}]}]}`,
		},
		{
			name: "named header shares a body variable",
			def:  mustParse(t, defNamedHeader),
			in:   Input{Params: map[string]string{"order": "42", "name": "Анна"}},
			want: `{"name":"named_header","language":{"code":"ru"},"components":[` +
				`{"type":"header","parameters":[{"type":"text","parameter_name":"order","text":"42"}]},` +
				`{"type":"body","parameters":[{"type":"text","parameter_name":"order","text":"42"},{"type":"text","parameter_name":"name","text":"Анна"}]}]}`,
		},
		{
			name: "image header",
			def:  mustParse(t, defImage),
			in:   Input{Params: map[string]string{"1": "Ann"}, Media: &job.Media{Type: job.MediaImage, URL: "https://cdn.example/a.jpg", Caption: "ignored"}},
			want: `{"name":"promo_image","language":{"code":"en"},"components":[` +
				`{"type":"header","parameters":[{"type":"image","image":{"link":"https://cdn.example/a.jpg"}}]},` +
				`{"type":"body","parameters":[{"type":"text","text":"Ann"}]}]}`,
		},
		{
			name: "video header, static body",
			def:  mustParse(t, defVideo),
			in:   Input{Media: &job.Media{Type: job.MediaVideo, URL: "https://cdn.example/v.mp4"}},
			want: `{"name":"promo_video","language":{"code":"en"},"components":[` +
				`{"type":"header","parameters":[{"type":"video","video":{"link":"https://cdn.example/v.mp4"}}]}]}`,
		},
		{
			name: "document header with filename",
			def:  mustParse(t, defDoc),
			in:   Input{Params: map[string]string{"1": "№7"}, Media: &job.Media{Type: job.MediaDocument, URL: "https://shop.example/r/7.pdf", Filename: "receipt.pdf"}},
			want: `{"name":"receipt","language":{"code":"ru"},"components":[` +
				`{"type":"header","parameters":[{"type":"document","document":{"link":"https://shop.example/r/7.pdf","filename":"receipt.pdf"}}]},` +
				`{"type":"body","parameters":[{"type":"text","text":"№7"}]}]}`,
		},
		{
			name: "no parameters at all: no components; static header, footer, static URL",
			def:  mustParse(t, defNoVar),
			want: `{"name":"hello_world","language":{"code":"en_US"}}`,
		},
		{
			name: "media for a template without a media header is not sent",
			def:  mustParse(t, defNoVar),
			in:   Input{Media: &job.Media{Type: job.MediaDocument, URL: "https://x.example/a.pdf"}},
			want: `{"name":"hello_world","language":{"code":"en_US"}}`,
		},
		{
			name: "flow button needs no parameters",
			def:  mustParse(t, defFlow),
			want: `{"name":"signup","language":{"code":"en_US"}}`,
		},
		{
			name: "definition built in Go without Validate",
			def: &Definition{Name: "built", Language: "ru", Components: []Component{
				{Type: "body", Text: "Код {{1}}"}}},
			in:   Input{Params: map[string]string{"1": "1234"}},
			want: `{"name":"built","language":{"code":"ru"},"components":[{"type":"body","parameters":[{"type":"text","text":"1234"}]}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wt, err := tt.def.RenderWhite(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.Marshal(wt)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestRenderErrors(t *testing.T) {
	t.Parallel()
	orderParams := map[string]string{"order": "1", "address": "ул. Ленина, 1", "until": "01.01.2027"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range orderParams {
			m[k] = v
		}
		for k, v := range extra {
			if v == "" {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	orderButtons := map[string]string{"0": "1"}
	tests := []struct {
		name      string
		def       *Definition
		in        Input
		text      bool // RenderText fails the same way
		want      error
		mention   []string
		permanent bool
	}{
		{"missing named params listed together", sample(t, "order_ready"), Input{Params: with(map[string]string{"address": "", "until": ""}), Buttons: orderButtons},
			true, ErrMissingParam, []string{`"address", "until"`, "order_ready.ru"}, true},
		{"a space is a value", sample(t, "order_ready"), Input{Params: with(map[string]string{"order": " "}), Buttons: orderButtons}, false, nil, nil, false},
		{"empty string value", sample(t, "booking_reminder"), Input{Params: map[string]string{"name": "", "hotel": "h", "from": "1", "to": "2"}},
			true, ErrMissingParam, []string{`"name"`}, true},
		{"missing positional header", mustParse(t, defPositionalHeader), Input{Params: map[string]string{"1": "a", "2": "b"}, Buttons: map[string]string{"2": "c"}},
			true, ErrMissingParam, []string{`"header"`}, true},
		{"extra param (typo)", sample(t, "order_ready"), Input{Params: with(map[string]string{"adress": "x"}), Buttons: orderButtons},
			true, ErrExtraParam, []string{`"adress"`, `"address"`}, true},
		{"positional given to named", sample(t, "bonus_expiring"), Input{Params: map[string]string{"name": "a", "amount": "1", "date": "d", "1": "x"}},
			true, ErrExtraParam, []string{`"1"`}, true},
		{"header param without a header variable", mustParse(t, defImage), Input{Params: map[string]string{"1": "a", "header": "b"}, Media: &job.Media{Type: "image", URL: "https://x/a.png"}},
			true, ErrExtraParam, []string{`"header"`}, true},
		{"missing URL button value", sample(t, "order_ready"), Input{Params: orderParams},
			true, ErrMissingButton, []string{"button 0", "https://shop.example/orders/", `buttons["0"]`}, true},
		{"missing copy code", mustParse(t, defPositionalHeader), Input{Params: map[string]string{"header": "a", "1": "b", "2": "c"}},
			true, ErrMissingButton, []string{"button 2", "COPY_CODE"}, true},
		{"button value for a phone button", mustParse(t, defPositionalHeader), Input{Params: map[string]string{"header": "a", "1": "b", "2": "c"}, Buttons: map[string]string{"1": "x", "2": "c"}},
			true, ErrExtraParam, []string{`index "1"`}, true},
		{"button value beyond the buttons", sample(t, "order_ready"), Input{Params: orderParams, Buttons: map[string]string{"0": "1", "3": "x"}},
			true, ErrExtraParam, []string{`"3"`}, true},
		{"button value for a static URL", mustParse(t, defNoVar), Input{Buttons: map[string]string{"0": "x"}},
			true, ErrExtraParam, []string{`"0"`}, true},
		{"no media", mustParse(t, defImage), Input{Params: map[string]string{"1": "a"}},
			false, ErrMissingMedia, []string{"IMAGE header", "image"}, true},
		{"media of the wrong type", mustParse(t, defDoc), Input{Params: map[string]string{"1": "a"}, Media: &job.Media{Type: job.MediaImage, URL: "https://x/a.png"}},
			false, ErrMissingMedia, []string{"DOCUMENT header", `"image"`}, true},
		{"body too long", sample(t, "bonus_expiring"), Input{Params: map[string]string{"name": strings.Repeat("я", 1000), "amount": "1", "date": "d"}},
			false, ErrTooLong, []string{"body", "1024"}, true},
		{"header too long", mustParse(t, defNamedHeader), Input{Params: map[string]string{"order": strings.Repeat("9", 55), "name": "a"}},
			false, ErrTooLong, []string{"header", "60"}, true},
		{"newline in a parameter", sample(t, "order_ready"), Input{Params: with(map[string]string{"address": "ул. Ленина,\n1"}), Buttons: orderButtons},
			false, ErrInvalidParam, []string{`params["address"]`}, false},
		{"tab in a parameter", sample(t, "order_ready"), Input{Params: with(map[string]string{"order": "1\t2"}), Buttons: orderButtons},
			false, ErrInvalidParam, []string{`params["order"]`}, false},
		{"five spaces in a parameter", sample(t, "order_ready"), Input{Params: with(map[string]string{"until": "1     2"}), Buttons: orderButtons},
			false, ErrInvalidParam, []string{`params["until"]`}, false},
		{"four spaces are fine", sample(t, "order_ready"), Input{Params: with(map[string]string{"until": "1    2"}), Buttons: orderButtons}, false, nil, nil, false},
		{"location header", mustParse(t, defLocation), Input{Params: map[string]string{"1": "a"}},
			false, ErrUnsupported, []string{"LOCATION"}, false},
		{"multi-product button", mustParse(t, defMPM), Input{},
			false, ErrUnsupported, []string{"MPM"}, false},
		{"carousel", mustParse(t, `{"name":"c","language":"en","components":[{"type":"BODY","text":"Hi"},{"type":"CAROUSEL","cards":[]}]}`), Input{},
			false, ErrUnsupported, []string{"CAROUSEL"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tt.def.RenderWhite(tt.in)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("RenderWhite error = %v, want %v", err, tt.want)
			}
			for _, m := range tt.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %s", err, m)
				}
			}
			if IsPermanent(err) != tt.permanent {
				t.Errorf("IsPermanent = %v, want %v", !tt.permanent, tt.permanent)
			}
			_, terr := tt.def.RenderText(tt.in)
			switch {
			case tt.text && !errors.Is(terr, tt.want):
				t.Errorf("RenderText error = %v, want %v", terr, tt.want)
			case !tt.text && terr != nil:
				t.Errorf("RenderText error = %v, want none (WhatsApp-only rule)", terr)
			}
		})
	}
}

func TestIsPermanent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("boom"), false},
		{ErrUnknownTemplate, true},
		{ErrUnknownLanguage, true},
		{ErrNotApproved, true},
		{ErrMissingParam, true},
		{ErrExtraParam, true},
		{ErrTooLong, true},
		{ErrMissingMedia, true},
		{ErrMissingButton, true},
		{ErrInvalidParam, false},
		{ErrUnsupported, false},
	}
	for _, tt := range tests {
		if got := IsPermanent(tt.err); got != tt.want {
			t.Errorf("IsPermanent(%v) = %v", tt.err, got)
		}
		if tt.err != nil {
			if got := IsPermanent(errors.Join(errors.New("ctx"), tt.err)); got != tt.want {
				t.Errorf("IsPermanent(wrapped %v) = %v", tt.err, got)
			}
		}
	}
}

func TestRenderText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		def  *Definition
		in   Input
		want string
	}{
		{
			name: "named body, footer, URL button with suffix",
			def:  sample(t, "order_ready"),
			in: Input{
				Params:  map[string]string{"order": "123456", "address": "ул. Текстильщиков, д. 20", "until": "21.02.2021"},
				Buttons: map[string]string{"0": "123456"},
			},
			want: "Ваш заказ 123456 ждёт вас в пункте выдачи по адресу ул. Текстильщиков, д. 20. Срок хранения до 21.02.2021 включительно.\n\n" +
				"Это автоматическое уведомление\n\n" +
				"Мой заказ: https://shop.example/orders/123456",
		},
		{
			name: "header, repeated variable, phone button with +, no quick reply or copy code",
			def:  mustParse(t, defPositionalHeader),
			in:   Input{Params: map[string]string{"header": "Pablo", "1": "10%", "2": "10OFF"}, Buttons: map[string]string{"0": "p", "2": "10OFF"}},
			want: "Forget something, Pablo?\n\nUse code 10OFF to get 10% off! 10% only today.\n\nCall: +15550051310",
		},
		{
			name: "named header",
			def:  mustParse(t, defNamedHeader),
			in:   Input{Params: map[string]string{"order": "42", "name": "Анна"}},
			want: "Заказ 42\n\nЗаказ 42 для Анна готов.\n\nМагазин",
		},
		{
			name: "static everything, static URL, media header left out",
			def:  mustParse(t, defNoVar),
			want: "Hello World\n\nWelcome!\n\nTeam\n\nSite: https://example.com/",
		},
		{
			name: "media header is not text",
			def:  mustParse(t, defImage),
			in:   Input{Params: map[string]string{"1": "Ann"}},
			want: "Hi Ann",
		},
		{
			name: "multi-line values are fine in text",
			def:  sample(t, "booking_reminder"),
			in:   Input{Params: map[string]string{"name": "Анна", "hotel": "Волга", "from": "12.07", "to": "15.07\n"}},
			want: "Здравствуйте, Анна! Напоминаем о брони в отеле «Волга» с 12.07 по 15.07\n. Ждём вас.\n\nИзменить бронь можно в личном кабинете",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.def.RenderText(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestParseDefinitionInvalid(t *testing.T) {
	t.Parallel()
	body := `{"type":"BODY","text":"Hi"}`
	tests := []struct {
		name, json, mention string
	}{
		{"not JSON", `{"name":`, "unexpected end"},
		{"no name", `{"language":"ru","components":[` + body + `]}`, "name"},
		{"name with a dot", `{"name":"a.b","language":"ru","components":[` + body + `]}`, "name"},
		{"upper-case name", `{"name":"Order","language":"ru","components":[` + body + `]}`, "name"},
		{"no language", `{"name":"a","components":[` + body + `]}`, "language"},
		{"bad language", `{"name":"a","language":"russian","components":[` + body + `]}`, "language"},
		{"bad parameter_format", `{"name":"a","language":"ru","parameter_format":"mixed","components":[` + body + `]}`, "MIXED"},
		{"no body", `{"name":"a","language":"ru","components":[{"type":"FOOTER","text":"f"}]}`, "no BODY"},
		{"two bodies", `{"name":"a","language":"ru","components":[` + body + `,` + body + `]}`, "more than one BODY"},
		{"empty body", `{"name":"a","language":"ru","components":[{"type":"BODY"}]}`, "BODY without text"},
		{"named variable in positional", `{"name":"a","language":"ru","components":[{"type":"BODY","text":"Hi {{name}}"}]}`, "{{name}} in a POSITIONAL"},
		{"positional variable in named", `{"name":"a","language":"ru","parameter_format":"NAMED","components":[{"type":"BODY","text":"Hi {{1}}"}]}`, "{{1}} in a NAMED"},
		{"gap in positions", `{"name":"a","language":"ru","components":[{"type":"BODY","text":"{{1}} {{3}}"}]}`, "{{2}} is missing"},
		{"not starting at 1", `{"name":"a","language":"ru","components":[{"type":"BODY","text":"{{2}}"}]}`, "{{1}} is missing"},
		{"malformed variable", `{"name":"a","language":"ru","components":[{"type":"BODY","text":"Hi {{ 1 }}"}]}`, "malformed"},
		{"upper-case variable", `{"name":"a","language":"ru","parameter_format":"named","components":[{"type":"BODY","text":"Hi {{Name}}"}]}`, "malformed"},
		{"unclosed variable", `{"name":"a","language":"ru","components":[{"type":"BODY","text":"Hi {{1"}]}`, "unclosed"},
		{"two header variables", `{"name":"a","language":"ru","components":[{"type":"HEADER","format":"TEXT","text":"{{1}} {{2}}"},` + body + `]}`, "more than one variable"},
		{"positional header variable not 1", `{"name":"a","language":"ru","components":[{"type":"HEADER","format":"TEXT","text":"{{2}}"},` + body + `]}`, "{{1}} is missing"},
		{"header too long", `{"name":"a","language":"ru","components":[{"type":"HEADER","format":"TEXT","text":"` + strings.Repeat("x", 61) + `"},` + body + `]}`, "61 characters"},
		{"body too long", `{"name":"a","language":"ru","components":[{"type":"BODY","text":"` + strings.Repeat("ж", 1025) + `"}]}`, "1025 characters"},
		{"footer variable", `{"name":"a","language":"ru","components":[` + body + `,{"type":"FOOTER","text":"{{1}}"}]}`, "footer"},
		{"URL variable in the middle", `{"name":"a","language":"ru","components":[` + body + `,{"type":"BUTTONS","buttons":[{"type":"URL","text":"x","url":"https://x.example/{{1}}/y"}]}]}`, "at its end"},
		{"two URL variables", `{"name":"a","language":"ru","components":[` + body + `,{"type":"BUTTONS","buttons":[{"type":"URL","text":"x","url":"https://x.example/{{1}}/{{2}}"}]}]}`, "at its end"},
		{"phone button without number", `{"name":"a","language":"ru","components":[` + body + `,{"type":"BUTTONS","buttons":[{"type":"PHONE_NUMBER","text":"Call"}]}]}`, "phone_number"},
		{"bad button example", `{"name":"a","language":"ru","components":[` + body + `,{"type":"BUTTONS","buttons":[{"type":"URL","url":"https://x/{{1}}","example":5}]}]}`, "example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseDefinition([]byte(tt.json))
			if !errors.Is(err, ErrInvalidDefinition) {
				t.Fatalf("error = %v, want ErrInvalidDefinition", err)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
		})
	}
}

func TestParseDefinitionNormalises(t *testing.T) {
	t.Parallel()
	d := mustParse(t, `{"name":"a","language":"ru","status":"approved","category":"utility","parameter_format":"Named",
		"components":[{"type":"header","text":"Hi {{who}}"},{"type":"body","text":"{{who}}"},{"type":"buttons","buttons":[{"type":"quick_reply","text":"Ok"}]}],
		"future_field":{"x":1}}`)
	if d.Status != StatusApproved || d.Category != CategoryUtility || d.ParameterFormat != FormatNamed {
		t.Errorf("not upper-cased: %+v", d)
	}
	c := d.Components
	if c[0].Type != ComponentHeader || c[0].Format != HeaderText || c[1].Type != ComponentBody || c[2].Buttons[0].Type != ButtonQuickReply {
		t.Errorf("components not normalised: %+v", c)
	}
	if d := mustParse(t, `{"name":"a","language":"ru","components":[{"type":"BODY","text":"x"}]}`); d.ParameterFormat != FormatPositional {
		t.Errorf("default parameter_format = %q", d.ParameterFormat)
	}
}

func BenchmarkRenderWhite(b *testing.B) {
	d := sample(b, "order_ready")
	in := Input{
		Params:  map[string]string{"order": "123456", "address": "ул. Текстильщиков, д. 20", "until": "21.02.2021"},
		Buttons: map[string]string{"0": "123456"},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.RenderWhite(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRenderText(b *testing.B) {
	d := sample(b, "order_ready")
	in := Input{
		Params:  map[string]string{"order": "123456", "address": "ул. Текстильщиков, д. 20", "until": "21.02.2021"},
		Buttons: map[string]string{"0": "123456"},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.RenderText(in); err != nil {
			b.Fatal(err)
		}
	}
}
