// Package sms is the SMS fallback channel: GSM 03.38 / UCS-2 encoding analysis with segment
// counting, and the drivers that hand a message to an SMS gateway. Today that is Kannel's
// sendsms HTTP interface (Kannel) and its delivery-report callback (ParseKannelDLR).
//
// Every driver has the same method set,
//
//	Send(ctx context.Context, m Message) (provider.Result, error)
//
// so the worker can define the small interface it needs where it uses it; an SMPP or a NATS
// driver (HERALD_SMS_DRIVER=smpp|nats) fits beside Kannel with that method and the shared
// segment check (checkText). Drivers return *provider.Error for every failure the worker must
// act on, and a wrapped ctx.Err() when the caller's context ended.
package sms

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/herald-notify/herald/internal/phone"
	"github.com/herald-notify/herald/internal/provider"
)

// DefaultMaxSegments is the longest SMS a driver sends unless configured otherwise
// (HERALD_SMS_MAX_SEGMENTS): six parts, 918 GSM-7 characters or 402 UCS-2 ones.
const DefaultMaxSegments = 6

// ErrTooManySegments is wrapped in the Job-kind *provider.Error a driver returns when a text
// needs more parts than its MaxSegments allows. The job is dead-lettered: no SMS driver will
// send it either, and a shorter sms_text is the fix.
var ErrTooManySegments = errors.New("sms: text needs too many segments")

// Message is one SMS to send.
type Message struct {
	// JobID is the job's ref (<tenant>/<id>); delivery reports carry it back.
	JobID string
	// To is the recipient in E.164 ("+79001234567").
	To string
	// Text is the message body, UTF-8.
	Text string
}

// CheckText validates m's text for any driver (Kannel, SMPP, nats) and returns its encoding
// and segment count, or a Job error for a text no gateway can take: empty, not UTF-8, or
// longer than maxSegments (code too_many_segments, wrapping ErrTooManySegments).
func CheckText(m Message, maxSegments int) (Encoding, int, error) {
	if m.Text == "" {
		return 0, 0, Invalid("empty SMS text")
	}
	if !utf8.ValidString(m.Text) {
		return 0, 0, Invalid("SMS text is not valid UTF-8")
	}
	enc, _, segments := Analyze(m.Text)
	if segments > maxSegments {
		return 0, 0, &provider.Error{
			Kind:   provider.Job,
			Code:   "too_many_segments",
			Reason: fmt.Sprintf("SMS text needs %d segments, HERALD_SMS_MAX_SEGMENTS is %d", segments, maxSegments),
			Err:    ErrTooManySegments,
		}
	}
	return enc, segments, nil
}

// E164 returns to as "+<digits>", or false when it is not an E.164 number.
func E164(to string) (string, bool) {
	d := phone.Digits(strings.TrimSpace(to))
	if d == "" || len(d) > 15 || strings.TrimLeft(d, "0123456789") != "" {
		return "", false
	}
	return "+" + d, true
}

// Invalid is the Job error for a message no SMS gateway can take.
func Invalid(reason string) *provider.Error {
	return &provider.Error{Kind: provider.Job, Code: "invalid_message", Reason: reason}
}

const maxReason = 300

// sanitize makes a gateway's text safe for a Reason (provider.Sanitize).
func sanitize(s string, secrets ...string) string { return provider.Sanitize(s, maxReason, secrets...) }
