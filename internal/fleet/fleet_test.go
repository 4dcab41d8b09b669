package fleet_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/fleet"
	"github.com/herald-notify/herald/internal/quiet"
)

func example(t *testing.T) *fleet.Fleet {
	t.Helper()
	f, err := fleet.Load(filepath.Join("testdata", "example.yaml"), envOf(exampleEnv))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func ids(ss []fleet.Sender) []string {
	out := []string{}
	for _, s := range ss {
		out = append(out, s.ID)
	}
	return out
}

func TestLookups(t *testing.T) {
	t.Parallel()
	f := example(t)
	find := func(s fleet.Sender, ok bool) string {
		if !ok {
			return ""
		}
		return s.ID
	}
	tests := []struct {
		name, got, want string
	}{
		{"by id", find(f.SenderByID("shop-spb")), "shop-spb"},
		{"by unknown id", find(f.SenderByID("nope")), ""},
		{"by phone number id", find(f.SenderByPhoneNumberID("1122334455668")), "shop-spb"},
		{"by unknown phone number id", find(f.SenderByPhoneNumberID("1101000001")), ""},
		{"by display phone number", find(f.SenderByDisplayPhoneNumber("74950001122")), "bank-main"},
		{"by display phone number with +", find(f.SenderByDisplayPhoneNumber("+74950001122")), "bank-main"},
		{"by empty display phone number", find(f.SenderByDisplayPhoneNumber("")), ""},
		{"by grey instance", find(f.SenderByGreyInstance("1101000001")), "shop-grey-1"},
		{"a phone number id is no grey instance", find(f.SenderByGreyInstance("1122334455667")), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}

	keys := []struct{ key, tenant string }{
		{"shop-api-key-0006", "shop"}, {"bank-api-key-0007", "bank"}, {"shop-api-key-000", ""}, {"", ""},
	}
	for _, k := range keys {
		if got, ok := f.TenantOfAPIKey(k.key); got != k.tenant || ok != (k.tenant != "") {
			t.Errorf("TenantOfAPIKey(%q) = %q, %v; want %q", k.key, got, ok, k.tenant)
		}
	}
	pools := []struct {
		tenant, kind string
		want         []string
	}{
		{"shop", "white", []string{"shop-msk", "shop-spb"}},
		{"shop", "grey", []string{"shop-grey-1"}},
		{"shop", "sms", []string{"sms-main"}},
		{"bank", "white", []string{"bank-main"}},
		{"bank", "grey", []string{}},
		{"nobody", "white", []string{}},
	}
	for _, p := range pools {
		if got := ids(f.Pool(p.tenant, p.kind)); !slices.Equal(got, p.want) {
			t.Errorf("Pool(%s, %s) = %v, want %v", p.tenant, p.kind, got, p.want)
		}
	}
	if got := f.TenantsOf("sms-main"); !slices.Equal(got, []string{"bank", "shop"}) {
		t.Errorf("TenantsOf(sms-main) = %v", got)
	}
	if got := f.TenantNames(); !slices.Equal(got, []string{"bank", "shop"}) {
		t.Errorf("TenantNames = %v", got)
	}
	msk, _ := f.SenderByID("shop-msk")
	grey, _ := f.SenderByID("shop-grey-1")
	sms, _ := f.SenderByID("sms-main")
	if msk.Key() != "white:1122334455667" || grey.Key() != "grey:1101000001" || sms.Key() != "sms:sms-main" {
		t.Errorf("keys %s %s %s", msk.Key(), grey.Key(), sms.Key())
	}
	if f.PortfolioLimit(msk) != 10000 || f.PortfolioLimit(grey) != 0 {
		t.Errorf("portfolio limits %d %d", f.PortfolioLimit(msk), f.PortfolioLimit(grey))
	}
	bank, _ := f.SenderByID("bank-main")
	if msk.PairIntervalOr(6*time.Second) != 6*time.Second || bank.PairIntervalOr(6*time.Second) != 10*time.Second {
		t.Errorf("pair intervals %v %v", msk.PairIntervalOr(6*time.Second), bank.PairIntervalOr(6*time.Second))
	}
	var nilFleet *fleet.Fleet
	if _, ok := nilFleet.SenderByID("x"); ok || nilFleet.Pool("shop", "white") != nil {
		t.Error("a nil fleet finds something")
	}
}

func TestTenantQuiet(t *testing.T) {
	t.Parallel()
	def, _ := quiet.Parse("22:00-08:00")
	tests := []struct{ setting, want string }{
		{"", "22:00-08:00"},
		{"21:00-09:00", "21:00-09:00"},
		{"off", "off"},
	}
	for _, tt := range tests {
		if got := (fleet.Tenant{QuietHours: tt.setting}).Quiet(def).String(); got != tt.want {
			t.Errorf("Quiet(%q) = %s, want %s", tt.setting, got, tt.want)
		}
	}
}

func TestDailyCap(t *testing.T) {
	t.Parallel()
	ramp := fleet.Sender{Kind: "grey", DailyMax: 300, Warmup: &fleet.Warmup{Start: 20, Days: 10}}
	tests := []struct {
		name string
		s    fleet.Sender
		day  int
		want int
	}{
		{"no cap", fleet.Sender{Kind: "grey"}, 3, 0},
		{"no warm-up", fleet.Sender{Kind: "grey", DailyMax: 300}, 0, 300},
		{"day 0 is start", ramp, 0, 20},
		{"day 1", ramp, 1, 48},
		{"day 5", ramp, 5, 160},
		{"day 9", ramp, 9, 272},
		{"day 10 is daily_max", ramp, 10, 300},
		{"after the ramp", ramp, 400, 300},
		{"before the ramp", ramp, -1, 20},
		{"start equals daily_max", fleet.Sender{DailyMax: 5, Warmup: &fleet.Warmup{Start: 5, Days: 3}}, 1, 5},
		{"one-day ramp", fleet.Sender{DailyMax: 100, Warmup: &fleet.Warmup{Start: 10, Days: 1}}, 1, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.s.DailyCap(tt.day); got != tt.want {
				t.Errorf("DailyCap(%d) = %d, want %d", tt.day, got, tt.want)
			}
		})
	}
	// Monotone and within [start, daily_max] over the whole ramp.
	prev := 0
	for d := range 12 {
		c := ramp.DailyCap(d)
		if c < prev || c < 20 || c > 300 {
			t.Errorf("day %d: cap %d after %d", d, c, prev)
		}
		prev = c
	}

	first := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	since := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	days := []struct {
		name      string
		s         fleet.Sender
		now       time.Time
		day, capv int
	}{
		{"first seen, same day", ramp, first.Add(23 * time.Hour), 0, 20},
		{"first seen, two days on", ramp, first.Add(49 * time.Hour), 2, 76},
		{"before first seen", ramp, first.Add(-time.Hour), -1, 20},
		{"since overrides first seen", fleet.Sender{DailyMax: 300, Warmup: &fleet.Warmup{Start: 20, Days: 10, Since: since}}, first, 30, 300},
	}
	for _, tt := range days {
		if d := tt.s.WarmupDay(tt.now, first); d != tt.day {
			t.Errorf("%s: WarmupDay = %d, want %d", tt.name, d, tt.day)
		}
		if c := tt.s.DailyCapAt(tt.now, first); c != tt.capv {
			t.Errorf("%s: DailyCapAt = %d, want %d", tt.name, c, tt.capv)
		}
	}
}

func TestSecretRedacted(t *testing.T) {
	t.Parallel()
	f := example(t)
	var logged bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logged, nil))
	js, _ := json.Marshal(f)
	outputs := map[string]string{
		"%v":   fmt.Sprintf("%v", f.Senders),
		"%+v":  fmt.Sprintf("%+v", f.Senders),
		"%#v":  fmt.Sprintf("%#v", f.Senders),
		"%s":   fmt.Sprintf("%s", f.Tenants["shop"].APIKeys),
		"json": string(js),
	}
	log.Info("fleet", "senders", f.Senders, "token", f.Senders[0].Token)
	outputs["slog"] = logged.String()
	for how, out := range outputs {
		for name, secret := range exampleEnv {
			if strings.Contains(out, secret) {
				t.Errorf("%s shows %s:\n%s", how, name, out)
			}
		}
		if !strings.Contains(out, "[redacted]") {
			t.Errorf("%s shows no [redacted]:\n%s", how, out)
		}
	}
	if f.Senders[0].Token.Reveal() != exampleEnv["SHOP_WA_TOKEN"] {
		t.Error("Reveal is not the value")
	}
	if fleet.Secret("").String() != "" {
		t.Error("an empty secret is not empty")
	}
}

