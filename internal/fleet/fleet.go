// Package fleet is the model of a Herald deployment's senders: the WhatsApp numbers, grey
// gateway instances and SMS accounts it sends from, the Meta business portfolios whose
// messaging limit several numbers share, and the tenants (client companies) that own pools of
// them.
//
// It is read from the YAML file HERALD_CONFIG_FILE names ([Load], [Parse]), or built from the
// HERALD_* variables alone ([FromEnv]: one tenant "default" with one sender of each kind), and
// validated as a whole ([Fleet.Validate]): every problem is reported at once, each as
// "path: reason" with the path of the YAML value (senders[2].mps, tenants.bank.senders[0]).
//
// The file format:
//
//	portfolios:                 # a Meta business portfolio: the messaging limit its numbers share
//	  shop-portfolio: {daily_unique: 10000}
//	senders:
//	  - id: shop-msk            # [a-z0-9-]{1,63}, unique
//	    kind: white             # white | grey | sms
//	    phone_number_id: "1122334455667"
//	    waba_id: "2233445566778"
//	    portfolio: shop-portfolio
//	    token: ${SHOP_WA_TOKEN}
//	    app_secret: ${SHOP_APP_SECRET}
//	    mps: 80
//	  - id: shop-grey-1
//	    kind: grey
//	    base_url: https://api.green-api.com
//	    instance_id: "1101000001"
//	    token: ${SHOP_GREY_TOKEN}
//	    webhook_token: ${SHOP_GREY_WEBHOOK_TOKEN}
//	    mps: 0.2
//	    daily_max: 300
//	    warmup: {start: 20, days: 10}
//	  - id: sms-main
//	    kind: sms
//	    driver: kannel          # kannel | smpp | nats
//	    url: http://kannel:13013/cgi-bin/sendsms
//	    user: herald
//	    password: ${KANNEL_PASSWORD}
//	    from: SHOP
//	tenants:
//	  shop:
//	    api_keys: ["${SHOP_API_KEY}"]
//	    channels: [white, grey, sms]
//	    senders: [shop-msk, shop-grey-1, sms-main]
//	    quiet_hours: "21:00-09:00"
//
// Fields of a sender, by kind (every other field is refused for that kind):
//
//   - every kind: id, kind (required); mps (messages per second, fleet-wide; default 80 for
//     white, 1 for grey, none for sms: SMS gateways throttle themselves); pair_interval (least
//     gap between two messages to one recipient from this sender; default HERALD_PAIR_INTERVAL).
//   - white: phone_number_id, token, app_secret (required; status and inbound webhooks naming
//     this number must be signed with app_secret); waba_id; portfolio (a key of portfolios);
//     daily_unique (this number's own limit of distinct recipients per moving 24 h, 0: none);
//     display_phone_number (the number as Meta's phone_number_quality_update and account_update
//     webhooks name it: they carry no phone_number_id); verify_token (Meta's handshake);
//     base_url, api_version (default HERALD_WHITE_BASE_URL and HERALD_WHITE_API_VERSION, else
//     https://graph.facebook.com and v21.0).
//   - grey: instance_id, token, webhook_token (required; the instance's webhookUrlToken, at
//     least 16 characters); base_url (required unless HERALD_GREY_BASE_URL is set); daily_max
//     (messages per moving 24 h, 0: no cap); warmup {start, days, since} (see
//     [Sender.DailyCap]); jitter (0..1, default 0.5: each gap stretched at random by up to that
//     fraction, so a grey number never sends at a machine's regular beat).
//   - sms: driver (required) and that driver's fields: kannel url (required), user, password,
//     from; smpp addr (host:port, required), system_id (required), password, from; nats subject
//     (default herald.sms.outbound).
//
// A tenant has api_keys (each at least 8 characters, unique across tenants; none: it sends only
// through NATS), channels (its default cascade, from white, grey, sms), senders (its pool: ids of
// senders; several tenants may share one) and quiet_hours (HH:MM-HH:MM or off; empty: the
// deployment's HERALD_QUIET_HOURS). Every channel of a tenant needs a sender of that kind in its
// pool.
//
// Secrets stay out of the file: a scalar value's ${NAME} is replaced by the environment variable
// NAME (letters, digits and _, not starting with a digit); a variable that is unset or empty is
// an error naming the value's path and the variable; $${ is a literal ${; a $ not followed by {
// is itself. In YAML's flow style ({...}, [...]) quote the reference: ["${SHOP_API_KEY}"].
// Anchors, aliases and merge keys (<<: *white-defaults) work as YAML defines them. Secret fields are of type [Secret], which prints, logs and marshals as [redacted],
// and no error message ever quotes a value read from the environment or a secret field.
package fleet

