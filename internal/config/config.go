// Package config reads Herald's configuration from HERALD_* environment variables with
// envconfig and validates it, naming the variable in every error.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/quiet"
)

// Config is the whole configuration of the herald binary; each command uses the part it
// needs. Field tags give the full variable name.
type Config struct {
	NATSURL   string `envconfig:"HERALD_NATS_URL"`
	NATSCreds string `envconfig:"HERALD_NATS_CREDS"`
	RedisURL  string `envconfig:"HERALD_REDIS_URL"`
	HTTPAddr  string `envconfig:"HERALD_HTTP_ADDR" default:":8080"`
	// OpsAddr is the ops listener: /healthz, /readyz, /metrics and, with Pprof, /debug/pprof.
	// It is apart from the public API so that metrics and profiles are never on the port the
	// internet reaches. Empty: a worker serves it on HTTPAddr (a worker serves nothing else),
	// the API serves no metrics.
	OpsAddr string `envconfig:"HERALD_OPS_ADDR"`
	// Pprof serves /debug/pprof/ on the ops listener; off by default, since a profile names
	// code and data an attacker should not see.
	Pprof bool `envconfig:"HERALD_PPROF" default:"false"`
	// HTTP server limits of the API: header, whole-request and response deadlines, idle
	// keep-alive, open connections.
	HTTPReadHeaderTimeout time.Duration `envconfig:"HERALD_HTTP_READ_HEADER_TIMEOUT" default:"5s"`
	HTTPReadTimeout       time.Duration `envconfig:"HERALD_HTTP_READ_TIMEOUT" default:"60s"`
	HTTPWriteTimeout      time.Duration `envconfig:"HERALD_HTTP_WRITE_TIMEOUT" default:"60s"`
	HTTPIdleTimeout       time.Duration `envconfig:"HERALD_HTTP_IDLE_TIMEOUT" default:"120s"`
	HTTPMaxConns          int           `envconfig:"HERALD_HTTP_MAX_CONNS" default:"4096"`
	// WebhookMaxInFlight bounds the webhook requests whose body is being read or handled at
	// once: webhooks are read before their signature can be checked, so this is what an
	// unauthenticated caller can hold. Beyond it the API answers 503.
	WebhookMaxInFlight int `envconfig:"HERALD_WEBHOOK_MAX_INFLIGHT" default:"64"`
	// APIRate and APIBurst are each API key's request rate (x/time/rate); APIMaxInFlightBytes
	// bounds the batch bytes one key has in flight. Beyond either the API answers 429 with
	// Retry-After.
	APIRate             float64 `envconfig:"HERALD_API_RATE" default:"200"`
	APIBurst            int     `envconfig:"HERALD_API_BURST" default:"400"`
	APIMaxInFlightBytes int     `envconfig:"HERALD_API_MAX_INFLIGHT_BYTES" default:"134217728"`
	// PublicURL is where providers reach Herald's webhooks (Kannel's dlr-url); defaults to
	// http://127.0.0.1<HTTP_ADDR port>.
	PublicURL string `envconfig:"HERALD_PUBLIC_URL"`
	APIKeys   string `envconfig:"HERALD_API_KEYS"`
	// AdminKeys are the operators' keys (name:key,...): an operator sees and manages every
	// tenant (?tenant= on any route) and the deployment-wide suppression list.
	AdminKeys string `envconfig:"HERALD_ADMIN_KEYS"`
	// APIURL and APIKey are for the CLI talking to a running API.
	APIURL string `envconfig:"HERALD_API_URL" default:"http://127.0.0.1:8080"`
	APIKey string `envconfig:"HERALD_API_KEY"`

	Channels        []string `envconfig:"HERALD_CHANNELS" default:"white,sms"`
	DefaultRegion   string   `envconfig:"HERALD_DEFAULT_REGION" default:"RU"`
	DefaultLanguage string   `envconfig:"HERALD_DEFAULT_LANGUAGE" default:"ru"`

	WhiteBaseURL       string  `envconfig:"HERALD_WHITE_BASE_URL" default:"https://graph.facebook.com"`
	WhiteAPIVersion    string  `envconfig:"HERALD_WHITE_API_VERSION" default:"v21.0"`
	WhitePhoneNumberID string  `envconfig:"HERALD_WHITE_PHONE_NUMBER_ID"`
	WhiteWABAID        string  `envconfig:"HERALD_WHITE_WABA_ID"`
	WhiteToken         string  `envconfig:"HERALD_WHITE_TOKEN"`
	WhiteAppSecret     string  `envconfig:"HERALD_WHITE_APP_SECRET"`
	WhiteVerifyToken   string  `envconfig:"HERALD_WHITE_VERIFY_TOKEN"`
	WhiteMPS           float64 `envconfig:"HERALD_WHITE_MPS" default:"80"`

	GreyBaseURL    string `envconfig:"HERALD_GREY_BASE_URL"`
	GreyInstanceID string `envconfig:"HERALD_GREY_INSTANCE_ID"`
	GreyToken      string `envconfig:"HERALD_GREY_TOKEN"`
	// GreyWebhookToken is the webhookUrlToken the gateway sends as a Bearer token; the API
	// needs it whenever grey is configured (RequireAPI), and refuses grey webhooks without it.
	GreyWebhookToken string  `envconfig:"HERALD_GREY_WEBHOOK_TOKEN"`
	GreyMPS          float64 `envconfig:"HERALD_GREY_MPS" default:"1"`

	SMSDriver       string `envconfig:"HERALD_SMS_DRIVER" default:"kannel"`
	SMSURL          string `envconfig:"HERALD_SMS_URL"`
	SMSUser         string `envconfig:"HERALD_SMS_USER"`
	SMSPassword     string `envconfig:"HERALD_SMS_PASSWORD"`
	SMSFrom         string `envconfig:"HERALD_SMS_FROM"`
	SMSSMPPAddr     string `envconfig:"HERALD_SMS_SMPP_ADDR"`
	SMSSMPPSystemID string `envconfig:"HERALD_SMS_SMPP_SYSTEM_ID"`
	SMSSMPPPassword string `envconfig:"HERALD_SMS_SMPP_PASSWORD"`
	SMSSubject      string `envconfig:"HERALD_SMS_SUBJECT" default:"herald.sms.outbound"`
	SMSMaxSegments  int    `envconfig:"HERALD_SMS_MAX_SEGMENTS" default:"6"`
	// SMSDLRSecret keys the HMAC that the Kannel dlr-url carries: workers sign each SMS's
	// report URL, the API accepts only reports whose token verifies.
	SMSDLRSecret string `envconfig:"HERALD_SMS_DLR_SECRET"`

	PairInterval time.Duration `envconfig:"HERALD_PAIR_INTERVAL" default:"6s"`
	// StickyTTL is how long a customer stays with the number of a pool that last messaged
	// them, counted from the last message.
	StickyTTL     time.Duration `envconfig:"HERALD_STICKY_TTL" default:"720h"`
	FallbackAfter time.Duration `envconfig:"HERALD_FALLBACK_AFTER" default:"10m"`
	// RecipientDailyMax caps bulk messages to one recipient per moving 24 h (0: no cap).
	RecipientDailyMax int `envconfig:"HERALD_RECIPIENT_DAILY_MAX" default:"0"`
	// WhiteDailyUnique is the messaging tier: distinct recipients of business-initiated
	// template messages per moving 24 h (0: unlimited).
	WhiteDailyUnique int `envconfig:"HERALD_WHITE_DAILY_UNIQUE" default:"0"`
	// GreyDailyMax caps messages from the grey number per moving 24 h (0: no cap).
	GreyDailyMax int `envconfig:"HERALD_GREY_DAILY_MAX" default:"0"`
	// QuietHours is when bulk messages are held, in the recipient's local time ("off" to
	// disable).
	QuietHours string `envconfig:"HERALD_QUIET_HOURS" default:"21:00-09:00"`
	// StopWords and StartWords are the inbound messages that opt a customer out and back in
	// (empty: the defaults, STOP/СТОП/ОТПИСАТЬСЯ/ОТПИСКА... and START/СТАРТ/ПОДПИСАТЬСЯ...).
	StopWords  []string `envconfig:"HERALD_STOP_WORDS"`
	StartWords []string `envconfig:"HERALD_START_WORDS"`

	// Prices per message for the campaign cost estimate, in PriceCurrency: a WhatsApp
	// template message by category, an SMS segment, a grey message.
	PriceCurrency       string  `envconfig:"HERALD_PRICE_CURRENCY" default:"RUB"`
	PriceMarketing      float64 `envconfig:"HERALD_PRICE_MARKETING" default:"7.5"`
	PriceUtility        float64 `envconfig:"HERALD_PRICE_UTILITY" default:"3.5"`
	PriceAuthentication float64 `envconfig:"HERALD_PRICE_AUTHENTICATION" default:"3.5"`
	PriceSMS            float64 `envconfig:"HERALD_PRICE_SMS" default:"4.5"`
	PriceGrey           float64 `envconfig:"HERALD_PRICE_GREY" default:"0"`

	RetryMaxAttempts int           `envconfig:"HERALD_RETRY_MAX_ATTEMPTS" default:"5"`
	RetryBaseDelay   time.Duration `envconfig:"HERALD_RETRY_BASE_DELAY" default:"1s"`
	RetryMaxDelay    time.Duration `envconfig:"HERALD_RETRY_MAX_DELAY" default:"5m"`

	// Concurrency is the number of jobs one worker process handles at once.
	Concurrency int `envconfig:"HERALD_WORKER_CONCURRENCY" default:"256"`
	// ShutdownTimeout bounds the graceful drain on SIGTERM; then in-flight sends are cancelled.
	ShutdownTimeout time.Duration `envconfig:"HERALD_SHUTDOWN_TIMEOUT" default:"30s"`
	// AckWait is how long JetStream waits for a worker's ack before redelivering; 0 derives
	// it from SEND_TIMEOUT (two provider calls and a margin).
	AckWait time.Duration `envconfig:"HERALD_ACK_WAIT"`
	// SendTimeout bounds one provider call.
	SendTimeout time.Duration `envconfig:"HERALD_SEND_TIMEOUT" default:"15s"`
	// StatusTTL is how long status records (and so the idempotency of a job id) are kept.
	StatusTTL time.Duration `envconfig:"HERALD_STATUS_TTL" default:"720h"`
	// HotTTL is how long a finished record (status.Finished) stays in Redis once its copy is
	// in the history bucket: readers then find it in JetStream, and Redis keeps only a
	// tombstone (under 90 bytes) that keeps the id idempotent for StatusTTL.
	HotTTL time.Duration `envconfig:"HERALD_HOT_TTL" default:"24h"`
	// CampaignsMaxPerTenant caps each tenant's campaigns (entries in the herald-campaigns
	// bucket): every worker holds the canceled ones in memory and reads them all at start.
	// An entry lives StatusTTL after its last change.
	CampaignsMaxPerTenant int `envconfig:"HERALD_CAMPAIGNS_MAX_PER_TENANT" default:"1000"`
	// DuplicateWindow is JetStream's Nats-Msg-Id de-duplication window on HERALD_JOBS.
	DuplicateWindow time.Duration `envconfig:"HERALD_DUPLICATE_WINDOW" default:"1h"`
	// Replicas for the streams and KV bucket (3 in a JetStream cluster).
	Replicas int `envconfig:"HERALD_STREAM_REPLICAS" default:"1"`

	LogLevel  string `envconfig:"HERALD_LOG_LEVEL" default:"info"`
	LogFormat string `envconfig:"HERALD_LOG_FORMAT" default:"json"`

	ConfigFile string `envconfig:"HERALD_CONFIG_FILE"`
}