// envConfig is a complete HERALD_* configuration with a sender of each kind.
func envConfig() config.Config {
	c := config.Defaults()
	c.Channels = []string{"white", "grey", "sms"}
	c.APIKeys = "shop:key-00000001, bank:key-00000002,shop:key-00000003"
	c.WhiteBaseURL, c.WhiteAPIVersion = "http://127.0.0.1:9001", "v22.0"
	c.WhitePhoneNumberID, c.WhiteWABAID, c.WhiteToken = "1122334455667", "2233445566778", "wa-token"
	c.WhiteAppSecret, c.WhiteVerifyToken, c.WhiteMPS, c.WhiteDailyUnique = "app-secret", "verify", 40, 5000
	c.GreyBaseURL, c.GreyInstanceID, c.GreyToken = "http://127.0.0.1:9002", "1101000001", "grey-token"
	c.GreyWebhookToken, c.GreyMPS, c.GreyDailyMax = "grey-webhook-token", 2, 300
	c.SMSURL, c.SMSUser, c.SMSPassword, c.SMSFrom = "http://127.0.0.1:13013/cgi-bin/sendsms", "herald", "kannel-pass", "SHOP"
	c.QuietHours = "22:00-08:00"
	return c
}

func TestFromEnvEquivalence(t *testing.T) {
	t.Parallel()
	// The file that says what the variables say.
	const doc = `
portfolios:
  default: {daily_unique: 5000}
senders:
  - id: default-white
    kind: white
    base_url: http://127.0.0.1:9001
    api_version: v22.0
    phone_number_id: "1122334455667"
    waba_id: "2233445566778"
    portfolio: default
    token: ${HERALD_WHITE_TOKEN}
    app_secret: ${HERALD_WHITE_APP_SECRET}
    verify_token: ${HERALD_WHITE_VERIFY_TOKEN}
    mps: 40
  - id: default-grey
    kind: grey
    base_url: http://127.0.0.1:9002
    instance_id: "1101000001"
    token: ${HERALD_GREY_TOKEN}
    webhook_token: ${HERALD_GREY_WEBHOOK_TOKEN}
    mps: 2
    daily_max: 300
  - id: default-sms
    kind: sms
    driver: kannel
    url: http://127.0.0.1:13013/cgi-bin/sendsms
    user: herald
    password: ${HERALD_SMS_PASSWORD}
    from: SHOP
tenants:
  default: &t {channels: [white, grey, sms], senders: [default-white, default-grey, default-sms], quiet_hours: "22:00-08:00"}
  shop:
    <<: *t
    api_keys: [key-00000001, key-00000003]
  bank:
    <<: *t
    api_keys: [key-00000002]
`
	env := map[string]string{"HERALD_WHITE_TOKEN": "wa-token", "HERALD_WHITE_APP_SECRET": "app-secret", "HERALD_WHITE_VERIFY_TOKEN": "verify",
		"HERALD_GREY_TOKEN": "grey-token", "HERALD_GREY_WEBHOOK_TOKEN": "grey-webhook-token", "HERALD_SMS_PASSWORD": "kannel-pass"}
	fromFile, err := fleet.Parse([]byte(doc), envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	fromEnv := fleet.FromEnv(envConfig())
	if !reflect.DeepEqual(fromEnv, fromFile) {
		t.Errorf("FromEnv\n%#v\nfile\n%#v", fromEnv, fromFile)
		for i := range min(len(fromEnv.Senders), len(fromFile.Senders)) {
			if !reflect.DeepEqual(fromEnv.Senders[i], fromFile.Senders[i]) {
				t.Errorf("senders[%d]:\n env %+v\nfile %+v", i, fromEnv.Senders[i], fromFile.Senders[i])
			}
		}
	}
	if err := fromEnv.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestFromEnvVariants(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		edit     func(*config.Config)
		senders  []string
		tenants  []string
		check    func(*testing.T, *fleet.Fleet)
		validate []string
	}{
		{
			name: "defaults: white and sms in the cascade, nothing configured", edit: func(c *config.Config) { *c = config.Defaults() },
			senders: []string{"default-white", "default-sms"}, tenants: []string{"default"},
			validate: []string{
				"senders[0].phone_number_id: required for a white sender (the Cloud API phone number id)",
				"senders[0].token: required", "senders[0].app_secret: required",
				"senders[1].url: required for the kannel driver (its sendsms URL)",
			},
		},
		{
			name: "grey configured but not in the cascade", edit: func(c *config.Config) { c.Channels = []string{"white"}; c.SMSURL = "" },
			senders: []string{"default-white", "default-grey"}, tenants: []string{"bank", "default", "shop"},
		},
		{
			name: "smpp", edit: func(c *config.Config) {
				c.SMSDriver, c.SMSURL, c.SMSSMPPAddr, c.SMSSMPPSystemID, c.SMSSMPPPassword = "smpp", "", "smsc:2775", "herald", "pw"
			},
			senders: []string{"default-white", "default-grey", "default-sms"}, tenants: []string{"bank", "default", "shop"},
			check: func(t *testing.T, f *fleet.Fleet) {
				s := f.Senders[2]
				if s.Driver != "smpp" || s.Addr != "smsc:2775" || s.SystemID != "herald" || s.Password != "pw" || s.From != "SHOP" || s.URL != "" {
					t.Errorf("smpp sender %+v", s)
				}
			},
		},
		{
			name: "nats", edit: func(c *config.Config) { c.SMSDriver, c.SMSURL = "nats", "" },
			senders: []string{"default-white", "default-grey", "default-sms"}, tenants: []string{"bank", "default", "shop"},
			check: func(t *testing.T, f *fleet.Fleet) {
				if s := f.Senders[2]; s.Driver != "nats" || s.Subject != "herald.sms.outbound" || s.URL != "" {
					t.Errorf("nats sender %+v", s)
				}
			},
		},
		{
			name: "keys of one tenant", edit: func(c *config.Config) { c.APIKeys = "default:key-00000009" },
			senders: []string{"default-white", "default-grey", "default-sms"}, tenants: []string{"default"},
			check: func(t *testing.T, f *fleet.Fleet) {
				if tn, ok := f.TenantOfAPIKey("key-00000009"); !ok || tn != "default" {
					t.Errorf("key → %q", tn)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := envConfig()
			tt.edit(&c)
			f := fleet.FromEnv(c)
			if got := ids(f.Senders); !slices.Equal(got, tt.senders) {
				t.Errorf("senders %v, want %v", got, tt.senders)
			}
			if got := f.TenantNames(); !slices.Equal(got, tt.tenants) {
				t.Errorf("tenants %v, want %v", got, tt.tenants)
			}
			if tt.check != nil {
				tt.check(t, f)
			}
			if got := errorStrings(f.Validate()); !slices.Equal(got, tt.validate) {
				t.Errorf("Validate\n got %q\nwant %q", got, tt.validate)
			}
		})
	}
}
