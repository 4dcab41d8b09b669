// Package grey is the adapter for the "grey" channel: an unofficial WhatsApp gateway that
// drives WhatsApp Web through a phone, with GREEN-API's REST shape
// ({base}/waInstance{id}/{method}/{token}). It sends text (sendMessage) and files by URL
// (sendFileByUrl), classifies every answer into a provider.Kind, parses the gateway's
// webhooks, and guards the instance with a circuit breaker.
//
// A grey instance can stop working without notice: the phone goes offline (sleepMode), the
// session is logged out (notAuthorized), the number is warned (yellowCard) or banned
// (blocked). The breaker learns of it from getStateInstance probes ([Client.Watch]),
// stateInstanceChanged webhooks ([Client.ObserveState]), error answers and repeated failures,
// and while it is open [Client.Send] fails at once with a Channel error, so the worker falls
// back to the next channel without a failed HTTP send per job.
//
// The Client is safe for concurrent use. The token is part of every URL; it never appears
// in an error, a reason or a log line.
package grey

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/phone"
	"github.com/herald-notify/herald/internal/provider"
)

// Defaults applied by New to a zero Config field.
const (
	DefaultTimeout    = 15 * time.Second
	DefaultWatchEvery = 30 * time.Second
)

const (
	// maxResponse bounds what is read of an answer; GREEN-API answers are tiny.
	maxResponse = 64 << 10
	// maxText is GREEN-API's limit on a text message, in characters.
	maxText = 20000
	// maxReason caps a Reason built from a provider's text.
	maxReason = 300
)

// ErrBreakerOpen is the Err of the *provider.Error that Send returns without calling the
// gateway because the instance's breaker is open; test for it with errors.Is.
var ErrBreakerOpen = errors.New("grey: breaker open")

var tracer = otel.Tracer("github.com/herald-notify/herald/internal/grey")

// Config is one grey instance (HERALD_GREY_* variables).
type Config struct {
	// BaseURL is the gateway's API root (GREEN-API's apiUrl, or the simulator).
	BaseURL string
	// InstanceID is the instance id (idInstance).
	InstanceID string
	// Token is the instance token (apiTokenInstance). It only ever goes into request URLs.
	Token string
	// Logger receives breaker transitions, instance state changes and failed probes; nil
	// discards.
	Logger *slog.Logger
	// Breaker tunes the circuit breaker.
	Breaker BreakerConfig
	// Now is the clock of the breaker's cooldown; nil is time.Now.
	Now func() time.Time
	// Timeout bounds one HTTP call; default DefaultTimeout.
	Timeout time.Duration
	// OnBlocked is called when the instance is first seen blocked (banned), with the context
	// of the call that saw it. It runs synchronously and must not call back into the
	// Client (Send, State, ObserveState, Breaker): hooks are serialised, so that a metric
	// sees transitions in order.
	OnBlocked func(ctx context.Context)
	// OnStateChange is called on every breaker transition, in order, under the same rules
	// as OnBlocked; to is the new state, so a gauge needs no call to Breaker.
	OnStateChange func(from, to BreakerState)
}

// Client sends through one grey instance. Create it with New.
type Client struct {
	hc       *http.Client
	timeout  time.Duration
	token    string
	instance string
	sendURL  string
	fileURL  string
	stateURL string
	log      *slog.Logger
	br       *breaker
}

// New returns a Client for cfg. With hc nil it uses its own HTTP client; every call carries
// its own deadline (Config.Timeout) through its context.
func New(cfg Config, hc *http.Client) *Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Breaker.Failures <= 0 {
		cfg.Breaker.Failures = DefaultFailures
	}
	if cfg.Breaker.Cooldown <= 0 {
		cfg.Breaker.Cooldown = DefaultCooldown
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if hc == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 16 // grey is paced at a few messages a second
		hc = &http.Client{Transport: t}
	}
	log := cfg.Logger.With("instance", cfg.InstanceID)
	root := strings.TrimRight(cfg.BaseURL, "/") + "/waInstance" + url.PathEscape(cfg.InstanceID) + "/"
	tok := "/" + url.PathEscape(cfg.Token)
	return &Client{
		hc:       hc,
		timeout:  cfg.Timeout,
		token:    cfg.Token,
		instance: cfg.InstanceID,
		sendURL:  root + "sendMessage" + tok,
		fileURL:  root + "sendFileByUrl" + tok,
		stateURL: root + "getStateInstance" + tok,
		log:      log,
		br: &breaker{
			failures: cfg.Breaker.Failures,
			cooldown: cfg.Breaker.Cooldown,
			now:      cfg.Now,
			onChange: cfg.OnStateChange,
			onBlock:  cfg.OnBlocked,
			log:      log,
		},
	}
}

