// Package sim is Herald's provider simulator: an in-process HTTP server that speaks the
// WhatsApp Cloud API (sends, template listing, signed status webhooks, phone number quality
// and account updates), a GREEN-API style grey gateway and Kannel's sendsms (with dlr-url
// delivery reports), with injectable errors, latency and a control API.
//
// It serves any number of business phone numbers and grey instances (see [Config]), each with
// its own credentials, counters, error rules and webhooks: a status names the number that sent
// it and is signed with that number's app secret; a grey notification names its instance and
// carries its webhook token.
//
// The control API: GET/DELETE /sim/messages (?channel=, ?phone_number_id=, ?instance=, ?to=),
// GET/POST/DELETE /sim/rules (a [Rule] may name a phone_number_id or an instance), GET
// /sim/stats (per channel, per number, per instance), GET/POST /sim/grey/state
// (?instance=), POST /sim/grey/incoming, POST /sim/quality ([QualityUpdate]) and POST
// /sim/account ([AccountUpdate]).
//
// Tests, benchmarks and `herald dev` mount [Sim.Handler] on a listener; `herald sim` runs it
// alone. It is built to be fast enough not to be the bottleneck of a benchmark: the request
// path holds no lock across I/O, counters are atomic, and status webhooks and delivery reports
// leave through bounded queues drained by background goroutines started with [Sim.Start].
package sim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-notify/herald/internal/job"
)

// Config configures a Sim. The zero value is a working simulator that accepts any
// credentials and sends no webhooks.
//
// Any number of business phone numbers and grey instances: the single fields
// (PhoneNumberID, Token, AppSecret, GreyInstanceID, ...) describe one, or are the defaults of
// the numbers and instances listed in PhoneNumberIDs and GreyInstanceIDs, whose own values the
// maps keyed by phone number id or instance id give. [Config.WithFleet] fills them from a
// fleet file.
type Config struct {
	// PhoneNumberID is the business phone number id accepted in the Cloud API send path;
	// "" (with no PhoneNumberIDs) accepts any.
	PhoneNumberID string
	// PhoneNumberIDs are more phone number ids accepted beside PhoneNumberID.
	PhoneNumberIDs []string
	// WABAID is the WhatsApp Business Account id accepted in the template listing path;
	// "" (with no WABAIDs) accepts any. It is also the entry id of status webhooks.
	WABAID string
	// WABAIDs are the WABA ids of numbers (phone number id → WABA id): the entry id of their
	// webhooks, and accepted in the template listing path. A number without one has WABAID.
	WABAIDs map[string]string
	// Token is the Bearer token required on Cloud API calls; "" (with no Tokens) accepts any.
	Token string
	// Tokens are numbers' own tokens (phone number id → token); a number without one takes
	// Token. The template listing accepts any of them.
	Tokens map[string]string
	// AppSecret signs status webhooks: X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>.
	AppSecret string
	// AppSecrets are numbers' own app secrets (phone number id → secret); the webhooks of a
	// number without one are signed with AppSecret. Statuses of numbers with different
	// secrets never share a POST.
	AppSecrets map[string]string
	// WebhookURL is where Cloud API webhooks (statuses, quality and account updates) are
	// POSTed; "" sends none.
	WebhookURL string
	// DisplayPhoneNumber is metadata.display_phone_number in status webhooks and the grey
	// instance's wid; default "15550000000".
	DisplayPhoneNumber string
	// DisplayPhoneNumbers are numbers' own display numbers (phone number id → digits): their
	// webhooks' metadata.display_phone_number, and the display_phone_number and phone_number
	// of their quality and account updates. A number without one has DisplayPhoneNumber.
	DisplayPhoneNumbers map[string]string
	// StatusDelay is the delay before each of sent, delivered and read (and before each
	// Kannel delivery report); 0 reports as fast as possible.
	StatusDelay time.Duration
	// Statuses lists the statuses reported for an accepted send, in order; default
	// {"sent","delivered","read"}.
	Statuses []string
	// Latency is added to every provider response (not to the control API).
	Latency time.Duration
	// Jitter is a random extra latency, uniformly up to this.
	Jitter time.Duration
	// KannelUser and KannelPassword are the sendsms credentials; "" accepts any.
	KannelUser, KannelPassword string
	// GreyInstanceID and GreyToken are the GREEN-API instance and token accepted in the grey
	// path; "" (with no GreyInstanceIDs, GreyTokens) accepts any.
	GreyInstanceID, GreyToken string
	// GreyInstanceIDs are more instances accepted beside GreyInstanceID.
	GreyInstanceIDs []string
	// GreyTokens are instances' own tokens (instance id → apiTokenInstance); an instance
	// without one takes GreyToken.
	GreyTokens map[string]string
	// GreyWids are instances' own numbers (instance id → digits), instanceData.wid of their
	// notifications; default DisplayPhoneNumber.
	GreyWids map[string]string
	// GreyWebhookURL is where GREEN-API style notifications (outgoingMessageStatus,
	// stateInstanceChanged, incomingMessageReceived) are POSTed; "" sends none.
	GreyWebhookURL string
	// GreyWebhookToken is sent as "Authorization: Bearer <token>" on grey notifications, as
	// GREEN-API sends an instance's webhookUrlToken; "" sends none.
	GreyWebhookToken string
	// GreyWebhookTokens are instances' own webhook tokens; default GreyWebhookToken.
	GreyWebhookTokens map[string]string
	// GreyNoAccount lists numbers (E.164 or digits) that have no WhatsApp account: grey sends
	// to them are accepted, as GREEN-API does, and then reported with status noAccount.
	GreyNoAccount []string
	// Templates are the definitions served by the template listing (Cloud API JSON objects).
	// Templates submitted with POST /<WABA>/message_templates join them (review.go).
	Templates []json.RawMessage
	// ReviewDelay is how long a submitted template stays PENDING before the simulator
	// approves or rejects it, as the lint predicts; 0 is DefaultReviewDelay.
	ReviewDelay time.Duration
	// MaxMessages bounds the messages kept for [Sim.Messages] (the oldest are forgotten);
	// 0 keeps all. Long benchmarks and `herald dev` should set it.
	MaxMessages int
	// Logger receives warnings (dropped or failed webhooks); nil discards.
	Logger *slog.Logger
	// HTTPClient posts webhooks and calls DLR URLs; nil uses a client with a 10 s timeout
	// and a connection pool sized for loopback benchmarks.
	HTTPClient *http.Client
}

