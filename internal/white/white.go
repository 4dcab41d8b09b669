// Package white is the adapter for the "white" channel: the official WhatsApp Business
// Platform (Meta's Cloud API, or a BSP that mirrors it). It sends one message per call,
// reads the template catalogue, and classifies every Graph API failure into a provider.Kind
// so the worker knows whether to retry, fall back, stop the sender or dead-letter the job.
//
// The Client is safe for concurrent use and is meant to be shared by every worker goroutine.
// It logs nothing: failures come back as *provider.Error values whose Reason is already
// sanitised (no token, no full phone number).
package white

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/jsonw"
	"github.com/herald-notify/herald/internal/phone"
	"github.com/herald-notify/herald/internal/provider"
)

// Defaults applied by New to a zero Config field.
const (
	DefaultBaseURL = "https://graph.facebook.com"
	DefaultVersion = "v21.0"
	DefaultTimeout = 15 * time.Second
)

const (
	// maxResponse bounds what Send reads of an answer: a send answer is a few hundred bytes,
	// anything near this is not the Cloud API talking.
	maxResponse = 1 << 20
	// maxListPage bounds one page of the template listing (100 templates with components).
	maxListPage = 8 << 20
	// maxListPages stops a listing whose paging never ends.
	maxListPages = 10_000
)

var tracer = otel.Tracer("github.com/herald-notify/herald/internal/white")

// Config is one sender on the Cloud API (HERALD_WHITE_* variables).
type Config struct {
	// BaseURL is the Graph API root; a BSP's mirror or the simulator in tests.
	BaseURL string
	// Version is the Graph API version path segment, e.g. "v21.0".
	Version string
	// PhoneNumberID is the business phone number's id: messages are sent from it.
	PhoneNumberID string
	// WABAID is the WhatsApp Business Account id: templates are listed from it.
	WABAID string
	// Token is the system-user access token. It only ever goes into the Authorization header.
	Token string
	// Timeout bounds one HTTP call (one send, one listing page).
	Timeout time.Duration
}

// Client talks to the Cloud API for one sender.
type Client struct {
	hc      *http.Client
	timeout time.Duration
	token   string
	auth    string // "Bearer <token>", built once
	sendURL string
	listURL string
	base    *url.URL // scheme and host that paging links must keep
}

// New returns a Client for cfg. With hc nil it uses its own HTTP client whose keep-alive pool
// holds enough idle connections for 256 concurrent sends to one host.
func New(cfg Config, hc *http.Client) *Client {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.Version == "" {
		cfg.Version = DefaultVersion
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if hc == nil {
		hc = newHTTPClient()
	}
	root := strings.TrimRight(cfg.BaseURL, "/") + "/" + strings.Trim(cfg.Version, "/") + "/"
	base, _ := url.Parse(root) // an unparsable BaseURL fails every request with a clear error
	if base == nil {
		base = &url.URL{}
	}
	return &Client{
		hc:      hc,
		timeout: cfg.Timeout,
		token:   cfg.Token,
		auth:    "Bearer " + cfg.Token,
		sendURL: root + url.PathEscape(cfg.PhoneNumberID) + "/messages",
		listURL: root + url.PathEscape(cfg.WABAID) + "/message_templates?limit=100",
		base:    base,
	}
}

// newHTTPClient is tuned for many concurrent sends to one host. It has no Client.Timeout:
// every call carries its own deadline through its context.
func newHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 512
	// The default of 2 idle connections per host would make 254 of 256 concurrent sends
	// open a fresh TLS connection every time.
	t.MaxIdleConnsPerHost = 256
	t.IdleConnTimeout = 90 * time.Second
	return &http.Client{Transport: t}
}