import (
	"crypto/subtle"
	"log/slog"
	"slices"
	"sort"
	"time"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/quiet"
)

// Sender kinds: the channel a sender sends on.
const (
	KindWhite = job.ChannelWhite
	KindGrey  = job.ChannelGrey
	KindSMS   = job.ChannelSMS
)

// SMS drivers.
const (
	DriverKannel = "kannel"
	DriverSMPP   = "smpp"
	DriverNATS   = "nats"
)

// Defaults of the file format.
const (
	DefaultWhiteMPS   = 80
	DefaultGreyMPS    = 1
	DefaultGreyJitter = 0.5
	DefaultSMSSubject = "herald.sms.outbound"
	// MaxNameLen is the longest sender, portfolio or tenant name.
	MaxNameLen = 63
	// MinAPIKeyLen is the shortest API key accepted (as in HERALD_API_KEYS).
	MinAPIKeyLen = 8
	// MinWebhookTokenLen is the shortest grey webhook_token accepted (as
	// HERALD_GREY_WEBHOOK_TOKEN): long enough that it cannot be guessed.
	MinWebhookTokenLen = 16
)

// Fleet is every sender of a deployment, the portfolios they share and the tenants that own
// them. Build it with [Load], [Parse] or [FromEnv]; a Fleet is not changed after that, so it
// is safe for concurrent reads.
type Fleet struct {
	// Portfolios by name: a Meta business portfolio's messaging limit, shared by its numbers.
	Portfolios map[string]Portfolio `yaml:"portfolios"`
	// Senders in file order.
	Senders []Sender `yaml:"senders"`
	// Tenants by name ([a-z0-9-]{1,63}).
	Tenants map[string]Tenant `yaml:"tenants"`
}

// Portfolio is a Meta business portfolio. Since October 2025 Meta sets the messaging limit per
// portfolio, shared by all its business phone numbers.
type Portfolio struct {
	// DailyUnique is the portfolio's messaging limit: distinct recipients of business-initiated
	// messages per moving 24 h, over all its numbers (0: unlimited).
	DailyUnique int `yaml:"daily_unique"`
}

// Sender is one number, instance or SMS account. Which fields apply depends on Kind (see the
// package documentation); the others are empty.
type Sender struct {
	// ID names the sender in tenants' pools, jobs ("sender") and records: [a-z0-9-]{1,63}.
	ID string `yaml:"id"`
	// Kind is KindWhite, KindGrey or KindSMS.
	Kind string `yaml:"kind"`

	// MPS is the fleet-wide rate in messages per second (0 for sms: not paced).
	MPS float64 `yaml:"mps"`
	// PairInterval is the least gap between two messages to one recipient from this sender;
	// nil: the deployment's HERALD_PAIR_INTERVAL.
	PairInterval *time.Duration `yaml:"pair_interval"`

	// White (WhatsApp Cloud API) and grey (GREEN-API) share BaseURL and Token.
	BaseURL string `yaml:"base_url"`
	Token   Secret `yaml:"token"`

	PhoneNumberID string `yaml:"phone_number_id"`
	WABAID        string `yaml:"waba_id"`
	// Portfolio is the key in Fleet.Portfolios whose limit this number shares; "" for none.
	Portfolio string `yaml:"portfolio"`
	// AppSecret signs the webhooks naming this number (X-Hub-Signature-256).
	AppSecret   Secret `yaml:"app_secret"`
	VerifyToken Secret `yaml:"verify_token"`
	APIVersion  string `yaml:"api_version"`
	// DailyUnique is this number's own limit of distinct recipients per moving 24 h (0: none
	// beyond its portfolio's).
	DailyUnique int `yaml:"daily_unique"`
	// DisplayPhoneNumber is the number as Meta's phone_number_quality_update and account_update
	// webhooks name it (digits): they carry no phone_number_id.
	DisplayPhoneNumber string `yaml:"display_phone_number"`

	InstanceID string `yaml:"instance_id"`
	// WebhookToken is the grey instance's webhookUrlToken, the Bearer token on its webhooks.
	WebhookToken Secret `yaml:"webhook_token"`
	// DailyMax caps messages per moving 24 h (0: no cap); Warmup ramps up to it.
	DailyMax int     `yaml:"daily_max"`
	Warmup   *Warmup `yaml:"warmup"`
	// Jitter (0..1) stretches each gap at random by up to this fraction.
	Jitter float64 `yaml:"jitter"`

	// Driver is DriverKannel, DriverSMPP or DriverNATS.
	Driver   string `yaml:"driver"`
	URL      string `yaml:"url"`
	User     string `yaml:"user"`
	Password Secret `yaml:"password"`
	// From is the sender id (Kannel's from, SMPP's source address).
	From     string `yaml:"from"`
	Addr     string `yaml:"addr"`
	SystemID string `yaml:"system_id"`
	Subject  string `yaml:"subject"`
}