// Message is one request the simulator accepted, or answered with an injected error.
type Message struct {
	// Seq is the arrival order, from 1 (reset by [Sim.Reset]).
	Seq int64 `json:"seq"`
	// Channel is "white", "sms" or "grey".
	Channel string `json:"channel"`
	// To is the recipient's digits, without '+'.
	To string `json:"to"`
	// MessageID is the provider message id returned to the caller (empty on an injected
	// synchronous error).
	MessageID string `json:"message_id,omitempty"`
	// PhoneNumberID is the business number a white message was sent from (the id in its
	// path).
	PhoneNumberID string `json:"phone_number_id,omitempty"`
	// Instance is the grey instance a grey message was sent from.
	Instance string `json:"instance,omitempty"`
	// From is an SMS's sender (Kannel's from).
	From string `json:"from,omitempty"`
	// JobID and Tenant come from biz_opaque_callback_data (white) or the id query parameter
	// of a Kannel dlr-url (sms), where Herald puts the job's ref, "<tenant>/<id>"; a value
	// without a slash is all JobID.
	JobID  string `json:"job_id,omitempty"`
	Tenant string `json:"tenant,omitempty"`
	// Type is template, text, image, document, video or sms.
	Type string `json:"type"`
	// Template and Language name the template of a template send.
	Template string `json:"template,omitempty"`
	Language string `json:"language,omitempty"`
	// Text is a text message's body, a media caption or the SMS text.
	Text string `json:"text,omitempty"`
	// Body is the raw request body (Cloud API and grey).
	Body json.RawMessage `json:"body,omitempty"`
	// At is the arrival time.
	At time.Time `json:"at"`
	// ErrorCode is the injected error code, 0 if the request was accepted.
	ErrorCode int `json:"error_code,omitempty"`
	// HTTPStatus is the status the simulator answered.
	HTTPStatus int `json:"http_status"`
}

