// Package phone normalises recipient numbers to E.164 with libphonenumber and masks them
// for logs, so that no full phone number is ever written to a log line.
package phone

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// ErrInvalid is returned (wrapped) for input that is not a valid, dialable phone number.
var ErrInvalid = errors.New("invalid phone number")

// Normalize parses raw (international "+7 900 123-45-67" or national "8 900 123 45 67" in the
// given default region) and returns it in E.164 form ("+79001234567").
func Normalize(raw, region string) (string, error) {
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
	num, err := phonenumbers.Parse(e164, "")
	if err != nil {
		return nil
	}
	tz, err := phonenumbers.GetTimezonesForNumber(num)
	if err != nil {
		return nil
	}
	return tz
}