// Message is one outbound grey message.
type Message struct {
	// JobID names the job in traces. GREEN-API echoes nothing back: status webhooks are
	// matched by the returned idMessage.
	JobID string
	// To is the recipient in E.164 ("+79001234567"); it becomes the chatId 79001234567@c.us.
	To string
	// Text is the rendered message; with Media it is the caption (Media.Caption when empty).
	Text string
	// Media, when set, is sent with sendFileByUrl.
	Media *job.Media
}

type textBody struct {
	ChatID  string `json:"chatId"`
	Message string `json:"message"`
}

type fileBody struct {
	ChatID   string `json:"chatId"`
	URLFile  string `json:"urlFile"`
	FileName string `json:"fileName"`
	Caption  string `json:"caption,omitempty"`
}

// build returns the endpoint and body for m, or a Job error for a message that can never be
// sent (a caller bug, not a provider answer).
func (c *Client) build(m Message) (endpoint, kind string, body any, err error) {
	to := phone.Digits(strings.TrimSpace(m.To))
	if to == "" || strings.TrimLeft(to, "0123456789") != "" {
		return "", "", nil, invalid("recipient is not an E.164 number")
	}
	chatID := to + "@c.us"
	if m.Media != nil {
		if m.Media.URL == "" {
			return "", "", nil, invalid("media has no url")
		}
		caption := m.Text
		if caption == "" {
			caption = m.Media.Caption
		}
		if utf8.RuneCountInString(caption) > maxText {
			return "", "", nil, tooLong()
		}
		return c.fileURL, "file", fileBody{ChatID: chatID, URLFile: m.Media.URL, FileName: fileName(m.Media), Caption: caption}, nil
	}
	switch n := utf8.RuneCountInString(m.Text); {
	case n == 0:
		return "", "", nil, invalid("message has no text or media")
	case n > maxText:
		return "", "", nil, tooLong()
	}
	return c.sendURL, "text", textBody{ChatID: chatID, Message: m.Text}, nil
}

func invalid(reason string) *provider.Error {
	return &provider.Error{Kind: provider.Job, Code: "invalid_message", Reason: reason}
}

// tooLong is a Channel error: SMS or white may still carry the message.
func tooLong() *provider.Error {
	return &provider.Error{Kind: provider.Channel, Code: "grey_text_too_long",
		Reason: fmt.Sprintf("text longer than the gateway's %d characters", maxText)}
}

// fileName is the file name GREEN-API needs (it picks the message type by its extension):
// the media's own, else the URL's last path segment, else a name for the media type.
func fileName(md *job.Media) string {
	if md.Filename != "" {
		return md.Filename
	}
	if u, err := url.Parse(md.URL); err == nil {
		if b := path.Base(u.Path); strings.Contains(b, ".") && b != "." && b != ".." {
			return b
		}
	}
	switch md.Type {
	case job.MediaImage:
		return "image.jpg"
	case job.MediaVideo:
		return "video.mp4"
	}
	return "document.pdf"
}

// Send sends m and returns its idMessage. Failures are *provider.Error values, except when
// ctx itself ends: then the error wraps ctx.Err(). While the breaker is open Send makes no
// request and returns a Channel error with Code "breaker_open" wrapping ErrBreakerOpen.
func (c *Client) Send(ctx context.Context, m Message) (provider.Result, error) {
	ctx, span := tracer.Start(ctx, "grey.send",
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("messaging.system", "whatsapp"),
			attribute.String("messaging.operation.name", "send"),
			attribute.String("herald.job_id", m.JobID),
			attribute.String("herald.grey_instance", c.instance),
		))
	defer span.End()
	res, err := c.send(ctx, m, span)
	if err != nil {
		span.RecordError(err) // error texts are sanitised: no token, no full number
		span.SetStatus(codes.Error, err.Error())
		var pe *provider.Error
		if errors.As(err, &pe) {
			span.SetAttributes(attribute.String("herald.outcome", pe.Kind.String()), attribute.String("grey.error_code", pe.Code))
		}
		return provider.Result{}, err
	}
	span.SetAttributes(attribute.String("messaging.message.id", res.MessageID))
	return res, nil
}