// Message is one outbound Cloud API message. Exactly one of Template, Text or Media is used,
// in that order of precedence.
type Message struct {
	// JobID is the job's ref (<tenant>/<id>); it goes into biz_opaque_callback_data, so
	// status webhooks name the job and its tenant.
	JobID string
	// To is the recipient in E.164 ("+79001234567"); it is sent as digits.
	To string
	// Template is the rendered "template" object (marshals to {"name","language":{"code"},
	// "components"}); nil for a message inside the 24-hour window.
	Template any
	// Text is a free-form text body (inside the 24-hour window).
	Text string
	// Media is a media message inside the window, used when Template is nil and Text empty.
	Media *job.Media
}

// outMessage is the POST /messages body, in the field order of Meta's own examples.
type outMessage struct {
	MessagingProduct string    `json:"messaging_product"`
	RecipientType    string    `json:"recipient_type"`
	To               string    `json:"to"`
	Type             string    `json:"type"`
	Template         any       `json:"template,omitempty"`
	Text             *outText  `json:"text,omitempty"`
	Image            *outMedia `json:"image,omitempty"`
	Video            *outMedia `json:"video,omitempty"`
	Document         *outMedia `json:"document,omitempty"`
	BizOpaque        string    `json:"biz_opaque_callback_data,omitempty"`
}

type outText struct {
	Body       string `json:"body"`
	PreviewURL bool   `json:"preview_url,omitempty"`
}

type outMedia struct {
	Link     string `json:"link"`
	Caption  string `json:"caption,omitempty"`
	Filename string `json:"filename,omitempty"`
}

// build turns m into the request body shape, or a Job error for a message that can never be
// sent (a caller bug, not a provider answer).
func build(m Message) (outMessage, error) {
	to := phone.Digits(strings.TrimSpace(m.To))
	if to == "" || strings.TrimLeft(to, "0123456789") != "" {
		return outMessage{}, invalid("recipient is not an E.164 number")
	}
	out := outMessage{
		MessagingProduct: "whatsapp",
		RecipientType:    "individual",
		To:               to,
		BizOpaque:        m.JobID,
	}
	switch {
	case m.Template != nil:
		out.Type, out.Template = "template", m.Template
	case m.Text != "":
		// A link preview is what a customer expects for "track your order: https://...";
		// without a URL the flag would only cost bytes.
		out.Type = "text"
		out.Text = &outText{Body: m.Text, PreviewURL: strings.Contains(m.Text, "https://") || strings.Contains(m.Text, "http://")}
	case m.Media != nil:
		if m.Media.URL == "" {
			return outMessage{}, invalid("media has no url")
		}
		md := &outMedia{Link: m.Media.URL, Caption: cutRunes(m.Media.Caption, MaxCaption)}
		out.Type = m.Media.Type
		switch m.Media.Type {
		case job.MediaImage:
			out.Image = md
		case job.MediaVideo:
			out.Video = md
		case job.MediaDocument:
			md.Filename = m.Media.Filename // only documents carry a file name on the Cloud API
			out.Document = md
		default:
			return outMessage{}, invalid(fmt.Sprintf("unsupported media type %q", m.Media.Type))
		}
	default:
		return outMessage{}, invalid("message has no template, text or media")
	}
	return out, nil
}

// MaxCaption is the longest media caption the Cloud API takes, in characters. A window media
// message may carry the job's text (up to 4,096 characters) as its caption, so build cuts it.
const MaxCaption = 1024

// cutRunes returns s cut to at most n characters, on a character boundary: a caption cut
// inside a multi-byte letter would no longer be valid UTF-8.
func cutRunes(s string, n int) string {
	if len(s) <= n { // fewer bytes than n: fewer characters too
		return s
	}
	i := 0
	for j := range s {
		if i == n {
			return s[:j]
		}
		i++
	}
	return s
}