// Warmup ramps a new grey number's daily cap up to its daily_max: a number that starts at
// full volume is banned.
type Warmup struct {
	// Start is the cap of the first day (day 0), at least 1 and at most daily_max.
	Start int `yaml:"start"`
	// Days is how many days the ramp takes; from day Days on the cap is daily_max.
	Days int `yaml:"days"`
	// Since is day 0 of the ramp; zero: the day the deployment first saw the sender send
	// (kept by the caller, see [Sender.WarmupDay]). In the file: 2026-05-01 or RFC 3339.
	Since time.Time `yaml:"since"`
}

// Tenant is a client company: its API keys, default cascade, sender pool and quiet hours.
type Tenant struct {
	// APIKeys authenticate the tenant's API calls; none: it publishes only through NATS.
	APIKeys []Secret `yaml:"api_keys"`
	// Channels is the tenant's default cascade.
	Channels []string `yaml:"channels"`
	// Senders are the ids of the tenant's pool, in order of preference.
	Senders []string `yaml:"senders"`
	// QuietHours is HH:MM-HH:MM or off; "" means the deployment's HERALD_QUIET_HOURS.
	QuietHours string `yaml:"quiet_hours"`
}

// Secret is a credential: it prints, logs and marshals as [redacted], so a Sender or Tenant
// can be logged or dumped whole. [Secret.Reveal] is the value, for the provider call alone.
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// String hides the value from fmt's %v and %s.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString hides the value from fmt's %#v.
func (s Secret) GoString() string { return `"` + s.String() + `"` }

// LogValue hides the value from slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText hides the value from encoding/json and every other text encoder.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Key is the sender's key in the fleet-wide rate limits: "white:<phone_number_id>",
// "grey:<instance_id>", "sms:<id>". The white and grey keys are those of the single senders
// HERALD_* describes, so a deployment that moves to a file keeps its counters.
func (s Sender) Key() string {
	switch s.Kind {
	case KindWhite:
		return "white:" + s.PhoneNumberID
	case KindGrey:
		return "grey:" + s.InstanceID
	}
	return s.Kind + ":" + s.ID
}

// PairIntervalOr returns the sender's pair interval, or def when the file sets none.
func (s Sender) PairIntervalOr(def time.Duration) time.Duration {
	if s.PairInterval == nil {
		return def
	}
	return *s.PairInterval
}

// DailyCap is the sender's cap of messages per moving 24 h on day day of its warm-up (day 0 is
// the first): 0 (no cap) without a daily_max; daily_max without a warm-up or from day
// warmup.days on; before that the linear ramp
//
//	cap(day) = start + floor((daily_max - start) × day / days)
//
// so that with start 20, daily_max 300 and days 10 the caps are 20, 48, 76, ... 272, then 300.
// A negative day (a clock behind the ramp's start) gets start.
func (s Sender) DailyCap(day int) int {
	w := s.Warmup
	if s.DailyMax <= 0 || w == nil || w.Days <= 0 || day >= w.Days {
		return max(s.DailyMax, 0)
	}
	if day <= 0 {
		return w.Start
	}
	return w.Start + (s.DailyMax-w.Start)*day/w.Days
}

// WarmupDay is the day of the warm-up at now: whole 24 h periods since warmup.since, or since
// firstSeen (when the deployment first saw the sender send) when the file sets no since.
func (s Sender) WarmupDay(now, firstSeen time.Time) int {
	start := firstSeen
	if s.Warmup != nil && !s.Warmup.Since.IsZero() {
		start = s.Warmup.Since
	}
	d := now.Sub(start)
	if d < 0 {
		return -1
	}
	return int(d / (24 * time.Hour))
}

