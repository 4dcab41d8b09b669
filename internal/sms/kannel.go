package sms

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/herald-notify/herald/internal/provider"
)

// Kannel defaults applied by NewKannel to a zero KannelConfig field.
const (
	DefaultDLRMask       = 31 // every report type: delivered, failed, buffered, SMSC accepted, SMSC rejected
	DefaultKannelTimeout = 15 * time.Second
)

// maxKannelAnswer bounds what Send reads of a sendsms answer: Kannel answers one short line.
const maxKannelAnswer = 64 << 10

// KannelConfig is a Kannel sendsms endpoint (HERALD_SMS_* variables).
//
// The Kannel sendsms-user behind it must allow long messages: max-messages at least
// MaxSegments and concatenation = true; otherwise Kannel truncates or refuses long texts.
type KannelConfig struct {
	// URL is the sendsms endpoint, e.g. http://127.0.0.1:13013/cgi-bin/sendsms. It may carry
	// extra fixed parameters (e.g. "?smsc=megafon").
	URL string
	// User and Password are the sendsms-user credentials.
	User, Password string
	// From is the sender id; empty lets Kannel use the user's default-sender or global-sender.
	From string
	// DLRURL is Herald's public GET /webhooks/sms URL; empty asks for no delivery reports.
	DLRURL string
	// DLRSecret (HERALD_SMS_DLR_SECRET) keys the token each dlr-url carries (DLRToken), by
	// which the API tells Kannel's reports from forged ones. It must be the API's.
	DLRSecret []byte
	// DLRMask is the report types to ask for (Kannel's dlr-mask bits); 0 means DefaultDLRMask.
	DLRMask int
	// MaxSegments is the longest SMS sent, in parts; 0 means DefaultMaxSegments.
	MaxSegments int
	// Timeout bounds one sendsms call.
	Timeout time.Duration
}

// Kannel sends SMS through Kannel's sendsms HTTP interface (GET). It is safe for concurrent
// use.
type Kannel struct {
	hc  *http.Client
	cfg KannelConfig
	sep string // "?" or "&" to append the query to cfg.URL
}

// NewKannel returns a driver for cfg; hc nil uses a client with a keep-alive pool sized for
// many concurrent sends to one gateway.
func NewKannel(cfg KannelConfig, hc *http.Client) *Kannel {
	if cfg.DLRMask == 0 {
		cfg.DLRMask = DefaultDLRMask
	}
	if cfg.MaxSegments <= 0 {
		cfg.MaxSegments = DefaultMaxSegments
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultKannelTimeout
	}
	if hc == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns = 256
		t.MaxIdleConnsPerHost = 256
		hc = &http.Client{Transport: t} // each call carries its own deadline via ctx
	}
	sep := "?"
	if strings.Contains(cfg.URL, "?") {
		sep = "&"
	}
	return &Kannel{hc: hc, cfg: cfg, sep: sep}
}

// dlrURL is the dlr-url for one job and its token. Kannel replaces the %-escapes when the
// report comes: %d the report type, %p the recipient, %T the Unix time, %A the SMSC's reply
// text. The job id is URL-escaped and then its '%' doubled, because Kannel would read "%D0"
// as its own %D escape; "%%" comes out of Kannel as a single '%'. The token is base64url,
// which has no '%' to escape.
func (k *Kannel) dlrURL(jobID string) (u, token string) {
	sep := "?"
	if strings.Contains(k.cfg.DLRURL, "?") {
		sep = "&"
	}
	id := strings.ReplaceAll(url.QueryEscape(jobID), "%", "%%")
	u = k.cfg.DLRURL + sep + "id=" + id + "&type=%d&to=%p&ts=%T&reply=%A"
	if len(k.cfg.DLRSecret) > 0 {
		token = DLRToken(k.cfg.DLRSecret, jobID)
		u += "&" + DLRTokenParam + "=" + token
	}
	return u, token
}

