// Package jsonw appends JSON to byte slices by hand, for the few encodings on Herald's
// per-job path where encoding/json's reflection shows in the profile (the job, the status
// record, the Cloud API request). The output is byte for byte what encoding/json writes; each
// user tests that against encoding/json.
package jsonw

import (
	"slices"
	"unicode/utf8"
)

// Field appends ,"key":"v" unless v is empty (omitempty).
func Field(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":`...)
	return String(b, v)
}

// FieldHTML is Field with HTML escaping (StringHTML).
func FieldHTML(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":`...)
	return StringHTML(b, v)
}

// Map appends ,"key":{...} with the keys sorted, unless m is empty (omitempty).
func Map(b []byte, key string, m map[string]string) []byte {
	return mapWith(b, key, m, String)
}

// MapHTML is Map with HTML escaping (StringHTML).
func MapHTML(b []byte, key string, m map[string]string) []byte {
	return mapWith(b, key, m, StringHTML)
}

func mapWith(b []byte, key string, m map[string]string, str func([]byte, string) []byte) []byte {
	if len(m) == 0 {
		return b
	}
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":{`...)
	var buf [16]string
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = str(b, k)
		b = append(b, ':')
		b = str(b, m[k])
	}
	return append(b, '}')
}

// String quotes s as encoding/json does with HTML escaping off (json.Encoder with
// SetEscapeHTML(false)): \b \f \n \r \t and \u00XX for the other control characters,
// \ufffd for invalid UTF-8, and U+2028 and U+2029 escaped.
func String(b []byte, s string) []byte { return appendString(b, s, false) }

// StringHTML quotes s as json.Marshal does: String, and <, > and & as \u003c, \u003e, \u0026.
func StringHTML(b []byte, s string) []byte { return appendString(b, s, true) }

func appendString(b []byte, s string, html bool) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && (!html || (c != '<' && c != '>' && c != '&')) {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