func (c *Client) send(ctx context.Context, m Message, span trace.Span) (provider.Result, error) {
	endpoint, kind, body, err := c.build(m)
	if err != nil {
		return provider.Result{}, err
	}
	span.SetAttributes(attribute.String("grey.message_type", kind))
	if ok, reason := c.br.allow(); !ok {
		return provider.Result{}, &provider.Error{Kind: provider.Channel, Code: "breaker_open",
			Reason: "grey instance " + c.instance + " unavailable: " + reason, Err: ErrBreakerOpen}
	}
	// From here on every path feeds the breaker, which also ends a half-open trial.
	raw, err := json.Marshal(body)
	if err != nil { // cannot happen: plain strings
		c.br.record(ctx, neutral, "", "")
		return provider.Result{}, &provider.Error{Kind: provider.Job, Code: "invalid_message", Reason: "encode message", Err: err}
	}
	status, answer, hdr, err := c.call(ctx, http.MethodPost, endpoint, raw)
	if err != nil {
		c.feedTransport(ctx, err)
		return provider.Result{}, err
	}
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	if status < 200 || status > 299 {
		pe, o, st := c.classify(status, answer, hdr)
		c.br.record(ctx, o, st, pe.Reason)
		return provider.Result{}, pe
	}
	var ok struct {
		IDMessage string `json:"idMessage"`
	}
	if json.Unmarshal(answer, &ok) != nil || ok.IDMessage == "" {
		// The message may or may not have gone out; as for white, a duplicate is the lesser
		// harm than a lost notification.
		pe := &provider.Error{Kind: provider.Retry, Code: "bad_response",
			Reason: fmt.Sprintf("HTTP %d without an idMessage: %s", status, c.snippet(answer))}
		c.br.record(ctx, failure, "", pe.Reason)
		return provider.Result{}, pe
	}
	c.br.record(ctx, healthy, "", "")
	return provider.Result{MessageID: ok.IDMessage}, nil
}

// feedTransport tells the breaker about a failed round trip: the caller giving up says
// nothing about the instance.
func (c *Client) feedTransport(ctx context.Context, err error) {
	var pe *provider.Error
	if ctx.Err() != nil || !errors.As(err, &pe) {
		c.br.record(ctx, neutral, "", "")
		return
	}
	c.br.record(ctx, failure, "", pe.Reason)
}

// errClientTimeout is the cause of the Client's own per-call deadline.
var errClientTimeout = errors.New("grey: call timed out")

