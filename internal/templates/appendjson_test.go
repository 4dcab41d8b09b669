package templates

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

// encodeRef is how the Cloud API adapter encoded a template before AppendJSON.
func encodeRef(t *testing.T, v any) string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

var jsonPieces = []string{"", "a", "order_ready", "ул. Текстильщиков", "<b>&</b>", `"q"`, `\`, "/", "\b\f\n\r\t",
	"\x00\x1f\x7f", "\u2028\u2029", "😀", "\xff", "\xe2\x80", "https://a.example/x?y=1&z=2"}

func randText(r *rand.Rand) string {
	var b strings.Builder
	for range r.IntN(3) {
		b.WriteString(jsonPieces[r.IntN(len(jsonPieces))])
	}
	return b.String()
}

func randLink(r *rand.Rand) *MediaLink {
	if r.IntN(3) != 0 {
		return nil
	}
	return &MediaLink{Link: randText(r), Filename: randText(r)}
}

// TestAppendJSONMatchesEncodingJSON holds AppendJSON to encoding/json byte for byte, on every
// sample's rendering and on random templates.
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	var cases []*WhiteTemplate
	in := Input{Params: map[string]string{}, Buttons: map[string]string{}}
	for _, k := range []string{"1", "2", "3", "header", "order", "address", "until", "name"} {
		in.Params[k] = "v<&>" + k
	}
	for _, d := range SampleDefinitions() {
		p, err := d.program()
		if err != nil {
			t.Fatal(err)
		}
		sin := Input{Params: map[string]string{}, Buttons: map[string]string{}}
		for _, k := range p.keys {
			sin.Params[k] = in.Params[k]
		}
		for _, bt := range p.buttons {
			if bt.takesValue {
				sin.Buttons[bt.index] = "x/1"
			}
		}
		if w, err := d.RenderWhite(sin); err == nil {
			cases = append(cases, w)
		}
	}
	if len(cases) == 0 {
		t.Fatal("no sample rendered")
	}
	r := rand.New(rand.NewPCG(3, 3))
	for range 5000 {
		w := &WhiteTemplate{Name: randText(r), Language: Language{Code: randText(r)}}
		for range r.IntN(4) {
			c := SendComponent{Type: randText(r), SubType: randText(r), Index: randText(r)}
			if r.IntN(4) != 0 {
				c.Parameters = []SendParameter{}
			}
			for range r.IntN(3) {
				c.Parameters = append(c.Parameters, SendParameter{Type: randText(r), ParameterName: randText(r), Text: randText(r),
					Payload: randText(r), CouponCode: randText(r), Image: randLink(r), Video: randLink(r), Document: randLink(r)})
			}
			w.Components = append(w.Components, c)
		}
		if r.IntN(5) == 0 {
			w.Components = []SendComponent{}
		}
		cases = append(cases, w)
	}
	for _, w := range cases {
		if got, want := string(w.AppendJSON(nil)), encodeRef(t, w); got != want {
			t.Fatalf("AppendJSON(%+v)\n got %s\nwant %s", w, got, want)
		}
	}
}
