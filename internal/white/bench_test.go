package white

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/herald-notify/herald/internal/templates"
)

// orderReadyTemplate is the worker's rendering of the order_ready sample, the template of the
// end-to-end benchmark.
func orderReadyTemplate(tb testing.TB) *templates.WhiteTemplate {
	tb.Helper()
	for _, d := range templates.SampleDefinitions() {
		if d.Name != "order_ready" {
			continue
		}
		t, err := d.RenderWhite(templates.Input{
			Params:  map[string]string{"order": "123456", "address": "ул. Текстильщиков, д. 20", "until": "21.02.2021"},
			Buttons: map[string]string{"0": "123456"},
		})
		if err != nil {
			tb.Fatal(err)
		}
		return t
	}
	tb.Fatal("no order_ready sample")
	return nil
}

// BenchmarkSendBodyTemplate is the request body of a template send as the worker makes it.
func BenchmarkSendBodyTemplate(b *testing.B) {
	m := Message{JobID: "order-123456-ready", To: "+79001234567", Template: orderReadyTemplate(b)}
	b.ReportAllocs()
	for b.Loop() {
		out, err := build(m)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := encodeMessage(out); err != nil {
			b.Fatal(err)
		}
	}
}

var textPieces = []string{"", "a", "ул. Текстильщиков", "<b>&</b>", `"q"`, `\`, "/", "\b\f\n\r\t", "\x00\x1f\x7f",
	"\u2028\u2029", "😀", "\xff", "https://a.example/x?y=1&z=2"}

func randText(r *rand.Rand) string {
	var b strings.Builder
	for range r.IntN(3) {
		b.WriteString(textPieces[r.IntN(len(textPieces))])
	}
	return b.String()
}

// TestEncodeMessageMatchesEncode holds encodeMessage to encode (encoding/json) byte for byte.
func TestEncodeMessageMatchesEncode(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(4, 4))
	tpl := orderReadyTemplate(t)
	var nilTpl *templates.WhiteTemplate
	templatesToTry := []any{nil, tpl, &templates.WhiteTemplate{Name: "<x>", Language: templates.Language{Code: "\u2028"}},
		json.RawMessage(`{"name": "raw"}`), map[string]any{"name": "<&>"}, nilTpl}
	for range 5000 {
		out := outMessage{MessagingProduct: randText(r), RecipientType: randText(r), To: randText(r), Type: randText(r),
			Template: templatesToTry[r.IntN(len(templatesToTry))], BizOpaque: randText(r)}
		if r.IntN(2) == 0 {
			out.Text = &outText{Body: randText(r), PreviewURL: r.IntN(2) == 0}
		}
		for _, m := range []**outMedia{&out.Image, &out.Video, &out.Document} {
			if r.IntN(3) == 0 {
				*m = &outMedia{Link: randText(r), Caption: randText(r), Filename: randText(r)}
			}
		}
		want, werr := encode(out)
		got, err := encodeMessage(out)
		if string(got) != string(want) || (err == nil) != (werr == nil) {
			t.Fatalf("encodeMessage(%+v)\n got %s, %v\nwant %s, %v", out, got, err, want, werr)
		}
	}
}