// call makes one request and returns the status, the body (at most maxResponse bytes) and
// the header. A failed round trip comes back classified by provider.TransportError.
func (c *Client) call(ctx context.Context, method, u string, body []byte) (int, []byte, http.Header, error) {
	cctx, cancel := context.WithTimeoutCause(ctx, c.timeout, errClientTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(cctx, method, u, rd)
	if err != nil {
		// The URL holds the token: never show it.
		return 0, nil, nil, &provider.Error{Kind: provider.Sender, Code: "bad_config", Reason: "build request: invalid grey base URL"}
	}
	if body != nil {
		req.Header["Content-Type"] = []string{"application/json"}
	}
	req.Header["Accept"] = []string{"application/json"}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, nil, c.transportError(ctx, cctx, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return 0, nil, nil, c.transportError(ctx, cctx, err)
	}
	return resp.StatusCode, b, resp.Header, nil
}

func (c *Client) transportError(parent, cctx context.Context, err error) error {
	return provider.TransportError(parent, cctx, err, provider.Call{Prefix: "grey", Name: "the grey gateway",
		Timeout: c.timeout, TimeoutCause: errClientTimeout, Secrets: []string{c.token}, MaxReason: maxReason})
}

// classify maps a non-2xx answer to an error, what it says about the instance's health and
// the instance state it reveals ("" if none). The table follows GREEN-API's common errors.
func (c *Client) classify(status int, body []byte, hdr http.Header) (*provider.Error, outcome, string) {
	desc := c.description(body)
	code := "http_" + strconv.Itoa(status)
	reason := fmt.Sprintf("HTTP %d from the grey gateway: %s", status, desc)
	lower := strings.ToLower(desc)
	switch {
	case status == http.StatusTooManyRequests:
		return &provider.Error{Kind: provider.Retry, Code: code, Reason: reason,
			After: provider.RetryAfter(hdr, time.Now())}, neutral, ""
	case status >= 500:
		return &provider.Error{Kind: provider.Retry, Code: code, Reason: reason}, failure, ""
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return &provider.Error{Kind: provider.Sender, Code: code,
			Reason: fmt.Sprintf("HTTP %d from the grey gateway: instance id or token refused", status)}, fatal, ""
	case status == 466:
		return &provider.Error{Kind: provider.Sender, Code: "grey_quota",
			Reason: "HTTP 466 from the grey gateway: the instance's quota is used up"}, fatal, ""
	case status == http.StatusNotFound:
		// GREEN-API answers 404 for a wrong method or URL: our configuration, for every job.
		return &provider.Error{Kind: provider.Sender, Code: code, Reason: reason}, fatal, ""
	case status == http.StatusBadRequest && strings.Contains(lower, "starting process"):
		return &provider.Error{Kind: provider.Retry, Code: "grey_starting", Reason: reason}, failure, ""
	case status == http.StatusBadRequest && strings.Contains(lower, "not authorized"):
		return &provider.Error{Kind: provider.Sender, Code: "grey_notAuthorized", Reason: reason}, fatal, StateNotAuthorized
	case status == http.StatusBadRequest && (strings.Contains(lower, "expired") || strings.Contains(lower, "deleted")):
		return &provider.Error{Kind: provider.Sender, Code: "grey_instance_gone", Reason: reason}, fatal, ""
	case status == http.StatusBadRequest && strings.Contains(lower, "chatid"):
		return &provider.Error{Kind: provider.Channel, Code: "grey_bad_chat",
			Reason: "not on WhatsApp or not a valid chat: " + desc}, healthy, ""
	}
	// Any other refusal is about this message on this channel; SMS may still carry it.
	return &provider.Error{Kind: provider.Channel, Code: code, Reason: reason}, healthy, ""
}

// description is the sanitised error text of an answer: GREEN-API's "description" or
// "message" field, else the body itself.
func (c *Client) description(body []byte) string {
	var e struct {
		Description string `json:"description"`
		Message     string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil {
		if e.Description != "" {
			return provider.Sanitize(e.Description, maxReason, c.token)
		}
		if e.Message != "" {
			return provider.Sanitize(e.Message, maxReason, c.token)
		}
	}
	return c.snippet(body)
}

func (c *Client) snippet(b []byte) string {
	if len(b) > 512 {
		b = b[:512]
	}
	if s := provider.Sanitize(string(b), maxReason, c.token); s != "" {
		return s
	}
	return "empty body"
}

// State asks the gateway for the instance's state (getStateInstance) and feeds the answer to
// the breaker: a bad state opens it, "authorized" closes a breaker opened by a bad state and
// moves one opened by failures to half-open. Failures are *provider.Error values and count
// towards the breaker like failed sends.
func (c *Client) State(ctx context.Context) (string, error) {
	status, body, hdr, err := c.call(ctx, http.MethodGet, c.stateURL, nil)
	if err != nil {
		c.feedTransport(ctx, err)
		return "", err
	}
	if status < 200 || status > 299 {
		pe, o, st := c.classify(status, body, hdr)
		c.br.record(ctx, o, st, pe.Reason)
		return "", pe
	}
	var ans struct {
		StateInstance string `json:"stateInstance"`
	}
	if json.Unmarshal(body, &ans) != nil || ans.StateInstance == "" {
		pe := &provider.Error{Kind: provider.Retry, Code: "bad_response",
			Reason: fmt.Sprintf("HTTP %d without a stateInstance: %s", status, c.snippet(body))}
		c.br.record(ctx, failure, "", pe.Reason)
		return "", pe
	}
	c.br.observe(ctx, ans.StateInstance)
	return ans.StateInstance, nil
}

// Watch probes the instance's state every interval (DefaultWatchEvery when every is not
// positive), starting at once, until ctx ends. Failed probes are logged and count towards
// the breaker.
func (c *Client) Watch(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultWatchEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := c.State(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("grey: state probe failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ObserveState feeds an instance state from elsewhere (a stateInstanceChanged webhook, or
// "yellowCard" from an outgoingMessageStatus webhook) to the breaker, as State does with its
// answer. ctx is passed to OnBlocked.
func (c *Client) ObserveState(ctx context.Context, state string) {
	if state == "" {
		return
	}
	c.br.observe(ctx, state)
}

// Breaker returns the breaker's state (an open breaker whose cooldown has passed reports
// half-open), for metrics.
func (c *Client) Breaker() BreakerState { return c.br.State() }

// Instance returns the instance id, for metric labels.
func (c *Client) Instance() string { return c.instance }