// Channel names, as in a job's "channels".
const (
	chanWhite = iota
	chanSMS
	chanGrey
	numChannels
)

var channelNames = [numChannels]string{job.ChannelWhite, job.ChannelSMS, job.ChannelGrey}

func channelIndex(name string) (int, bool) {
	for i, n := range channelNames {
		if n == name {
			return i, true
		}
	}
	return 0, false
}

// Default values.
const (
	defaultDisplayPhone = "15550000000"
	defaultPageLimit    = 25
	maxBodyBytes        = 1 << 20
)

// Sim is a provider simulator. Create it with [New]; it is safe for concurrent use.
type Sim struct {
	cfg       Config
	log       *slog.Logger
	client    *http.Client
	handler   http.Handler
	templates []json.RawMessage
	reviews   reviews // submitted templates and their pending verdicts
	idPrefix  string  // random per Sim, so ids from two simulators never collide

	ids   atomic.Uint64 // message and trace id counter
	store store
	rules rules
	// greyStates holds each grey instance's state; greyNoAccount is Config.GreyNoAccount as
	// digits, read-only after New.
	greyStates    greyStates
	greyNoAccount map[string]bool
	counts        [numChannels]channelCounters
	deliver       deliveryCounters
	// senders is the configuration of each number and instance, read-only after New;
	// numbers and instances count each one's outcomes.
	senders   senderConfig
	numbers   senderCounters
	instances senderCounters

	// Background delivery of status webhooks and callbacks.
	started   atomic.Bool
	stages    []chan *event
	whShards  []chan pendingStatus
	cbShards  []chan callback
	steps     stepTable
	shardSeq  atomic.Uint32
	lastDrop  atomic.Int64 // unix nanos of the last drop warning, to rate-limit it
	dropCount atomic.Int64
}

type channelCounters struct {
	accepted, failed, asyncFailed, rejected atomic.Int64
}

type deliveryCounters struct {
	webhookPosts, webhookStatuses, webhookRetries, webhookDropped atomic.Int64
	webhookEvents                                                 atomic.Int64
	callbackCalls, callbackRetries, callbackDropped               atomic.Int64
}

// New returns a simulator for cfg. Call [Sim.Start] to deliver status webhooks and
// delivery reports; without it they queue up to a bound and are then counted as dropped.
func New(cfg Config) *Sim {
	if cfg.DisplayPhoneNumber == "" {
		cfg.DisplayPhoneNumber = defaultDisplayPhone
	}
	if cfg.Statuses == nil {
		cfg.Statuses = []string{"sent", "delivered", "read"}
	}
	s := &Sim{cfg: cfg, log: cfg.Logger, client: cfg.HTTPClient}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.client == nil {
		s.client = defaultClient()
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	s.idPrefix = strings.ToUpper(hex.EncodeToString(b[:]))
	for i, t := range cfg.Templates {
		if !json.Valid(t) {
			s.log.Warn("sim: skipping a template that is not valid JSON", "index", i)
			continue
		}
		s.templates = append(s.templates, t)
	}
	s.greyNoAccount = noAccountSet(cfg.GreyNoAccount)
	s.senders = newSenderConfig(&s.cfg)
	s.store.max = cfg.MaxMessages
	s.steps = newStepTable(cfg.Statuses)
	s.initQueues()
	s.handler = http.HandlerFunc(s.serveHTTP)
	return s
}

func defaultClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// The default of 2 idle connections per host makes every dispatcher goroutine beyond
	// the second dial a new connection per request under load.
	tr.MaxIdleConns = 256
	tr.MaxIdleConnsPerHost = 64
	tr.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return &http.Client{Timeout: 10 * time.Second, Transport: tr}
}

// Handler returns the simulator's HTTP handler: every provider endpoint and the control API.
func (s *Sim) Handler() http.Handler { return s.handler }

// Messages returns a copy of every accepted or error-injected request, in arrival order
// (the newest MaxMessages when that is set).
func (s *Sim) Messages() []Message { return s.store.snapshot() }

// Count returns the number of accepted sends on every channel since New or the last Reset.
func (s *Sim) Count() int {
	n := int64(0)
	for i := range s.counts {
		n += s.counts[i].accepted.Load()
	}
	return int(n)
}