// Load reads the environment and validates it.
func Load() (*Config, error) {
	var c Config
	// Full names in the tags and no prefix: envconfig would otherwise fall back to the bare
	// name (REDIS_URL, LOG_LEVEL), which on a shared host may belong to another program.
	if err := envconfig.Process("", &c); err != nil {
		// envconfig stops at the first value it cannot parse: name them all, then whatever
		// else is wrong with the values that did parse.
		return nil, errors.Join(parseEach(&c)...)
	}
	for i, ch := range c.Channels {
		c.Channels[i] = strings.TrimSpace(ch)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Role names the servers a process runs, for LoadFor.
type Role struct {
	API, Worker bool
}

// LoadFor reads and validates the environment like Load and checks what the role requires
// (NATS and Redis, and RequireAPI's and RequireWorker's variables), reporting every
// missing and invalid variable in one error rather than one round at a time.
func LoadFor(r Role) (*Config, error) {
	c, err := Load()
	if err != nil {
		// Still name the missing variables, from the values that could be read.
		var d Config
		_ = parseEach(&d)
		return nil, errors.Join(err, d.Require(r))
	}
	if err := c.Require(r); err != nil {
		return nil, err
	}
	return c, nil
}

// Require reports, all at once, the variables that the role needs and that are unset.
func (c *Config) Require(r Role) error {
	var errs []error
	if r.API || r.Worker {
		if c.NATSURL == "" {
			errs = append(errs, errors.New("HERALD_NATS_URL: required (herald dev runs an embedded server instead)"))
		}
		if c.RedisURL == "" {
			errs = append(errs, errors.New("HERALD_REDIS_URL: required (herald dev runs an embedded store instead)"))
		}
	}
	if r.Worker {
		errs = append(errs, c.RequireWorker())
	}
	if r.API {
		errs = append(errs, c.RequireAPI())
	}
	return errors.Join(errs...)
}

// parseEach fills c one variable at a time, so that one value envconfig cannot parse does
// not hide the others, and returns every problem: each unparsable variable (HERALD_WHITE_MPS:
// "fast" is not a valid float64), then Validate's findings on the others.
func parseEach(c *Config) []error {
	var errs []error
	bad := map[string]bool{}
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Tag.Get("envconfig")
		if name == "" || !f.IsExported() {
			continue
		}
		one := reflect.New(reflect.StructOf([]reflect.StructField{{Name: f.Name, Type: f.Type, Tag: f.Tag}}))
		if err := envconfig.Process("", one.Interface()); err != nil {
			reason := err.Error()
			var pe *envconfig.ParseError
			if errors.As(err, &pe) {
				reason = fmt.Sprintf("%q is not a valid %s", pe.Value, pe.TypeName)
			}
			errs = append(errs, fmt.Errorf("%s: %s", name, reason))
			bad[name] = true
			continue
		}
		v.Field(i).Set(one.Elem().Field(0))
	}
	for i, ch := range c.Channels {
		c.Channels[i] = strings.TrimSpace(ch)
	}
	for _, err := range c.validate() {
		name, _, _ := strings.Cut(err.Error(), ":")
		if !bad[name] {
			errs = append(errs, err)
		}
	}
	return errs
}

// Validate checks every value and reports all problems at once, each naming its variable.
func (c *Config) Validate() error {
	return errors.Join(c.validate()...)
}

func (c *Config) validate() []error {
	var errs []error
	bad := func(v, format string, args ...any) {
		errs = append(errs, fmt.Errorf("HERALD_%s: "+format, append([]any{v}, args...)...))
	}
	if len(c.Channels) == 0 {
		bad("CHANNELS", "must list at least one channel")
	} else if err := job.ValidateChannels(c.Channels); err != nil {
		bad("CHANNELS", "%v", err)
	}
	if c.NATSURL != "" {
		for _, u := range strings.Split(c.NATSURL, ",") {
			if _, err := url.Parse(strings.TrimSpace(u)); err != nil {
				bad("NATS_URL", "not a URL list: %v", err)
			}
		}
	}
	if c.RedisURL != "" && !strings.HasPrefix(c.RedisURL, "redis://") && !strings.HasPrefix(c.RedisURL, "rediss://") && !strings.HasPrefix(c.RedisURL, "unix://") {
		bad("REDIS_URL", "must start with redis:// or rediss://")
	}
	keys := map[string]string{}
	for _, v := range []struct{ name, list, role string }{{"API_KEYS", c.APIKeys, "tenant"}, {"ADMIN_KEYS", c.AdminKeys, "operator"}} {
		for _, kv := range splitList(v.list) {
			t, k, ok := strings.Cut(kv, ":")
			if !ok || t == "" || len(k) < 8 {
				bad(v.name, "each entry must be %s:key with a key of at least 8 characters", v.role)
				break
			}
			if !job.ValidTenant(t) {
				bad(v.name, "%s name %q must be 1-63 characters of a-z 0-9 -", v.role, t)
				break
			}
			if other, dup := keys[k]; dup {
				bad(v.name, "a key of %s is also given to %s: a key names one caller", t, other)
				break
			}
			keys[k] = v.role + " " + t
		}
	}
	for name, u := range map[string]string{"WHITE_BASE_URL": c.WhiteBaseURL, "GREY_BASE_URL": c.GreyBaseURL, "SMS_URL": c.SMSURL, "PUBLIC_URL": c.PublicURL} {
		if u == "" {
			continue
		}
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			bad(name, "must be an absolute http(s) URL")
		}
	}
	if c.WhiteMPS <= 0 {
		bad("WHITE_MPS", "must be positive")
	}
	if c.GreyMPS <= 0 {
		bad("GREY_MPS", "must be positive")
	}
	switch c.SMSDriver {
	case "kannel", "smpp", "nats":
	default:
		bad("SMS_DRIVER", "must be kannel, smpp or nats, not %q", c.SMSDriver)
	}
	if c.SMSMaxSegments < 1 || c.SMSMaxSegments > 255 {
		bad("SMS_MAX_SEGMENTS", "must be 1-255")
	}
	for name, a := range map[string]string{"HTTP_ADDR": c.HTTPAddr, "OPS_ADDR": c.OpsAddr} {
		if _, _, err := net.SplitHostPort(a); a != "" && err != nil {
			bad(name, "must be host:port or :port: %v", err)
		}
	}
	if c.SMSDLRSecret != "" && len(c.SMSDLRSecret) < MinSecretLen {
		bad("SMS_DLR_SECRET", "must be at least %d characters (e.g. openssl rand -hex 32)", MinSecretLen)
	}
	if c.GreyWebhookToken != "" && len(c.GreyWebhookToken) < MinTokenLen {
		bad("GREY_WEBHOOK_TOKEN", "must be at least %d characters, so it cannot be guessed", MinTokenLen)
	}
	for name, d := range map[string]time.Duration{"HTTP_READ_HEADER_TIMEOUT": c.HTTPReadHeaderTimeout,
		"HTTP_READ_TIMEOUT": c.HTTPReadTimeout, "HTTP_WRITE_TIMEOUT": c.HTTPWriteTimeout, "HTTP_IDLE_TIMEOUT": c.HTTPIdleTimeout} {
		if d <= 0 {
			bad(name, "must be positive")
		}
	}
	if c.HTTPReadHeaderTimeout > c.HTTPReadTimeout && c.HTTPReadTimeout > 0 {
		bad("HTTP_READ_HEADER_TIMEOUT", "must not be above HERALD_HTTP_READ_TIMEOUT, which includes it")
	}
	if c.HTTPMaxConns < 1 {
		bad("HTTP_MAX_CONNS", "must be at least 1")
	}
	if c.WebhookMaxInFlight < 1 {
		bad("WEBHOOK_MAX_INFLIGHT", "must be at least 1")
	}
	if c.APIRate <= 0 {
		bad("API_RATE", "must be positive (requests per second per API key)")
	}
	if c.APIBurst < 1 {
		bad("API_BURST", "must be at least 1")
	}
	if c.APIMaxInFlightBytes < 1<<20 {
		bad("API_MAX_INFLIGHT_BYTES", "must be at least 1048576 (1 MiB)")
	}
	if c.PairInterval < 0 {
		bad("PAIR_INTERVAL", "must not be negative")
	}
	if c.StickyTTL < time.Minute {
		bad("STICKY_TTL", "must be at least 1m")
	}
	if c.FallbackAfter <= 0 {
		bad("FALLBACK_AFTER", "must be positive")
	}
	if c.RecipientDailyMax < 0 {
		bad("RECIPIENT_DAILY_MAX", "must not be negative (0 means no cap)")
	}
	if c.WhiteDailyUnique < 0 {
		bad("WHITE_DAILY_UNIQUE", "must not be negative (0 means unlimited)")
	}
	if c.GreyDailyMax < 0 {
		bad("GREY_DAILY_MAX", "must not be negative (0 means no cap)")
	}
	if _, err := quiet.Parse(c.QuietHours); err != nil {
		bad("QUIET_HOURS", "%v", err)
	}
	for name, p := range map[string]float64{"PRICE_MARKETING": c.PriceMarketing, "PRICE_UTILITY": c.PriceUtility,
		"PRICE_AUTHENTICATION": c.PriceAuthentication, "PRICE_SMS": c.PriceSMS, "PRICE_GREY": c.PriceGrey} {
		if p < 0 {
			bad(name, "must not be negative")
		}
	}
	if c.RetryMaxAttempts < 1 {
		bad("RETRY_MAX_ATTEMPTS", "must be at least 1")
	}
	if c.RetryBaseDelay <= 0 || c.RetryMaxDelay < c.RetryBaseDelay {
		bad("RETRY_BASE_DELAY", "must be positive and not above HERALD_RETRY_MAX_DELAY")
	}
	if c.Concurrency < 1 || c.Concurrency > 100000 {
		bad("WORKER_CONCURRENCY", "must be 1-100000")
	}
	if c.ShutdownTimeout <= 0 {
		bad("SHUTDOWN_TIMEOUT", "must be positive")
	}
	if c.SendTimeout <= 0 {
		bad("SEND_TIMEOUT", "must be positive")
	}
	if c.StatusTTL < time.Hour {
		bad("STATUS_TTL", "must be at least 1h (it bounds how long a job id stays idempotent)")
	}
	if c.HotTTL < time.Minute || c.HotTTL > c.StatusTTL {
		bad("HOT_TTL", "must be at least 1m and at most HERALD_STATUS_TTL (how long a finished record stays in Redis)")
	}
	if c.CampaignsMaxPerTenant < 1 || c.CampaignsMaxPerTenant > 100000 {
		bad("CAMPAIGNS_MAX_PER_TENANT", "must be 1-100000 (each tenant's campaigns, held by every worker)")
	}
	if c.DuplicateWindow <= 0 {
		bad("DUPLICATE_WINDOW", "must be positive")
	}
	if c.Replicas != 1 && c.Replicas != 3 && c.Replicas != 5 {
		bad("STREAM_REPLICAS", "must be 1, 3 or 5")
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		bad("LOG_LEVEL", "must be debug, info, warn or error")
	}
	switch c.LogFormat {
	case "json", "text":
	default:
		bad("LOG_FORMAT", "must be json or text")
	}
	return errs
}

