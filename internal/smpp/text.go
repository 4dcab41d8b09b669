package smpp

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/linxGnu/gosmpp/data"
	"github.com/linxGnu/gosmpp/pdu"

	"github.com/herald-notify/herald/internal/provider"
	"github.com/herald-notify/herald/internal/sms"
)

// Type of number and numbering plan indicator values (SMPP 3.4 section 5.2.5, 5.2.6).
const (
	tonUnknown       = 0x00
	tonInternational = 0x01
	tonAlphanumeric  = 0x05
	npiUnknown       = 0x00
	npiISDN          = 0x01
)

// Part sizes of a concatenated SMS: 140 octets less the 6-octet UDH (sms.Analyze counts the
// same way). The 8-bit-reference concatenation IE is used because it is the one those sizes
// assume; a 16-bit reference would cost one more octet per part.
const (
	gsmSingle  = 160 // septets, one octet each in SMPP data_coding 0 (the SMSC packs them)
	gsmPart    = 153
	ucs2Single = 70 // UTF-16 code units
	ucs2Part   = 67
)

// maxAlnumSender is the longest alphanumeric sender id GSM can carry (11 characters).
const maxAlnumSender = 11

// checkText validates m like every SMS driver does (sms.CheckText) and returns the text's
// encoding and parts.
func checkText(m sms.Message, maxSegments int) (sms.Encoding, []string, error) {
	enc, segments, err := sms.CheckText(m, maxSegments)
	if err != nil {
		return 0, nil, err
	}
	return enc, split(m.Text, enc, segments), nil
}

// split cuts text into the parts sms.Analyze counted: whole when it fits one SMS, else parts
// of 153 septets / 67 UTF-16 units that never split a GSM escape sequence or a surrogate
// pair (the same greedy rule as sms.Analyze, so len(parts) == segments).
func split(text string, enc sms.Encoding, segments int) []string {
	if segments <= 1 {
		return []string{text}
	}
	limit := gsmPart
	if enc == sms.UCS2 {
		limit = ucs2Part
	}
	parts := make([]string, 0, segments)
	start, used := 0, 0
	for i, r := range text {
		w := units(r, enc)
		if used+w > limit {
			parts = append(parts, text[start:i])
			start, used = i, 0
		}
		used += w
	}
	return append(parts, text[start:])
}

// units is what r costs in enc: GSM-7 septets (2 for an extension character) or UTF-16 code
// units (2 for a surrogate pair). sms.Analyze on the lone rune gives the GSM-7 cost.
func units(r rune, enc sms.Encoding) int {
	if enc == sms.UCS2 {
		if r > 0xFFFF {
			return 2
		}
		return 1
	}
	_, n, _ := sms.Analyze(string(r))
	return n
}

// encodePart encodes one part in enc and checks it fits the octets its part size allows
// (160 or 153 for GSM-7 unpacked, 140 or 134 for UCS-2).
func encodePart(part string, enc sms.Encoding, multipart bool) ([]byte, data.Encoding, error) {
	coding, limit := data.GSM7BIT, gsmSingle
	switch {
	case enc == sms.UCS2 && multipart:
		coding, limit = data.UCS2, 2*ucs2Part
	case enc == sms.UCS2:
		coding, limit = data.UCS2, 2*ucs2Single
	case multipart:
		limit = gsmPart
	}
	b, err := coding.Encode(part)
	if err != nil {
		return nil, nil, invalid(fmt.Sprintf("SMS text cannot be encoded in %s: %v", enc, err))
	}
	if len(b) > limit {
		return nil, nil, invalid(fmt.Sprintf("SMS part of %d octets exceeds %d", len(b), limit))
	}
	return b, coding, nil
}

// sourceAddr turns the configured sender into an SMPP address:
//
//	""                 TON 0 / NPI 0, empty: the SMSC's default sender for the account
//	"+79001234567"     TON 1 international / NPI 1 ISDN, digits without the plus
//	"1234", "8800..."  TON 0 unknown / NPI 1 ISDN: a short code or national number as is
//	"Herald"           TON 5 alphanumeric / NPI 0, at most 11 characters
func sourceAddr(from string) (pdu.Address, error) {
	from = strings.TrimSpace(from)
	digits := strings.TrimPrefix(from, "+")
	numeric := digits != "" && strings.Trim(digits, "0123456789") == ""
	switch {
	case from == "":
		return pdu.NewAddressWithTonNpiAddr(tonUnknown, npiUnknown, "")
	case numeric && strings.HasPrefix(from, "+"):
		if len(digits) > 15 {
			return pdu.Address{}, fmt.Errorf("smpp: sender %q is longer than an E.164 number", from)
		}
		return pdu.NewAddressWithTonNpiAddr(tonInternational, npiISDN, digits)
	case numeric:
		if len(digits) > 20 {
			return pdu.Address{}, fmt.Errorf("smpp: sender %q is longer than 20 digits", from)
		}
		return pdu.NewAddressWithTonNpiAddr(tonUnknown, npiISDN, digits)
	}
	if utf8.RuneCountInString(from) > maxAlnumSender {
		return pdu.Address{}, fmt.Errorf("smpp: alphanumeric sender %q is longer than %d characters", from, maxAlnumSender)
	}
	if _, err := data.GSM7BIT.Encode(from); err != nil {
		return pdu.Address{}, fmt.Errorf("smpp: alphanumeric sender %q is not in the GSM 7-bit alphabet", from)
	}
	return pdu.NewAddressWithTonNpiAddr(tonAlphanumeric, npiUnknown, from)
}

// e164 returns the digits of to when it is an E.164 number.
func e164(to string) (string, bool) {
	p, ok := sms.E164(to)
	return strings.TrimPrefix(p, "+"), ok
}

func invalid(reason string) *provider.Error { return sms.Invalid(reason) }