// Send hands m to Kannel. Success means Kannel accepted or queued it (HTTP 2xx: "0: Accepted
// for delivery", "3: Queued for later delivery", or "Sent." with immediate replies); the
// sendsms interface returns no message id, so MessageID is "kannel:<job id>" and delivery
// reports are matched by the job id in the dlr-url. Result.Segments is the part count.
//
// The recipient keeps its "+": Kannel's SMPP module then sends it as an international
// number (TON 1) without the plus, where bare digits would go out with the SMSC's default
// numbering plan.
func (k *Kannel) Send(ctx context.Context, m Message) (provider.Result, error) {
	to, ok := E164(m.To)
	if !ok {
		return provider.Result{}, Invalid("recipient is not an E.164 number")
	}
	enc, segments, err := CheckText(m, k.cfg.MaxSegments)
	if err != nil {
		return provider.Result{}, err
	}

	q := url.Values{
		"username": {k.cfg.User},
		"password": {k.cfg.Password},
		"to":       {to},
		"text":     {m.Text},
		"charset":  {"UTF-8"},
		"coding":   {"0"},
	}
	if enc == UCS2 {
		q.Set("coding", "2")
	}
	if k.cfg.From != "" {
		q.Set("from", k.cfg.From)
	}
	var token string // a secret too: it must not reach an error text
	if k.cfg.DLRURL != "" {
		var u string
		u, token = k.dlrURL(m.JobID)
		q.Set("dlr-mask", strconv.Itoa(k.cfg.DLRMask))
		q.Set("dlr-url", u)
	}

	if enc == UCS2 && segments > 1 && splitsPair(m.Text) {
		// Kannel cuts a UCS-2 text every 134 octets, inside a surrogate pair too (an emoji
		// would reach the phone as two broken halves): such a text goes as the parts Analyze
		// counts, each with its own concatenation header. The header's reference is the job's,
		// so a retry that sends a part again gives the phone a duplicate it drops.
		parts := SplitUCS2(m.Text)
		ref := concatRef(m.JobID)
		for i, part := range parts {
			q.Set("text", part)
			q.Set("udh", string([]byte{5, 0, 3, ref, byte(len(parts)), byte(i + 1)}))
			if err := k.call(ctx, q, token); err != nil {
				return provider.Result{}, err
			}
		}
		return provider.Result{MessageID: "kannel:" + m.JobID, Segments: len(parts)}, nil
	}
	if err := k.call(ctx, q, token); err != nil {
		return provider.Result{}, err
	}
	return provider.Result{MessageID: "kannel:" + m.JobID, Segments: segments}, nil
}

// concatRef is the 8-bit concatenation reference of a job's SMS: the same for every send
// of the job.
func concatRef(jobID string) byte {
	h := byte(0x5a)
	for i := 0; i < len(jobID); i++ {
		h = h*31 + jobID[i]
	}
	return h
}

// call makes one sendsms request with q; token is the DLR token, a secret.
func (k *Kannel) call(ctx context.Context, q url.Values, token string) error {
	cctx, cancel := context.WithTimeoutCause(ctx, k.cfg.Timeout, errKannelTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, k.cfg.URL+k.sep+q.Encode(), nil)
	if err != nil {
		// The error text would repeat the URL, password included.
		return &provider.Error{Kind: provider.Sender, Code: "bad_config", Reason: "HERALD_SMS_URL is not a valid URL"}
	}
	resp, err := k.hc.Do(req)
	if err != nil {
		return k.transportError(ctx, cctx, err, token)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxKannelAnswer))
	if err != nil {
		return k.transportError(ctx, cctx, err, token)
	}
	if pe := classifyKannel(resp.StatusCode, string(body), k.cfg.Password, token); pe != nil {
		if pe.Kind == provider.Retry {
			pe.After = provider.RetryAfter(resp.Header, time.Now())
		}
		return pe
	}
	return nil
}

var errKannelTimeout = errors.New("sms: kannel call timed out")

// transportError classifies a failed round trip; parent is the caller's context. The error
// text of a failed request repeats its URL: the password and the DLR token are redacted.
func (k *Kannel) transportError(parent, cctx context.Context, err error, token string) error {
	return provider.TransportError(parent, cctx, err, provider.Call{Prefix: "sms: kannel", Name: "Kannel",
		Timeout: k.cfg.Timeout, TimeoutCause: errKannelTimeout, Secrets: []string{k.cfg.Password, k.cfg.User, token}, MaxReason: maxReason})
}

// classifyKannel maps a sendsms answer to an outcome, nil for success. Kannel has no error
// codes, so the status and the fixed answer texts of smsbox decide:
//
//	2xx                                              accepted or queued
//	403 "Not routable. Do not try again."            Channel: no SMSC route for this number
//	401, 403 "Authorization failed for sendsms"      Sender: credentials or allowed IPs
//	400 "... denied by white- and/or black-lists"    Channel: this gateway refuses the number
//	400 "Sender missing ...", "DLR-URL/-Mask ..."    Sender: our configuration, every job fails
//	400 anything else ("Missing receiver", ...)      Job: this request is wrong
//	404, 405, 415                                    Sender: HERALD_SMS_URL is not a sendsms endpoint
//	408, 429, 5xx ("Temporal failure ...", "Sending failed.")  Retry
func classifyKannel(status int, body string, secrets ...string) *provider.Error {
	if status >= 200 && status <= 299 {
		return nil
	}
	kind := provider.Job
	switch {
	case status == 403 && strings.Contains(body, "Not routable"):
		kind = provider.Channel
	case status == 401 || status == 403:
		kind = provider.Sender
	case status == 400 && strings.Contains(body, "denied by white- and/or black-lists"):
		kind = provider.Channel
	case status == 400 && (strings.Contains(body, "Sender missing") || strings.Contains(body, "DLR-URL") || strings.Contains(body, "DLR-Mask")):
		kind = provider.Sender
	case status == 404 || status == 405 || status == 415:
		kind = provider.Sender
	case status == 408 || status == 429 || status >= 500 || status < 400: // < 400: an unfollowed redirect, passing
		kind = provider.Retry
	}
	text := sanitize(body, secrets...)
	if text == "" {
		text = http.StatusText(status)
	}
	return &provider.Error{Kind: kind, Code: "http_" + strconv.Itoa(status),
		Reason: fmt.Sprintf("Kannel answered %d: %s", status, text)}
}
