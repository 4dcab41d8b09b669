package provider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/herald-notify/herald/internal/phone"
)

var (
	// tokenLike catches Meta access tokens ("EAA...") wherever they come from.
	tokenLike = regexp.MustCompile(`EAA[A-Za-z0-9]{16,}`)
	// phoneLike catches anything long enough to be a full phone number.
	phoneLike = regexp.MustCompile(`\+?[0-9]{9,15}`)
)

// Sanitize makes a provider's text safe for a Reason, a span or a log: the given secrets and
// token-shaped strings redacted, phone-number-shaped digit runs masked, whitespace collapsed,
// the length capped at maxLen bytes (on a rune boundary).
func Sanitize(s string, maxLen int, secrets ...string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	s = strings.ToValidUTF8(s, "")
	s = tokenLike.ReplaceAllString(s, "[redacted]")
	s = phoneLike.ReplaceAllStringFunc(s, phone.Mask)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxLen {
		cut := maxLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// RetryAfter reads a Retry-After header (seconds or an HTTP date), capped at an hour; zero
// when absent or unreadable.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	if s, err := strconv.Atoi(v); err == nil {
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), time.Hour)
}

// Call describes an adapter's HTTP round trip for TransportError.
type Call struct {
	// Prefix wraps the caller's own context error ("white", "sms: kannel").
	Prefix string
	// Name is the provider in reasons ("the Cloud API", "Kannel").
	Name string
	// Timeout is the adapter's own per-call deadline; TimeoutCause the cause it was set with.
	Timeout      time.Duration
	TimeoutCause error
	// Secrets are redacted from the reason.
	Secrets []string
	// MaxReason caps the reason's length.
	MaxReason int
}

// TransportError classifies a failed round trip. parent is the caller's context: when it
// ended, its error is returned wrapped and unclassified, so a worker told to stop is not
// mistaken for a provider failure. cctx carries the adapter's own deadline: hitting it, or a
// network timeout, is a Retry with code "timeout"; any other transport failure a Retry with
// code "connection".
func TransportError(parent, cctx context.Context, err error, c Call) error {
	if perr := parent.Err(); perr != nil {
		return fmt.Errorf("%s: %w", c.Prefix, perr)
	}
	// *url.Error repeats the URL, which may carry a password or token: keep only the cause.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	if errors.Is(context.Cause(cctx), c.TimeoutCause) || (errors.As(err, &ne) && ne.Timeout()) {
		// Err stays nil for our own deadline: a wrapped context.DeadlineExceeded would make
		// this look like the caller's context ending.
		pe := &Error{Kind: Retry, Code: "timeout", Reason: fmt.Sprintf("no answer from %s within %s", c.Name, c.Timeout)}
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			pe.Err = err
		}
		return pe
	}
	return &Error{Kind: Retry, Code: "connection",
		Reason: c.Name + " unreachable: " + Sanitize(err.Error(), c.MaxReason, c.Secrets...), Err: err}
}
