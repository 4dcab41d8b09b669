package templates

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/herald-notify/herald/internal/job"
)

// FuzzRender feeds arbitrary definitions and parameters to the parser and both renderers:
// they may refuse, never panic, and never turn valid UTF-8 into invalid text.
func FuzzRender(f *testing.F) {
	for _, d := range SampleDefinitions() {
		b, _ := json.Marshal(d)
		f.Add(b, `{"order":"123456","address":"ул. Текстильщиков, д. 20","until":"21.02.2027","name":"Анна","amount":"350","date":"30.11"}`, "123456")
	}
	f.Add([]byte(`{"name":"x","language":"en","components":[{"type":"BODY","text":"Hi {{1}} and {{2}}"}]}`), `{"1":"a","2":"{{1}}"}`, "")
	f.Add([]byte(`{"name":"x","language":"en","parameter_format":"NAMED","components":[{"type":"HEADER","format":"DOCUMENT"},{"type":"BODY","text":"{{a}}"},{"type":"BUTTONS","buttons":[{"type":"URL","text":"Go","url":"https://e.x/{{1}}"}]}]}`), `{"a":"\n\n\n\n\n"}`, "p/q")
	f.Fuzz(func(t *testing.T, def []byte, params string, button string) {
		d, err := ParseDefinition(def)
		if err != nil {
			return
		}
		var p map[string]string
		_ = json.Unmarshal([]byte(params), &p)
		in := Input{Params: p, Buttons: map[string]string{"0": button},
			Media: &job.Media{Type: job.MediaDocument, URL: "https://e.x/a.pdf", Filename: "a.pdf"}}
		if _, err := d.RenderWhite(in); err != nil && !IsPermanent(err) {
			// Either is allowed; the point is that it returned.
			_ = err
		}
		text, err := d.RenderText(in)
		if err == nil && utf8.Valid(def) && utf8.ValidString(params) && utf8.ValidString(button) && !utf8.ValidString(text) {
			t.Fatalf("valid UTF-8 in, invalid UTF-8 out: %q", text)
		}
	})
}