// MinSecretLen is the shortest HERALD_SMS_DLR_SECRET accepted; MinTokenLen the shortest
// HERALD_GREY_WEBHOOK_TOKEN.
const (
	MinSecretLen = 32
	MinTokenLen  = 16
)

// greyConfigured tells whether this deployment talks to a grey gateway at all.
func (c *Config) greyConfigured() bool {
	return slices.Contains(c.Channels, job.ChannelGrey) || c.GreyBaseURL != "" || c.GreyInstanceID != ""
}

// kannelDLRs tells whether SMS go out through Kannel, whose delivery reports come back by
// HTTP to GET /webhooks/sms.
func (c *Config) kannelDLRs() bool {
	return c.SMSDriver == "kannel" && (slices.Contains(c.Channels, job.ChannelSMS) || c.SMSURL != "")
}

// RequireAPI checks what the API needs to authenticate its webhooks: the grey gateway's
// token when grey is configured, the DLR secret when SMS go through Kannel. Without them
// those webhooks would be refused (or, before, open to anyone).
func (c *Config) RequireAPI() error {
	var errs []error
	if c.greyConfigured() && c.GreyWebhookToken == "" {
		errs = append(errs, errors.New("HERALD_GREY_WEBHOOK_TOKEN: required when grey is configured (HERALD_CHANNELS, HERALD_GREY_BASE_URL or HERALD_GREY_INSTANCE_ID): set it as the instance's webhookUrlToken"))
	}
	if c.kannelDLRs() && c.SMSDLRSecret == "" {
		errs = append(errs, fmt.Errorf("HERALD_SMS_DLR_SECRET: required for the kannel SMS driver (it authenticates GET /webhooks/sms): at least %d random characters, the same on the API and the workers", MinSecretLen))
	}
	return errors.Join(errs...)
}