// Reset forgets every message and zeroes the counters. Rules (see [Sim.ClearRules]) and grey
// instance states stay; webhooks already queued are still delivered.
func (s *Sim) Reset() {
	s.store.reset()
	for i := range s.counts {
		c := &s.counts[i]
		c.accepted.Store(0)
		c.failed.Store(0)
		c.asyncFailed.Store(0)
		c.rejected.Store(0)
	}
	d := &s.deliver
	for _, v := range []*atomic.Int64{&d.webhookPosts, &d.webhookStatuses, &d.webhookRetries,
		&d.webhookDropped, &d.webhookEvents, &d.callbackCalls, &d.callbackRetries, &d.callbackDropped} {
		v.Store(0)
	}
	s.numbers.reset()
	s.instances.reset()
}

// Stats are the simulator's counters.
type Stats struct {
	// Channels holds the outcomes per channel ("white", "sms", "grey").
	Channels map[string]ChannelStats `json:"channels"`
	// Numbers holds the outcomes of white sends per business phone number id, Instances of
	// grey sends per instance (requests to an id the simulator does not serve count only in
	// Channels).
	Numbers   map[string]ChannelStats `json:"numbers"`
	Instances map[string]ChannelStats `json:"instances"`
	// Webhooks counts Cloud API status webhook delivery.
	Webhooks WebhookStats `json:"webhooks"`
	// Callbacks counts Kannel DLR and grey status callbacks.
	Callbacks CallbackStats `json:"callbacks"`
}

// ChannelStats counts the outcomes of requests on one channel.
type ChannelStats struct {
	// Accepted sends, including those that will fail asynchronously.
	Accepted int64 `json:"accepted"`
	// Failed counts injected synchronous errors.
	Failed int64 `json:"failed"`
	// AsyncFailed counts accepted sends reported failed by an Async rule.
	AsyncFailed int64 `json:"async_failed"`
	// Rejected counts malformed or unauthorised requests.
	Rejected int64 `json:"rejected"`
}

// WebhookStats counts status webhook delivery.
type WebhookStats struct {
	// Posts is the number of successful POSTs, Statuses the statuses they carried.
	Posts    int64 `json:"posts"`
	Statuses int64 `json:"statuses"`
	// Retries counts failed attempts that were retried.
	Retries int64 `json:"retries"`
	// Dropped counts statuses (and quality and account updates) never delivered: queue
	// full, retries exhausted or shutdown.
	Dropped int64 `json:"dropped"`
	// Events counts the phone_number_quality_update and account_update webhooks delivered.
	Events int64 `json:"events"`
}

// CallbackStats counts Kannel DLR and grey status callbacks.
type CallbackStats struct {
	Calls   int64 `json:"calls"`
	Retries int64 `json:"retries"`
	Dropped int64 `json:"dropped"`
}

// Stats returns a snapshot of the counters.
func (s *Sim) Stats() Stats {
	st := Stats{Channels: make(map[string]ChannelStats, numChannels), Numbers: s.numbers.snapshot(), Instances: s.instances.snapshot()}
	for i := range s.counts {
		st.Channels[channelNames[i]] = s.counts[i].stats()
	}
	d := &s.deliver
	st.Webhooks = WebhookStats{
		Posts:    d.webhookPosts.Load(),
		Statuses: d.webhookStatuses.Load(),
		Retries:  d.webhookRetries.Load(),
		Dropped:  d.webhookDropped.Load(),
		Events:   d.webhookEvents.Load(),
	}
	st.Callbacks = CallbackStats{
		Calls:   d.callbackCalls.Load(),
		Retries: d.callbackRetries.Load(),
		Dropped: d.callbackDropped.Load(),
	}
	return st
}

