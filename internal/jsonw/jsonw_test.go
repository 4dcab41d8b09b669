package jsonw

import (
	"bytes"
	"encoding/json"
	"testing"
)

func FuzzString(f *testing.F) {
	for _, s := range []string{"", "plain", `q"uo\te`, "tab\tnl\ncr\r\b\f\x00\x1f", "<a href='x'>&</a>", "Заказ №5 ✓",
		"\u2028\u2029", "bad \xff\xfe utf8", "emoji 😀"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(s)
		if got := String(nil, s); !bytes.Equal(got, bytes.TrimSuffix(want.Bytes(), []byte("\n"))) {
			t.Fatalf("String(%q) = %s, want %s", s, got, want.Bytes())
		}
		html, _ := json.Marshal(s)
		if got := StringHTML(nil, s); !bytes.Equal(got, html) {
			t.Fatalf("StringHTML(%q) = %s, want %s", s, got, html)
		}
	})
}

func TestFieldAndMap(t *testing.T) {
	t.Parallel()
	b := Field([]byte("{"), "a", "x<y")
	b = Field(b, "empty", "")
	b = Map(b, "m", map[string]string{"z": "1", "a": "2"})
	b = Map(b, "none", nil)
	b = FieldHTML(b, "h", "x<y")
	b = MapHTML(b, "mh", map[string]string{"k": "&"})
	b = append(b, '}')
	want := `{,"a":"x<y","m":{"a":"2","z":"1"},"h":"x\u003cy","mh":{"k":"\u0026"}}`
	if string(b) != want {
		t.Fatalf("got %s\nwant %s", b, want)
	}
}