// RequireWorker checks what a worker needs beyond the defaults: the sender credentials of
// every channel in the default cascade.
func (c *Config) RequireWorker() error {
	var errs []error
	for _, ch := range c.Channels {
		switch ch {
		case job.ChannelWhite:
			if c.WhitePhoneNumberID == "" {
				errs = append(errs, errors.New("HERALD_WHITE_PHONE_NUMBER_ID: required when white is in HERALD_CHANNELS"))
			}
			if c.WhiteToken == "" {
				errs = append(errs, errors.New("HERALD_WHITE_TOKEN: required when white is in HERALD_CHANNELS"))
			}
		case job.ChannelSMS:
			if c.SMSDriver == "kannel" && c.SMSURL == "" {
				errs = append(errs, errors.New("HERALD_SMS_URL: required for the kannel SMS driver"))
			}
			if c.SMSDriver == "kannel" && c.SMSDLRSecret == "" {
				errs = append(errs, errors.New("HERALD_SMS_DLR_SECRET: required for the kannel SMS driver (workers sign each dlr-url with it; the API checks it)"))
			}
		case job.ChannelGrey:
			if c.GreyBaseURL == "" || c.GreyInstanceID == "" || c.GreyToken == "" {
				errs = append(errs, errors.New("HERALD_GREY_BASE_URL, HERALD_GREY_INSTANCE_ID, HERALD_GREY_TOKEN: required when grey is in HERALD_CHANNELS"))
			}
		}
	}
	return errors.Join(errs...)
}