func invalid(reason string) *provider.Error {
	return &provider.Error{Kind: provider.Job, Code: "invalid_message", Reason: reason}
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getBuf() *bytes.Buffer {
	b := bufPool.Get().(*bytes.Buffer)
	b.Reset()
	return b
}

func putBuf(b *bytes.Buffer) {
	if b.Cap() <= 64<<10 { // don't let one huge answer pin memory in the pool
		bufPool.Put(b)
	}
}

// encode marshals v through a pooled buffer and returns an exact-size copy. The copy is
// deliberate: the transport may still read a request body after Do returns (HTTP/2 resets,
// redirects via GetBody), so a pooled buffer must never be the body itself.
func encode(v any) ([]byte, error) {
	buf := getBuf()
	defer putBuf(buf)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false) // URLs keep their "&" readable; both forms are valid JSON
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.Clone(bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})), nil
}

// jsonAppender is a template that writes its own JSON, as encoding/json with HTML escaping
// off would (*templates.WhiteTemplate): the body is then built without reflection.
type jsonAppender interface{ AppendJSON(b []byte) []byte }

// encodeMessage is encode(out), byte for byte (TestEncodeMessageMatchesEncode), written by
// hand when the template is nil or a jsonAppender. The slice is the caller's own: no pool
// buffer is ever a request body.
func encodeMessage(out outMessage) ([]byte, error) {
	var tpl jsonAppender
	if out.Template != nil {
		a, ok := out.Template.(jsonAppender)
		if v := reflect.ValueOf(out.Template); !ok || (v.Kind() == reflect.Pointer && v.IsNil()) {
			return encode(out)
		}
		tpl = a
	}
	b := make([]byte, 0, 1024) // a template send is 500-900 bytes
	b = append(b, `{"messaging_product":`...)
	b = jsonw.String(b, out.MessagingProduct)
	b = append(b, `,"recipient_type":`...)
	b = jsonw.String(b, out.RecipientType)
	b = append(b, `,"to":`...)
	b = jsonw.String(b, out.To)
	b = append(b, `,"type":`...)
	b = jsonw.String(b, out.Type)
	if tpl != nil {
		b = append(b, `,"template":`...)
		b = tpl.AppendJSON(b)
	}
	if t := out.Text; t != nil {
		b = append(b, `,"text":{"body":`...)
		b = jsonw.String(b, t.Body)
		if t.PreviewURL {
			b = append(b, `,"preview_url":true`...)
		}
		b = append(b, '}')
	}
	for _, m := range []struct {
		key   string
		media *outMedia
	}{{"image", out.Image}, {"video", out.Video}, {"document", out.Document}} {
		if m.media == nil {
			continue
		}
		b = append(b, `,"`...)
		b = append(b, m.key...)
		b = append(b, `":{"link":`...)
		b = jsonw.String(b, m.media.Link)
		b = jsonw.Field(b, "caption", m.media.Caption)
		b = jsonw.Field(b, "filename", m.media.Filename)
		b = append(b, '}')
	}
	b = jsonw.Field(b, "biz_opaque_callback_data", out.BizOpaque)
	return append(b, '}'), nil
}

// Send sends m and returns the wamid. Failures are *provider.Error values, except when ctx
// itself ends: then the error wraps ctx.Err() so the worker can tell "we were told to stop"
// from a provider timeout (which is a Retry with Code "timeout").
func (c *Client) Send(ctx context.Context, m Message) (provider.Result, error) {
	ctx, span := tracer.Start(ctx, "whatsapp.send",
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("messaging.system", "whatsapp"),
			attribute.String("messaging.operation.name", "send"),
			attribute.String("herald.job_id", m.JobID),
		))
	defer span.End()

	res, status, err := c.send(ctx, m, span)
	if status != 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", status))
	}
	if err != nil {
		span.RecordError(err) // error texts are sanitised: no token, no full number
		span.SetStatus(codes.Error, err.Error())
		var pe *provider.Error
		if errors.As(err, &pe) {
			span.SetAttributes(attribute.String("herald.outcome", pe.Kind.String()), attribute.String("whatsapp.error_code", pe.Code))
		}
		return provider.Result{}, err
	}
	span.SetAttributes(attribute.String("messaging.message.id", res.MessageID))
	return res, nil
}

