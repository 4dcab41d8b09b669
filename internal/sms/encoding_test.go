package sms

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf16"
)

func TestAnalyze(t *testing.T) {
	t.Parallel()
	r := strings.Repeat
	tests := []struct {
		name     string
		text     string
		enc      Encoding
		units    int
		segments int
	}{
		{"empty", "", GSM7, 0, 0},
		{"ascii", "Your order 123456 is ready", GSM7, 26, 1},
		{"basic table specials", "@£$¥èéùìòÇ\nØø\rÅå_ΔΦΓΛΩΠΨΣΘΞÆæßÉ!\"#¤%&'()*+,-./:;<=>?¡ÄÖÑÜ§¿äöñüà", GSM7, 64, 1},
		{"extension chars cost 2", "€[]{}\\^~|\f", GSM7, 20, 1},
		{"backtick is not GSM", "a`b", UCS2, 3, 1},
		{"c cedilla lowercase is not GSM", "ç", UCS2, 1, 1},
		{"cyrillic", "Заказ 123456 ждёт вас", UCS2, 21, 1},
		{"emoji is 2 units", "ok 😀", UCS2, 5, 1},

		{"gsm 160", r("a", 160), GSM7, 160, 1},
		{"gsm 161", r("a", 161), GSM7, 161, 2},
		{"gsm 306", r("a", 306), GSM7, 306, 2},
		{"gsm 307", r("a", 307), GSM7, 307, 3},
		{"gsm 80 euros fill one", r("€", 80), GSM7, 160, 1},
		{"gsm 159 plus euro overflows", r("a", 159) + "€", GSM7, 161, 2},
		// 152 septets, then € does not fit in the 153rd: it opens part 2, which ends with
		// 151 a; the last a needs part 3 although 306 septets would fit 2 parts naively.
		{"extension at a part boundary", r("a", 152) + "€" + r("a", 152), GSM7, 306, 3},
		{"extension just fits a part", r("a", 151) + "€" + r("a", 153), GSM7, 306, 2},

		{"ucs2 70", r("ж", 70), UCS2, 70, 1},
		{"ucs2 71", r("ж", 71), UCS2, 71, 2},
		{"ucs2 134", r("ж", 134), UCS2, 134, 2},
		{"ucs2 135", r("ж", 135), UCS2, 135, 3},
		{"emoji 35 fill one", r("😀", 35), UCS2, 70, 1},
		{"emoji 36", r("😀", 36), UCS2, 72, 2},
		{"surrogate pair at a part boundary", r("ж", 66) + "😀" + r("ж", 66), UCS2, 134, 3},
		{"one non-GSM char turns everything UCS-2", r("a", 100) + "ж", UCS2, 101, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			enc, units, segments := Analyze(tt.text)
			if enc != tt.enc || units != tt.units || segments != tt.segments {
				t.Errorf("Analyze = %v, %d units, %d segments; want %v, %d, %d", enc, units, segments, tt.enc, tt.units, tt.segments)
			}
		})
	}
}

func TestEncodingString(t *testing.T) {
	t.Parallel()
	if GSM7.String() != "GSM-7" || UCS2.String() != "UCS-2" {
		t.Errorf("%s %s", GSM7, UCS2)
	}
}

func BenchmarkAnalyze(b *testing.B) {
	text := "Заказ 123456 ждёт вас в пункте выдачи до 21.02.2021, ул. Текстильщиков, д. 20"
	b.ReportAllocs()
	for b.Loop() {
		Analyze(text)
	}
}

func TestSplitUCS2(t *testing.T) {
	t.Parallel()
	pair := strings.Repeat("Ж", 66) + "😀" + strings.Repeat("я", 66)
	tests := []struct {
		name       string
		text       string
		parts      []int // code units per part
		splitsPair bool  // cutting every 67 units, as Kannel does, breaks a pair
	}{
		{"one segment", strings.Repeat("ж", 70), []int{70}, false},
		{"two parts", strings.Repeat("ж", 71), []int{67, 4}, false},
		{"an emoji on the cut moves to the next part", pair, []int{66, 67, 1}, true},
		{"an emoji before the cut stays", strings.Repeat("Ж", 65) + "😀" + strings.Repeat("я", 10), []int{67, 10}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			parts := SplitUCS2(tt.text)
			var got []int
			for _, p := range parts {
				got = append(got, len(utf16.Encode([]rune(p))))
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.parts) || strings.Join(parts, "") != tt.text {
				t.Fatalf("parts of %v units, want %v (joined intact: %v)", got, tt.parts, strings.Join(parts, "") == tt.text)
			}
			if _, _, segs := Analyze(tt.text); segs != len(parts) {
				t.Fatalf("%d parts, Analyze counts %d", len(parts), segs)
			}
			if splitsPair(tt.text) != tt.splitsPair {
				t.Fatalf("SplitsPair = %v, want %v", !tt.splitsPair, tt.splitsPair)
			}
		})
	}
}
