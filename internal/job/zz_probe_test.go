package job

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestZZProbe(t *testing.T) {
	o := Options{DefaultRegion: "RU", DefaultLanguage: "ru"}
	for _, s := range []string{
		`{"id":"a","to":"8 900 123-45-67","template":"x","params":{"order":5}}`,
		`{"id":"a","to":"8 900 123-45-67","template":"x","params":[1]}`,
		`{"id":"a","to":"8 900 123-45-67","template":"x","media":{"TYPE":"image","URL":"https://a.b/c"}}`,
		`{"id":"a","to":"8 900 123-45-67","template":"x","media":{"type":"image","url":"https://a.b/c","x":1}}`,
		`{"id":"a","to":"8 900 123-45-67","template":"x","send_at":"2026-11-25T9:00:00Z"}`,
		`{"id":"a","to":"8 900 123-45-67","template":"x","send_at":"2026-11-25t09:00:00z"}`,
		`{"id":"a","to":"8 900 123-45-67","template":"x","send_at":"2026-11-25T09:00:00,5Z"}`,
		`{"id":"a","to":"8 900 123-45-67","template":"x","send_at":"2026-11-25 09:00:00Z"}`,
		`{"id":"a","to":"8 900 123-45-67","template":"x","channels":null}`,
		`{"id":"a","to":"8 900 123-45-67","template":"x","channels":[1]}`,
		`{"id":"a","to":"8 900 123-45-67","template":"x","buttons":{"0":1}}`,
		`{"id":"a","to":"+7 (900) 123-45-67 ext. 12","template":"x"}`,
		`{"id":"a","to":"+1 650 253 0000","template":"x"}`,
		`{"id":"a","to":"900 123 45 67","template":"x"}`,
		`{"id":"a","to":"tel:+7-900-123-45-67","template":"x"}`,
		`[]`, `null`, `{"id":"a"} x`, `"x"`,
	} {
		j, err := Decode([]byte(s), o)
		if j != nil {
			b, _ := j.Encode()
			fmt.Println("OK ", s, "=>", string(b))
		} else {
			fmt.Printf("ERR %s => %#v\n", s, err)
		}
	}
	// size bug
	var b strings.Builder
	b.WriteString(`{"id":"a","to":"+79001234567","template":"x","params":{`)
	for i := 0; i < 50; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"p%d":"%s"`, i, strings.Repeat("<", 1024))
	}
	b.WriteString("}}")
	j, err := Decode([]byte(b.String()), o)
	fmt.Println(len(b.String()), err)
	enc, _ := j.Encode()
	_, err = Decode(enc, o)
	fmt.Println(len(enc), err != nil)
	_ = time.Now
}