func (c *Client) send(ctx context.Context, m Message, span trace.Span) (provider.Result, int, error) {
	out, err := build(m)
	if err != nil {
		return provider.Result{}, 0, err
	}
	span.SetAttributes(attribute.String("whatsapp.message_type", out.Type))
	body, err := encodeMessage(out)
	if err != nil {
		return provider.Result{}, 0, &provider.Error{Kind: provider.Job, Code: "invalid_message", Reason: "encode message: " + c.sanitize(err.Error()), Err: err}
	}

	cctx, cancel := context.WithTimeoutCause(ctx, c.timeout, errClientTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodPost, c.sendURL, bytes.NewReader(body))
	if err != nil {
		return provider.Result{}, 0, &provider.Error{Kind: provider.Sender, Code: "bad_config", Reason: "build request: " + c.sanitize(err.Error())}
	}
	req.Header["Authorization"] = []string{c.auth}
	req.Header["Content-Type"] = []string{"application/json"}
	req.Header["Accept"] = []string{"application/json"}
	otel.GetTextMapPropagator().Inject(cctx, propagation.HeaderCarrier(req.Header))

	resp, err := c.hc.Do(req)
	if err != nil {
		return provider.Result{}, 0, c.transportError(ctx, cctx, err)
	}
	defer resp.Body.Close()

	buf := getBuf()
	defer putBuf(buf)
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, maxResponse+1)); err != nil {
		return provider.Result{}, resp.StatusCode, c.transportError(ctx, cctx, err)
	}
	oversized := buf.Len() > maxResponse
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		if oversized {
			return provider.Result{}, resp.StatusCode, c.statusError(resp, nil, "answer larger than 1 MiB")
		}
		return provider.Result{}, resp.StatusCode, c.statusError(resp, buf.Bytes(), "")
	}
	var ok struct {
		Messages []struct {
			ID string `json:"id"`
		} `json:"messages"`
	}
	if oversized || json.Unmarshal(buf.Bytes(), &ok) != nil || len(ok.Messages) == 0 || ok.Messages[0].ID == "" {
		// The message may or may not have gone out. Retry rather than fall back: a duplicate
		// WhatsApp message is the lesser harm than a lost notification, and a 2xx without a
		// wamid means something between us and Meta is broken, which passes.
		return provider.Result{}, resp.StatusCode, &provider.Error{
			Kind: provider.Retry, Code: "bad_response",
			Reason: fmt.Sprintf("HTTP %d without a message id: %s", resp.StatusCode, c.snippet(buf.Bytes())),
		}
	}
	return provider.Result{MessageID: ok.Messages[0].ID}, resp.StatusCode, nil
}

// errClientTimeout is the cause of the Client's own per-call deadline.
var errClientTimeout = errors.New("white: call timed out")

// transportError classifies a failed round trip. parent is the caller's context, cctx the
// one with the Client's own deadline.
func (c *Client) transportError(parent, cctx context.Context, err error) error {
	return provider.TransportError(parent, cctx, err, provider.Call{Prefix: "white", Name: "the Cloud API",
		Timeout: c.timeout, TimeoutCause: errClientTimeout, Secrets: []string{c.token}, MaxReason: maxReason})
}

// statusError classifies a non-2xx answer (or an oversized one, with note set).
func (c *Client) statusError(resp *http.Response, body []byte, note string) *provider.Error {
	var pe *provider.Error
	if ge := parseGraphError(body); ge != nil {
		ge.Message, ge.Details = c.sanitize(ge.Message), c.sanitize(ge.Details)
		pe = FromGraphError(resp.StatusCode, ge)
	} else {
		if note == "" {
			note = c.snippet(body)
		}
		pe = &provider.Error{
			Kind:   classifyStatus(resp.StatusCode),
			Code:   "http_" + strconv.Itoa(resp.StatusCode),
			Reason: fmt.Sprintf("HTTP %d from the Cloud API: %s", resp.StatusCode, note),
		}
	}
	if pe.Kind == provider.Retry {
		if d := provider.RetryAfter(resp.Header, time.Now()); d > 0 {
			pe.After = d // the server's word beats our per-code guess
		}
	}
	return pe
}

