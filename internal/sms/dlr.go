package sms

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Delivery report states, from the most to the least final.
const (
	StateDelivered = "delivered" // Kannel type 1: delivered to the phone
	StateFailed    = "failed"    // type 2: not delivered to the phone
	StateRejected  = "rejected"  // type 16: the SMSC refused it
	StateSubmitted = "submitted" // type 8: the SMSC accepted it
	StateBuffered  = "buffered"  // type 4: queued on the SMSC
)

// Kannel dlr-mask / report type bits.
const (
	dlrDelivered = 1
	dlrFailed    = 2
	dlrBuffered  = 4
	dlrSubmitted = 8
	dlrRejected  = 16
)

// ErrInvalidDLR is returned (wrapped) for a delivery-report request that is not one Herald
// asked for: the webhook answers it with 400.
var ErrInvalidDLR = errors.New("sms: invalid delivery report")

// maxReply caps the SMSC reply text kept from a report.
const maxReply = 512

// DLR is one delivery report.
type DLR struct {
	// JobID is the job the report is about.
	JobID string
	// State is one of the State constants.
	State string
	// Type is Kannel's raw report type (1, 2, 4, 8, 16).
	Type int
	// To is the recipient, in E.164 when the gateway gave digits.
	To string
	// At is when Kannel produced the report; zero when the request had no ts.
	At time.Time
	// Reply is the SMSC's reply text, e.g. "id:... stat:DELIVRD err:000"; may be empty.
	Reply string
	// Token is the dlr-url's token (DLRTokenParam), to check with VerifyDLRToken. It is a
	// credential: never log it.
	Token string
}

// DLRTokenParam is the dlr-url query parameter that carries a report's token.
const DLRTokenParam = "token"

// dlrTokenDomain separates these MACs from any other use of the same secret.
const dlrTokenDomain = "herald-dlr-v1\x00"

// DLRToken is the token of job id's delivery reports: HMAC-SHA256 of the job id under the
// secret (HERALD_SMS_DLR_SECRET), base64url without padding. The worker puts it in each
// dlr-url; no one without the secret can make one for another job, so a report that carries
// it came back through Kannel from a send Herald made.
func DLRToken(secret []byte, jobID string) string {
	return base64.RawURLEncoding.EncodeToString(dlrMAC(secret, jobID))
}

// VerifyDLRToken reports whether token is DLRToken(secret, jobID), comparing in constant
// time; an empty secret verifies nothing.
func VerifyDLRToken(secret []byte, jobID, token string) bool {
	if len(secret) == 0 {
		return false
	}
	got, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return false
	}
	return hmac.Equal(got, dlrMAC(secret, jobID))
}

func dlrMAC(secret []byte, jobID string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(dlrTokenDomain))
	m.Write([]byte(jobID))
	return m.Sum(nil)
}

// ParseKannelDLR reads the query of a Kannel delivery-report callback, as requested by the
// dlr-url Kannel.Send sets: id, type, to, ts, reply.
func ParseKannelDLR(q url.Values) (DLR, error) {
	id := strings.TrimSpace(q.Get("id"))
	if id == "" {
		return DLR{}, fmt.Errorf("%w: no id", ErrInvalidDLR)
	}
	if len(id) > 192 { // a job ref: a tenant, a slash and a job id
		return DLR{}, fmt.Errorf("%w: id longer than 192 bytes", ErrInvalidDLR)
	}
	typ, err := strconv.Atoi(strings.TrimSpace(q.Get("type")))
	if err != nil {
		return DLR{}, fmt.Errorf("%w: type %q is not a number", ErrInvalidDLR, q.Get("type"))
	}
	// Final states first: Kannel's "expired" is 0x22, a failed report with an extra bit.
	var state string
	switch {
	case typ&dlrDelivered != 0:
		state = StateDelivered
	case typ&dlrFailed != 0:
		state = StateFailed
	case typ&dlrRejected != 0:
		state = StateRejected
	case typ&dlrSubmitted != 0:
		state = StateSubmitted
	case typ&dlrBuffered != 0:
		state = StateBuffered
	default:
		return DLR{}, fmt.Errorf("%w: unknown type %d", ErrInvalidDLR, typ)
	}
	d := DLR{JobID: id, State: state, Type: typ, To: recipient(q.Get("to")), Reply: q.Get("reply"), Token: q.Get(DLRTokenParam)}
	if len(d.Reply) > maxReply {
		d.Reply = strings.ToValidUTF8(d.Reply[:maxReply], "")
	}
	if ts := strings.TrimSpace(q.Get("ts")); ts != "" {
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			return DLR{}, fmt.Errorf("%w: ts %q is not a Unix time", ErrInvalidDLR, ts)
		}
		d.At = time.Unix(sec, 0).UTC()
	}
	return d, nil
}

// recipient normalises the "to" of a report: digits (with or without "+", or with the "+"
// decoded to a space by a gateway that did not escape it) become E.164; anything else is
// kept as the gateway gave it.
func recipient(s string) string {
	s = strings.TrimSpace(s)
	if n, ok := E164(s); ok {
		return n
	}
	return s
}
