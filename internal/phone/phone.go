// Package phone normalises recipient numbers to E.164 with libphonenumber and masks them
// for logs, so that no full phone number is ever written to a log line.
package phone

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// ErrInvalid is returned (wrapped) for input that is not a valid, dialable phone number.
var ErrInvalid = errors.New("invalid phone number")

// Normalize parses raw (international "+7 900 123-45-67" or national "8 900 123 45 67" in the
// given default region) and returns it in E.164 form ("+79001234567").
func Normalize(raw, region string) (string, error) {
	// Jobs from the producer and the API are already in E.164: check those without
	// libphonenumber's parser, whose extension and punctuation regexps were most of the
	// cost, and without IsValidNumber's per-call pattern building (see validNSN).
	if cc, nsn, ok := splitE164(raw); ok {
		valid, decided := validNSN(cc, nsn)
		if !decided {
			n, _ := parseE164(raw)
			valid = phonenumbers.IsValidNumber(n)
		}
		if valid {
			// Format(E164) is "+", the code and the national significant number: raw itself.
			return raw, nil
		}
		// What normalizeSlow says: Parse reads raw as splitE164 does, and the number is
		// not valid.
		return "", fmt.Errorf("%w: %q is not a valid number", ErrInvalid, Mask(raw))
	}
	return normalizeSlow(raw, region)
}

// normalizeSlow is Normalize through phonenumbers.Parse: the path for anything that is not
// plain E.164 and valid, and the reference the fast path is tested against.
func normalizeSlow(raw, region string) (string, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalid)
	}
	if len(s) > 64 {
		return "", fmt.Errorf("%w: longer than 64 characters", ErrInvalid)
	}
	num, err := phonenumbers.Parse(s, strings.ToUpper(region))
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if !phonenumbers.IsValidNumber(num) {
		return "", fmt.Errorf("%w: %q is not a valid number", ErrInvalid, Mask(s))
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}

// Digits returns the E.164 number without its leading plus: the form the Cloud API,
// GREEN-API chat ids and Kannel expect.
func Digits(e164 string) string { return strings.TrimPrefix(e164, "+") }

// Mask hides the middle of a phone number for logs: "+79001234567" becomes "+7900*****67".
// Input of 9 characters or fewer (too short to hide a middle) is masked completely.
func Mask(s string) string {
	r := []rune(s)
	if len(r) <= 9 {
		return strings.Repeat("*", len(r))
	}
	keepHead, keepTail := 5, 2
	if r[0] != '+' {
		keepHead = 4
	}
	return string(r[:keepHead]) + strings.Repeat("*", len(r)-keepHead-keepTail) + string(r[len(r)-keepTail:])
}

// TimeZones returns the IANA time zones libphonenumber associates with a number; the first
// is the best guess for quiet hours.
func TimeZones(e164 string) []string {
	num, ok := parseE164(e164)
	if !ok {
		var err error
		if num, err = phonenumbers.Parse(e164, ""); err != nil {
			return nil
		}
	}
	tz, err := phonenumbers.GetTimezonesForNumber(num)
	if err != nil {
		return nil
	}
	return tz
}

// Lengths from libphonenumber (MIN_LENGTH_FOR_NSN, MAX_LENGTH_FOR_NSN,
// MAX_LENGTH_COUNTRY_CODE).
const (
	minNSN   = 2
	maxNSN   = 17
	maxCCLen = 3
)

// nationalPrefixes holds, per country calling code, the national prefix patterns of its
// regions, anchored as phonenumbers.Parse anchors them; nil for a code without regions.
var nationalPrefixes = sync.OnceValue(func() *[1000][]*regexp.Regexp {
	var t [1000][]*regexp.Regexp
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		return nil // parseE164 then leaves everything to phonenumbers.Parse
	}
	for cc := range t {
		if len(phonenumbers.GetRegionCodesForCountryCode(cc)) > 0 {
			t[cc] = []*regexp.Regexp{} // a known code
		}
	}
	for _, m := range coll.GetMetadata() {
		cc := int(m.GetCountryCode())
		p := m.GetNationalPrefixForParsing()
		if cc <= 0 || cc >= len(t) || t[cc] == nil || p == "" {
			continue
		}
		re, err := regexp.Compile("^(?:" + p + ")")
		if err != nil {
			t[cc] = nil // not understood: leave this code to Parse
			continue
		}
		t[cc] = append(t[cc], re)
	}
	return &t
})

// parseE164 builds the PhoneNumber that phonenumbers.Parse(s, region) returns, for any
// region, when s is exactly "+" and ASCII digits; ok is false when s is not of that form or
// when Parse might read it otherwise, and the caller must call Parse. The only way Parse
// reads such a number otherwise is by stripping a national prefix ("+7 8 900..." is
// +7 900...): parseE164 declines every number whose national part starts with something a
// national prefix pattern of the code's regions matches. An extension needs a letter or a
// separator, a plus sign makes the default region irrelevant, and the length rules are
// Parse's own.
func parseE164(s string) (*phonenumbers.PhoneNumber, bool) {
	cc, national, ok := splitE164(s)
	if !ok {
		return nil, false
	}
	nn, err := strconv.ParseUint(national, 10, 64)
	if err != nil {
		return nil, false
	}
	num := &phonenumbers.PhoneNumber{CountryCode: new(int32(cc)), NationalNumber: new(nn)}
	// Leading zeros of the national number, as Parse records them (Italian numbers).
	if len(national) >= 2 && national[0] == '0' {
		num.ItalianLeadingZero = new(true)
		zeros := 1
		for zeros < len(national)-1 && national[zeros] == '0' {
			zeros++
		}
		if zeros != 1 {
			num.NumberOfLeadingZeros = new(int32(zeros))
		}
	}
	return num, true
}

// splitE164 is parseE164 without building the PhoneNumber: the country calling code and
// the national part, which is the number's national significant number, leading zeros
// included (phonenumbers.GetNationalSignificantNumber of parseE164's result).
func splitE164(s string) (cc int, national string, ok bool) {
	if len(s) < 1+minNSN+1 || len(s) > 1+maxCCLen+maxNSN || s[0] != '+' || s[1] == '0' {
		return 0, "", false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, "", false
		}
	}
	t := nationalPrefixes()
	if t == nil {
		return 0, "", false
	}
	// The country code is the shortest prefix that is a known code, as in Parse.
	cc, n := 0, 0
	for n = 1; n <= maxCCLen; n++ {
		cc = cc*10 + int(s[n]-'0')
		if t[cc] != nil || len(phonenumbers.GetRegionCodesForCountryCode(cc)) > 0 {
			break
		}
	}
	if n > maxCCLen || t[cc] == nil {
		return 0, "", false
	}
	national = s[1+n:]
	if len(national) < minNSN || len(national) > maxNSN {
		return 0, "", false
	}
	for _, re := range t[cc] {
		if re.MatchString(national) {
			return 0, "", false
		}
	}
	return cc, national, true
}