// Tenants parses HERALD_API_KEYS into key → tenant.
func (c *Config) Tenants() map[string]string {
	m := map[string]string{}
	for _, kv := range splitList(c.APIKeys) {
		if t, k, ok := strings.Cut(kv, ":"); ok {
			m[k] = t
		}
	}
	return m
}

// Admins parses HERALD_ADMIN_KEYS into key → operator name.
func (c *Config) Admins() map[string]string {
	m := map[string]string{}
	for _, kv := range splitList(c.AdminKeys) {
		if t, k, ok := strings.Cut(kv, ":"); ok {
			m[k] = t
		}
	}
	return m
}

// JobOptions are the job validation defaults from this configuration.
func (c *Config) JobOptions() job.Options {
	return job.Options{DefaultRegion: c.DefaultRegion, DefaultLanguage: c.DefaultLanguage}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Defaults returns the configuration with every documented default and nothing read from
// the environment (tests, benchmarks).
func Defaults() Config {
	var c Config
	v := reflect.ValueOf(&c).Elem()
	t := v.Type()
	for i := range t.NumField() {
		def, ok := t.Field(i).Tag.Lookup("default")
		if !ok {
			continue
		}
		f := v.Field(i)
		switch f.Interface().(type) {
		case string:
			f.SetString(def)
		case []string:
			f.Set(reflect.ValueOf(strings.Split(def, ",")))
		case time.Duration:
			d, err := time.ParseDuration(def)
			if err != nil {
				panic("config: bad default for " + t.Field(i).Name)
			}
			f.SetInt(int64(d))
		case int:
			n, err := strconv.Atoi(def)
			if err != nil {
				panic("config: bad default for " + t.Field(i).Name)
			}
			f.SetInt(int64(n))
		case bool:
			b, err := strconv.ParseBool(def)
			if err != nil {
				panic("config: bad default for " + t.Field(i).Name)
			}
			f.SetBool(b)
		case float64:
			x, err := strconv.ParseFloat(def, 64)
			if err != nil {
				panic("config: bad default for " + t.Field(i).Name)
			}
			f.SetFloat(x)
		default:
			panic("config: no default parser for " + t.Field(i).Name)
		}
	}
	return c
}

// Quiet returns the parsed HERALD_QUIET_HOURS (Validate has checked it).
func (c *Config) Quiet() quiet.Hours {
	h, _ := quiet.Parse(c.QuietHours)
	return h
}
