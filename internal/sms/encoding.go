package sms

// Encoding is the alphabet an SMS is sent in.
type Encoding int

// Encodings, by the data coding an SMSC understands.
const (
	// GSM7 is the GSM 03.38 default alphabet with its extension table, 7 bits a character.
	GSM7 Encoding = iota
	// UCS2 is 16-bit UCS-2/UTF-16, for any text GSM 03.38 cannot carry.
	UCS2
)

// String returns "GSM-7" or "UCS-2".
func (e Encoding) String() string {
	if e == UCS2 {
		return "UCS-2"
	}
	return "GSM-7"
}

// Segment sizes: one SMS carries 140 octets; a concatenated part loses 6 of them to the UDH.
const (
	gsmSingle  = 160 // septets
	gsmPart    = 153
	ucs2Single = 70 // UTF-16 code units
	ucs2Part   = 67
)

// gsmASCII is the septet cost of each ASCII character in GSM 03.38: 1 in the basic table,
// 2 in the extension table (escape + character), 0 when it does not exist (the backtick,
// control characters other than LF, CR and FF).
var gsmASCII = func() (t [128]uint8) {
	for c := ' '; c <= '~'; c++ {
		t[c] = 1
	}
	t['`'] = 0
	for _, c := range "[\\]^{|}~" {
		t[c] = 2
	}
	t['\n'], t['\r'] = 1, 1
	t['\f'] = 2
	return t
}()

// gsmOther is the septet cost of the non-ASCII characters of GSM 03.38.
var gsmOther = func() map[rune]uint8 {
	m := make(map[rune]uint8, 48)
	for _, r := range "£¥èéùìòÇØøÅåΔΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà" {
		m[r] = 1
	}
	m['€'] = 2
	return m
}()

// gsmCost is the septets r takes in GSM-7, 0 when GSM-7 cannot carry it.
func gsmCost(r rune) int {
	if r < 128 {
		return int(gsmASCII[r])
	}
	return int(gsmOther[r])
}

// Analyze picks the encoding for text and counts it. GSM-7 when every character is in the
// GSM 03.38 basic or extension table (an extension character such as € [ ] { } \ ^ ~ |
// costs 2 septets); otherwise UCS-2, counted in UTF-16 code units (an emoji is 2). units is
// the septet or code-unit total; segments is 1 up to 160 septets / 70 units, else parts of
// 153 / 67. A part never splits an escape sequence or a surrogate pair, as handsets and
// SMSCs split them, so the count can exceed units/153 rounded up. Empty text is 0 segments.
func Analyze(text string) (enc Encoding, units int, segments int) {
	enc = GSM7
	for _, r := range text {
		if gsmCost(r) == 0 {
			enc = UCS2
			break
		}
	}
	single, part := gsmSingle, gsmPart
	if enc == UCS2 {
		single, part = ucs2Single, ucs2Part
	}
	parts, used := 1, 0
	for _, r := range text {
		w := 1
		switch {
		case enc == GSM7:
			w = gsmCost(r)
		case r > 0xFFFF:
			w = 2 // a surrogate pair
		}
		units += w
		if used+w > part {
			parts++
			used = 0
		}
		used += w
	}
	switch {
	case units == 0:
		return enc, 0, 0
	case units <= single:
		return enc, units, 1
	}
	return enc, units, parts
}

// SplitUCS2 cuts a UCS-2 text into the parts Analyze counts: at most 67 UTF-16 code units
// each, never inside a surrogate pair. A text of one segment is one part.
func SplitUCS2(text string) []string {
	if _, units, _ := Analyze(text); units <= ucs2Single {
		return []string{text}
	}
	var parts []string
	start, used := 0, 0
	for i, r := range text {
		w := 1
		if r > 0xFFFF {
			w = 2
		}
		if used+w > ucs2Part {
			parts = append(parts, text[start:i])
			start, used = i, 0
		}
		used += w
	}
	return append(parts, text[start:])
}

// splitsPair tells whether cutting text every 67 code units, as Kannel does, would cut a
// surrogate pair.
func splitsPair(text string) bool {
	units := 0
	for _, r := range text {
		if r > 0xFFFF && (units+1)%ucs2Part == 0 {
			return true
		}
		if r > 0xFFFF {
			units += 2
		} else {
			units++
		}
	}
	return false
}