// DailyCapAt is DailyCap of the warm-up day at now (see [Sender.WarmupDay]).
func (s Sender) DailyCapAt(now, firstSeen time.Time) int {
	return s.DailyCap(s.WarmupDay(now, firstSeen))
}

// Quiet returns the tenant's quiet hours, or def (the deployment's) when it sets none. Validate
// has checked the setting; one that does not parse gets def.
func (t Tenant) Quiet(def quiet.Hours) quiet.Hours {
	if t.QuietHours == "" {
		return def
	}
	h, err := quiet.Parse(t.QuietHours)
	if err != nil {
		return def
	}
	h.Fallback = def.Fallback
	return h
}

// SenderByID returns the sender with this id.
func (f *Fleet) SenderByID(id string) (Sender, bool) {
	return f.find(func(s *Sender) bool { return s.ID == id })
}

// SenderByPhoneNumberID returns the white sender of a Cloud API phone number id: the one whose
// app secret a webhook naming that number must be signed with.
func (f *Fleet) SenderByPhoneNumberID(id string) (Sender, bool) {
	return f.find(func(s *Sender) bool { return s.Kind == KindWhite && s.PhoneNumberID == id })
}

// SenderByDisplayPhoneNumber returns the white sender whose display_phone_number is number
// (digits; a leading + is ignored): how phone_number_quality_update and account_update
// webhooks name a number.
func (f *Fleet) SenderByDisplayPhoneNumber(number string) (Sender, bool) {
	if len(number) > 0 && number[0] == '+' {
		number = number[1:]
	}
	if number == "" {
		return Sender{}, false
	}
	return f.find(func(s *Sender) bool { return s.Kind == KindWhite && s.DisplayPhoneNumber == number })
}

// SenderByGreyInstance returns the grey sender of a GREEN-API instance id.
func (f *Fleet) SenderByGreyInstance(instance string) (Sender, bool) {
	return f.find(func(s *Sender) bool { return s.Kind == KindGrey && s.InstanceID == instance })
}

func (f *Fleet) find(match func(*Sender) bool) (Sender, bool) {
	if f == nil {
		return Sender{}, false
	}
	for i := range f.Senders {
		if match(&f.Senders[i]) {
			return f.Senders[i], true
		}
	}
	return Sender{}, false
}

// TenantOfAPIKey returns the tenant an API key belongs to. Every key is compared in constant
// time, and all of them whatever matches, so the answer's timing tells nothing about the keys.
func (f *Fleet) TenantOfAPIKey(key string) (string, bool) {
	if f == nil || key == "" {
		return "", false
	}
	found := ""
	for _, name := range f.TenantNames() {
		for _, k := range f.Tenants[name].APIKeys {
			if subtle.ConstantTimeCompare([]byte(k), []byte(key)) == 1 && found == "" {
				found = name
			}
		}
	}
	return found, found != ""
}

// TenantNames returns the tenants' names, sorted.
func (f *Fleet) TenantNames() []string {
	if f == nil {
		return nil
	}
	names := make([]string, 0, len(f.Tenants))
	for n := range f.Tenants {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Pool returns the senders of kind in the tenant's pool, in the tenant's order of preference;
// nil for an unknown tenant.
func (f *Fleet) Pool(tenant, kind string) []Sender {
	if f == nil {
		return nil
	}
	t, ok := f.Tenants[tenant]
	if !ok {
		return nil
	}
	var out []Sender
	for _, id := range t.Senders {
		if s, ok := f.SenderByID(id); ok && s.Kind == kind {
			out = append(out, s)
		}
	}
	return out
}

// TenantsOf returns the tenants whose pool holds the sender, sorted: a webhook routed to a
// number concerns these tenants only.
func (f *Fleet) TenantsOf(senderID string) []string {
	var out []string
	for _, name := range f.TenantNames() {
		if slices.Contains(f.Tenants[name].Senders, senderID) {
			out = append(out, name)
		}
	}
	return out
}

// PortfolioLimit returns the daily_unique of the sender's portfolio (0: none or unlimited).
func (f *Fleet) PortfolioLimit(s Sender) int {
	if f == nil || s.Portfolio == "" {
		return 0
	}
	return f.Portfolios[s.Portfolio].DailyUnique
}