func (c *Client) sanitize(s string) string { return sanitize(s, c.token) }

// snippet is a short, sanitised view of an unexpected body for a Reason.
func (c *Client) snippet(b []byte) string {
	if len(b) > 512 {
		b = b[:512]
	}
	s := c.sanitize(strings.ToValidUTF8(string(b), ""))
	if s == "" {
		return "empty body"
	}
	return s
}

// ListTemplates calls fn with each page of the WABA's message templates (GET
// {base}/{version}/{WABA_ID}/message_templates?limit=100), following paging.next until it is
// absent. Each element is one template definition as the Graph API returns it. An error from
// fn stops the listing and is returned wrapped.
func (c *Client) ListTemplates(ctx context.Context, fn func(page []json.RawMessage) error) error {
	next := c.listURL
	seen := make(map[string]bool)
	for pages := 0; next != ""; pages++ {
		if pages >= maxListPages || seen[next] {
			return errors.New("white: list templates: paging does not end")
		}
		seen[next] = true
		body, err := c.getPage(ctx, next)
		if err != nil {
			return fmt.Errorf("white: list templates: %w", err)
		}
		var page struct {
			Data   []json.RawMessage `json:"data"`
			Paging struct {
				Next string `json:"next"`
			} `json:"paging"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			return fmt.Errorf("white: list templates: %w", &provider.Error{
				Kind: provider.Retry, Code: "bad_response", Reason: "undecodable template page: " + c.snippet(body), Err: err})
		}
		if err := fn(page.Data); err != nil {
			return fmt.Errorf("white: list templates: %w", err)
		}
		if next, err = c.nextPage(page.Paging.Next); err != nil {
			return fmt.Errorf("white: list templates: %w", err)
		}
	}
	return nil
}

// nextPage vets a paging.next link: it must stay on the configured host, since the bearer
// token goes with it, and its access_token query parameter (Graph echoes one) is dropped:
// the header already authenticates and a URL ends up in error texts.
func (c *Client) nextPage(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("paging.next is not a URL")
	}
	if !strings.EqualFold(u.Scheme, c.base.Scheme) || !strings.EqualFold(u.Host, c.base.Host) {
		return "", fmt.Errorf("paging.next leaves %s for %s: refused", c.base.Host, u.Host)
	}
	q := u.Query()
	if q.Has("access_token") {
		q.Del("access_token")
		u.RawQuery = q.Encode()
	}
	return u.String(), nil
}

func (c *Client) getPage(ctx context.Context, u string) ([]byte, error) {
	cctx, cancel := context.WithTimeoutCause(ctx, c.timeout, errClientTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, &provider.Error{Kind: provider.Sender, Code: "bad_config", Reason: "build request: " + c.sanitize(err.Error())}
	}
	req.Header["Authorization"] = []string{c.auth}
	req.Header["Accept"] = []string{"application/json"}
	otel.GetTextMapPropagator().Inject(cctx, propagation.HeaderCarrier(req.Header))
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, cctx, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxListPage+1))
	if err != nil {
		return nil, c.transportError(ctx, cctx, err)
	}
	oversized := len(body) > maxListPage
	switch {
	case (resp.StatusCode < 200 || resp.StatusCode > 299) && oversized:
		return nil, c.statusError(resp, nil, "answer larger than 8 MiB")
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return nil, c.statusError(resp, body, "")
	case oversized:
		return nil, &provider.Error{Kind: provider.Retry, Code: "bad_response", Reason: "template page larger than 8 MiB"}
	}
	return body, nil
}