// serveHTTP routes by hand: the Cloud API's "/{version}/{id}/messages" and GREEN-API's
// "/waInstance{id}/{method}/{token}" overlap as ServeMux patterns, and a switch on path
// segments is also cheaper per request.
func (s *Sim) serveHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/sim/"):
		s.serveControl(w, r)
		return
	case p == "/cgi-bin/sendsms":
		s.serveKannel(w, r)
		return
	case strings.HasPrefix(p, "/waInstance"):
		s.serveGrey(w, r)
		return
	}
	// /{version}/{id}/{edge}
	rest := strings.TrimPrefix(p, "/")
	version, rest, ok1 := strings.Cut(rest, "/")
	id, edge, ok2 := strings.Cut(rest, "/")
	if !ok1 || !ok2 || len(version) < 2 || version[0] != 'v' || id == "" {
		http.NotFound(w, r)
		return
	}
	switch edge {
	case "messages":
		s.serveSend(w, r, id)
	case "message_templates":
		s.serveTemplates(w, r, id)
	default:
		s.writeGraphError(w, http.StatusBadRequest, graphError{
			Message: "Unknown path components: /" + edge, Type: "OAuthException", Code: 2500,
		})
	}
}

// sleepLatency waits the configured latency and jitter, or until the client goes away.
func (s *Sim) sleepLatency(ctx context.Context) {
	d := s.cfg.Latency
	if s.cfg.Jitter > 0 {
		d += randDuration(s.cfg.Jitter)
	}
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// store keeps the recorded messages. Its lock is held only to append or copy.
type store struct {
	mu    sync.Mutex
	max   int
	seq   int64
	buf   []Message
	start int // index of the oldest message once buf is a full ring
}

// add assigns the message its sequence number under the lock, so Seq order is slice order.
func (st *store) add(m *Message) {
	st.mu.Lock()
	st.seq++
	m.Seq = st.seq
	if st.max <= 0 || len(st.buf) < st.max {
		st.buf = append(st.buf, *m)
	} else {
		st.buf[st.start] = *m
		st.start = (st.start + 1) % st.max
	}
	st.mu.Unlock()
}

func (st *store) snapshot() []Message {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make([]Message, len(st.buf))
	n := copy(out, st.buf[st.start:])
	copy(out[n:], st.buf[:st.start])
	return out
}

func (st *store) reset() {
	st.mu.Lock()
	st.seq = 0
	st.buf = nil
	st.start = 0
	st.mu.Unlock()
}

// nextID returns a provider message id unique across simulators: the random Sim prefix and
// a counter.
func (s *Sim) nextID(prefix string) string {
	n := s.ids.Add(1)
	b := make([]byte, 0, len(prefix)+len(s.idPrefix)+16)
	b = append(b, prefix...)
	b = append(b, s.idPrefix...)
	const digits = "0123456789ABCDEF"
	var tmp [16]byte
	for i := 15; i >= 0; i-- {
		tmp[i] = digits[n&0xF]
		n >>= 4
	}
	b = append(b, tmp[:]...)
	return string(b)
}

// digitsOf returns the digits of s, or "" if s holds anything but digits, '+', spaces,
// dashes and parentheses (the forms the Cloud API accepts in "to").
func digitsOf(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < '0' || c > '9' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			b.WriteByte(c)
		case c == '+' || c == ' ' || c == '-' || c == '(' || c == ')':
		default:
			return ""
		}
	}
	return b.String()
}

// recordFailure records a request answered with an injected synchronous error.
func (s *Sim) recordFailure(m *Message, c counters, code, status int) {
	m.ErrorCode, m.HTTPStatus = code, status
	s.store.add(m)
	c.fail()
}

// recordAccepted records an accepted request under a new message id and returns the error
// code an Async rule will report for it later (0: none).
func (s *Sim) recordAccepted(m *Message, c counters, rule *Rule, idPrefix string, status int) int {
	m.MessageID = s.nextID(idPrefix)
	m.HTTPStatus = status
	s.store.add(m)
	c.accept()
	if rule == nil {
		return 0
	}
	c.asyncFail()
	return asyncCode(rule.Code)
}

// splitRef splits Herald's job ref "<tenant>/<id>"; a value without a slash is an id alone.
func splitRef(ref string) (tenant, id string) {
	if t, i, ok := strings.Cut(ref, "/"); ok {
		return t, i
	}
	return "", ref
}

// ref joins what splitRef split, as the provider echoes it.
func (m *Message) ref() string {
	if m.Tenant == "" {
		return m.JobID
	}
	return m.Tenant + "/" + m.JobID
}
