package config_test

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/job"
)

// documented is the configuration every default gives: the values in the README's
// configuration table, and the code's own defaults for variables the table leaves out.
func documented() config.Config {
	return config.Config{
		HTTPAddr:              ":8080",
		APIURL:                "http://127.0.0.1:8080",
		HTTPReadHeaderTimeout: 5 * time.Second, HTTPReadTimeout: time.Minute, HTTPWriteTimeout: time.Minute,
		HTTPIdleTimeout: 2 * time.Minute, HTTPMaxConns: 4096, WebhookMaxInFlight: 64,
		APIRate: 200, APIBurst: 400, APIMaxInFlightBytes: 128 << 20,
		Channels:        []string{"white", "sms"},
		DefaultRegion:   "RU",
		DefaultLanguage: "ru",
		WhiteBaseURL:    "https://graph.facebook.com",
		WhiteAPIVersion: "v21.0",
		WhiteMPS:        80,
		GreyMPS:         1,
		SMSDriver:       "kannel",
		SMSSubject:      "herald.sms.outbound",
		SMSMaxSegments:  6,
		PairInterval:    6 * time.Second,
		StickyTTL:       720 * time.Hour,
		FallbackAfter:   10 * time.Minute,
		QuietHours:      "21:00-09:00",
		PriceCurrency:   "RUB", PriceMarketing: 7.5, PriceUtility: 3.5, PriceAuthentication: 3.5, PriceSMS: 4.5,
		RetryMaxAttempts:      5,
		RetryBaseDelay:        time.Second,
		RetryMaxDelay:         5 * time.Minute,
		Concurrency:           256,
		ShutdownTimeout:       30 * time.Second,
		SendTimeout:           15 * time.Second,
		StatusTTL:             720 * time.Hour,
		HotTTL:                24 * time.Hour,
		CampaignsMaxPerTenant: 1000,
		DuplicateWindow:       time.Hour,
		Replicas:              1,
		LogLevel:              "info",
		LogFormat:             "json",
	}
}

// clearEnv removes, for the rest of the test, every variable Config reads: HERALD_<NAME>
// and, because envconfig falls back to it, the bare <NAME>. t.Setenv restores them after.
func clearEnv(t *testing.T) {
	t.Helper()
	var names []string
	typ := reflect.TypeFor[config.Config]()
	for i := range typ.NumField() {
		if tag := typ.Field(i).Tag.Get("envconfig"); tag != "" {
			names = append(names, "HERALD_"+tag, tag)
		}
	}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "HERALD_") {
			names = append(names, k)
		}
	}
	for _, k := range names {
		t.Setenv(k, "")
		if err := os.Unsetenv(k); err != nil {
			t.Fatal(err)
		}
	}
}

// errVars returns the HERALD_ variable each line of a joined error starts with.
func errVars(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var vars []string
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimPrefix(line, "config: ")
		name, _, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "HERALD_") {
			t.Errorf("error line %q does not start with the HERALD_ variable it is about", line)
			continue
		}
		vars = append(vars, name)
	}
	slices.Sort(vars)
	return vars
}

// TestDefaults is not parallel: it clears the environment with t.Setenv.
func TestDefaults(t *testing.T) {
	clearEnv(t)
	got := config.Defaults()
	// The README's configuration table, variable by variable.
	design := []struct {
		name      string
		got, want any
	}{
		{"HERALD_HTTP_ADDR", got.HTTPAddr, ":8080"},
		{"HERALD_CHANNELS", got.Channels, []string{"white", "sms"}},
		{"HERALD_DEFAULT_REGION", got.DefaultRegion, "RU"},
		{"HERALD_DEFAULT_LANGUAGE", got.DefaultLanguage, "ru"},
		{"HERALD_WHITE_BASE_URL", got.WhiteBaseURL, "https://graph.facebook.com"},
		{"HERALD_WHITE_API_VERSION", got.WhiteAPIVersion, "v21.0"},
		{"HERALD_WHITE_MPS", got.WhiteMPS, 80.0},
		{"HERALD_GREY_MPS", got.GreyMPS, 1.0},
		{"HERALD_SMS_DRIVER", got.SMSDriver, "kannel"},
		{"HERALD_SMS_SUBJECT", got.SMSSubject, "herald.sms.outbound"},
		{"HERALD_PAIR_INTERVAL", got.PairInterval, 6 * time.Second},
		{"HERALD_FALLBACK_AFTER", got.FallbackAfter, 10 * time.Minute},
		// No default: the dev mode embeds the servers, the rest must be given.
		{"HERALD_NATS_URL", got.NATSURL, ""},
		{"HERALD_REDIS_URL", got.RedisURL, ""},
		{"HERALD_API_KEYS", got.APIKeys, ""},
		{"HERALD_WHITE_TOKEN", got.WhiteToken, ""},
		{"HERALD_SMS_URL", got.SMSURL, ""},
	}
	for _, d := range design {
		if !reflect.DeepEqual(d.got, d.want) {
			t.Errorf("default %s = %#v, want %#v", d.name, d.got, d.want)
		}
	}
	if want := documented(); !reflect.DeepEqual(got, want) {
		t.Errorf("Defaults() =\n%+v\nwant\n%+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("the defaults do not validate: %v", err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		set  func(*config.Config)
		want []string // the variables named, sorted; nil: valid
	}{
		{"defaults", func(*config.Config) {}, nil},
		{"every channel", func(c *config.Config) { c.Channels = []string{"grey", "white", "sms"} }, nil},
		{"no channels", func(c *config.Config) { c.Channels = nil }, []string{"HERALD_CHANNELS"}},
		{"unknown channel", func(c *config.Config) { c.Channels = []string{"white", "viber"} }, []string{"HERALD_CHANNELS"}},
		{"duplicate channel", func(c *config.Config) { c.Channels = []string{"sms", "sms"} }, []string{"HERALD_CHANNELS"}},
		{"NATS URL list", func(c *config.Config) { c.NATSURL = "nats://a:4222, nats://b:4222,tls://c:4222" }, nil},
		{"bad NATS URL", func(c *config.Config) { c.NATSURL = "nats://a:4222,://b" }, []string{"HERALD_NATS_URL"}},
		{"redis URL", func(c *config.Config) { c.RedisURL = "redis://:pw@127.0.0.1:6379/2" }, nil},
		{"rediss URL", func(c *config.Config) { c.RedisURL = "rediss://redis.example:6380" }, nil},
		{"unix socket", func(c *config.Config) { c.RedisURL = "unix:///run/redis.sock" }, nil},
		{"http Redis URL", func(c *config.Config) { c.RedisURL = "http://127.0.0.1:6379" }, []string{"HERALD_REDIS_URL"}},
		{"Redis host only", func(c *config.Config) { c.RedisURL = "127.0.0.1:6379" }, []string{"HERALD_REDIS_URL"}},
		{"API keys", func(c *config.Config) { c.APIKeys = "shop:0123456789, crm:abcdefgh ," }, nil},
		{"API key too short", func(c *config.Config) { c.APIKeys = "shop:1234567" }, []string{"HERALD_API_KEYS"}},
		{"API key without tenant", func(c *config.Config) { c.APIKeys = ":0123456789" }, []string{"HERALD_API_KEYS"}},
		{"API key without colon", func(c *config.Config) { c.APIKeys = "0123456789" }, []string{"HERALD_API_KEYS"}},
		{"API keys, several bad, reported once", func(c *config.Config) { c.APIKeys = "a,b,c:1" }, []string{"HERALD_API_KEYS"}},
		{"white base URL without scheme", func(c *config.Config) { c.WhiteBaseURL = "graph.facebook.com" }, []string{"HERALD_WHITE_BASE_URL"}},
		{"white base URL empty", func(c *config.Config) { c.WhiteBaseURL = "" }, nil},
		{"grey base URL ftp", func(c *config.Config) { c.GreyBaseURL = "ftp://grey.example" }, []string{"HERALD_GREY_BASE_URL"}},
		{"grey base URL", func(c *config.Config) { c.GreyBaseURL = "https://api.green-api.com" }, nil},
		{"SMS URL without host", func(c *config.Config) { c.SMSURL = "http:///cgi-bin/sendsms" }, []string{"HERALD_SMS_URL"}},
		{"SMS URL", func(c *config.Config) { c.SMSURL = "http://127.0.0.1:13013/cgi-bin/sendsms" }, nil},
		{"public URL relative", func(c *config.Config) { c.PublicURL = "/herald" }, []string{"HERALD_PUBLIC_URL"}},
		{"white MPS zero", func(c *config.Config) { c.WhiteMPS = 0 }, []string{"HERALD_WHITE_MPS"}},
		{"white MPS negative", func(c *config.Config) { c.WhiteMPS = -80 }, []string{"HERALD_WHITE_MPS"}},
		{"white MPS fractional", func(c *config.Config) { c.WhiteMPS = 0.5 }, nil},
		{"grey MPS zero", func(c *config.Config) { c.GreyMPS = 0 }, []string{"HERALD_GREY_MPS"}},
		{"SMS driver smpp", func(c *config.Config) { c.SMSDriver = "smpp" }, nil},
		{"SMS driver nats", func(c *config.Config) { c.SMSDriver = "nats" }, nil},
		{"SMS driver unknown", func(c *config.Config) { c.SMSDriver = "twilio" }, []string{"HERALD_SMS_DRIVER"}},
		{"SMS driver case", func(c *config.Config) { c.SMSDriver = "Kannel" }, []string{"HERALD_SMS_DRIVER"}},
		{"SMS segments 0", func(c *config.Config) { c.SMSMaxSegments = 0 }, []string{"HERALD_SMS_MAX_SEGMENTS"}},
		{"SMS segments 255", func(c *config.Config) { c.SMSMaxSegments = 255 }, nil},
		{"SMS segments 256", func(c *config.Config) { c.SMSMaxSegments = 256 }, []string{"HERALD_SMS_MAX_SEGMENTS"}},
		{"quiet hours malformed", func(c *config.Config) { c.QuietHours = "9-21" }, []string{"HERALD_QUIET_HOURS"}},
		{"negative tier", func(c *config.Config) { c.WhiteDailyUnique = -1 }, []string{"HERALD_WHITE_DAILY_UNIQUE"}},
		{"negative price", func(c *config.Config) { c.PriceSMS = -1 }, []string{"HERALD_PRICE_SMS"}},
		{"pair interval zero", func(c *config.Config) { c.PairInterval = 0 }, nil},
		{"pair interval negative", func(c *config.Config) { c.PairInterval = -time.Second }, []string{"HERALD_PAIR_INTERVAL"}},
		{"fallback after zero", func(c *config.Config) { c.FallbackAfter = 0 }, []string{"HERALD_FALLBACK_AFTER"}},
		{"retry attempts zero", func(c *config.Config) { c.RetryMaxAttempts = 0 }, []string{"HERALD_RETRY_MAX_ATTEMPTS"}},
		{"retry base zero", func(c *config.Config) { c.RetryBaseDelay = 0 }, []string{"HERALD_RETRY_BASE_DELAY"}},
		{"retry base above max", func(c *config.Config) { c.RetryBaseDelay = 10 * time.Minute }, []string{"HERALD_RETRY_BASE_DELAY"}},
		{"retry base equals max", func(c *config.Config) { c.RetryBaseDelay = c.RetryMaxDelay }, nil},
		{"concurrency zero", func(c *config.Config) { c.Concurrency = 0 }, []string{"HERALD_WORKER_CONCURRENCY"}},
		{"concurrency 100000", func(c *config.Config) { c.Concurrency = 100000 }, nil},
		{"concurrency 100001", func(c *config.Config) { c.Concurrency = 100001 }, []string{"HERALD_WORKER_CONCURRENCY"}},
		{"shutdown timeout zero", func(c *config.Config) { c.ShutdownTimeout = 0 }, []string{"HERALD_SHUTDOWN_TIMEOUT"}},
		{"send timeout zero", func(c *config.Config) { c.SendTimeout = 0 }, []string{"HERALD_SEND_TIMEOUT"}},
		{"status TTL 1h", func(c *config.Config) { c.StatusTTL, c.HotTTL = time.Hour, time.Hour }, nil},
		{"status TTL below hot TTL", func(c *config.Config) { c.StatusTTL = time.Hour }, []string{"HERALD_HOT_TTL"}},
		{"hot TTL 1m", func(c *config.Config) { c.HotTTL = time.Minute }, nil},
		{"hot TTL 59s", func(c *config.Config) { c.HotTTL = 59 * time.Second }, []string{"HERALD_HOT_TTL"}},
		{"hot TTL equals status TTL", func(c *config.Config) { c.HotTTL = c.StatusTTL }, nil},
		{"hot TTL above status TTL", func(c *config.Config) { c.HotTTL = c.StatusTTL + time.Second }, []string{"HERALD_HOT_TTL"}},
		{"status TTL 59m", func(c *config.Config) { c.StatusTTL, c.HotTTL = 59*time.Minute, time.Minute }, []string{"HERALD_STATUS_TTL"}},
		{"campaigns per tenant 1", func(c *config.Config) { c.CampaignsMaxPerTenant = 1 }, nil},
		{"campaigns per tenant 0", func(c *config.Config) { c.CampaignsMaxPerTenant = 0 }, []string{"HERALD_CAMPAIGNS_MAX_PER_TENANT"}},
		{"campaigns per tenant 100001", func(c *config.Config) { c.CampaignsMaxPerTenant = 100001 }, []string{"HERALD_CAMPAIGNS_MAX_PER_TENANT"}},
		{"duplicate window zero", func(c *config.Config) { c.DuplicateWindow = 0 }, []string{"HERALD_DUPLICATE_WINDOW"}},
		{"replicas 3", func(c *config.Config) { c.Replicas = 3 }, nil},
		{"replicas 5", func(c *config.Config) { c.Replicas = 5 }, nil},
		{"replicas 2", func(c *config.Config) { c.Replicas = 2 }, []string{"HERALD_STREAM_REPLICAS"}},
		{"replicas 0", func(c *config.Config) { c.Replicas = 0 }, []string{"HERALD_STREAM_REPLICAS"}},
		{"log level upper case", func(c *config.Config) { c.LogLevel = "DEBUG" }, nil},
		{"log level unknown", func(c *config.Config) { c.LogLevel = "trace" }, []string{"HERALD_LOG_LEVEL"}},
		{"log format text", func(c *config.Config) { c.LogFormat = "text" }, nil},
		{"log format unknown", func(c *config.Config) { c.LogFormat = "logfmt" }, []string{"HERALD_LOG_FORMAT"}},
		{"ops address", func(c *config.Config) { c.OpsAddr = "127.0.0.1:9090" }, nil},
		{"ops address without port", func(c *config.Config) { c.OpsAddr = "127.0.0.1" }, []string{"HERALD_OPS_ADDR"}},
		{"HTTP address without port", func(c *config.Config) { c.HTTPAddr = "8080" }, []string{"HERALD_HTTP_ADDR"}},
		{"DLR secret", func(c *config.Config) { c.SMSDLRSecret = strings.Repeat("s", config.MinSecretLen) }, nil},
		{"DLR secret too short", func(c *config.Config) { c.SMSDLRSecret = "secret" }, []string{"HERALD_SMS_DLR_SECRET"}},
		{"grey webhook token too short", func(c *config.Config) { c.GreyWebhookToken = "tok" }, []string{"HERALD_GREY_WEBHOOK_TOKEN"}},
		{"read timeout zero", func(c *config.Config) { c.HTTPReadTimeout = 0 }, []string{"HERALD_HTTP_READ_TIMEOUT"}},
		{"header timeout above read timeout", func(c *config.Config) { c.HTTPReadHeaderTimeout = 2 * time.Minute }, []string{"HERALD_HTTP_READ_HEADER_TIMEOUT"}},
		{"write timeout negative", func(c *config.Config) { c.HTTPWriteTimeout = -time.Second }, []string{"HERALD_HTTP_WRITE_TIMEOUT"}},
		{"idle timeout zero", func(c *config.Config) { c.HTTPIdleTimeout = 0 }, []string{"HERALD_HTTP_IDLE_TIMEOUT"}},
		{"no connections", func(c *config.Config) { c.HTTPMaxConns = 0 }, []string{"HERALD_HTTP_MAX_CONNS"}},
		{"no webhooks in flight", func(c *config.Config) { c.WebhookMaxInFlight = 0 }, []string{"HERALD_WEBHOOK_MAX_INFLIGHT"}},
		{"API rate zero", func(c *config.Config) { c.APIRate = 0 }, []string{"HERALD_API_RATE"}},
		{"API burst zero", func(c *config.Config) { c.APIBurst = 0 }, []string{"HERALD_API_BURST"}},
		{"API bytes below 1 MiB", func(c *config.Config) { c.APIMaxInFlightBytes = 1000 }, []string{"HERALD_API_MAX_INFLIGHT_BYTES"}},
		{
			name: "every problem at once",
			set: func(c *config.Config) {
				c.Channels = []string{"fax"}
				c.RedisURL = "memcached://x"
				c.WhiteBaseURL = "nope"
				c.SMSURL = "nope"
				c.GreyMPS = -1
				c.SMSDriver = ""
				c.FallbackAfter = -time.Minute
				c.Replicas = 4
			},
			want: []string{
				"HERALD_CHANNELS", "HERALD_FALLBACK_AFTER", "HERALD_GREY_MPS", "HERALD_REDIS_URL",
				"HERALD_SMS_DRIVER", "HERALD_SMS_URL", "HERALD_STREAM_REPLICAS", "HERALD_WHITE_BASE_URL",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := documented()
			tc.set(&c)
			err := c.Validate()
			if got := errVars(t, err); !slices.Equal(got, tc.want) {
				t.Fatalf("Validate() named %q, want %q; error:\n%v", got, tc.want, err)
			}
		})
	}
}

// TestLoad is not parallel: it sets the environment with t.Setenv.
func TestLoad(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want func(*config.Config) // applied to documented(); the expected result
		errs []string             // the variables the error names; nil: Load succeeds
	}{
		{name: "nothing set gives the defaults", want: func(*config.Config) {}},
		{
			name: "every kind of value",
			env: map[string]string{
				"HERALD_HTTP_ADDR":       "127.0.0.1:9090",
				"HERALD_CHANNELS":        "grey,sms",
				"HERALD_DEFAULT_REGION":  "KZ",
				"HERALD_WHITE_MPS":       "12.5",
				"HERALD_GREY_MPS":        "0.2",
				"HERALD_SMS_DRIVER":      "nats",
				"HERALD_PAIR_INTERVAL":   "1m30s",
				"HERALD_FALLBACK_AFTER":  "2h",
				"HERALD_STREAM_REPLICAS": "3",
				"HERALD_REDIS_URL":       "redis://127.0.0.1:6379/0",
				"HERALD_API_KEYS":        "shop:0123456789",
			},
			want: func(c *config.Config) {
				c.HTTPAddr = "127.0.0.1:9090"
				c.Channels = []string{"grey", "sms"}
				c.DefaultRegion = "KZ"
				c.WhiteMPS = 12.5
				c.GreyMPS = 0.2
				c.SMSDriver = "nats"
				c.PairInterval = 90 * time.Second
				c.FallbackAfter = 2 * time.Hour
				c.Replicas = 3
				c.RedisURL = "redis://127.0.0.1:6379/0"
				c.APIKeys = "shop:0123456789"
			},
		},
		{name: "float not parsable", env: map[string]string{"HERALD_WHITE_MPS": "fast"}, errs: []string{"HERALD_WHITE_MPS"}},
		{name: "duration without unit", env: map[string]string{"HERALD_PAIR_INTERVAL": "6"}, errs: []string{"HERALD_PAIR_INTERVAL"}},
		{name: "int not parsable", env: map[string]string{"HERALD_STREAM_REPLICAS": "three"}, errs: []string{"HERALD_STREAM_REPLICAS"}},
		{name: "valid syntax, invalid value", env: map[string]string{"HERALD_SMS_DRIVER": "smsc"}, errs: []string{"HERALD_SMS_DRIVER"}},
		{
			name: "several invalid values",
			env:  map[string]string{"HERALD_CHANNELS": "white,fax", "HERALD_GREY_MPS": "0", "HERALD_LOG_FORMAT": "xml"},
			errs: []string{"HERALD_CHANNELS", "HERALD_GREY_MPS", "HERALD_LOG_FORMAT"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			c, err := config.Load()
			if tc.errs != nil {
				if c != nil {
					t.Errorf("Load returned a config together with error %v", err)
				}
				if err == nil {
					t.Fatal("Load succeeded, want an error")
				}
				for _, v := range tc.errs {
					if !strings.Contains(err.Error(), v) {
						t.Errorf("error %q does not name %s", err, v)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			want := documented()
			tc.want(&want)
			if !reflect.DeepEqual(*c, want) {
				t.Errorf("Load() =\n%+v\nwant\n%+v", *c, want)
			}
		})
	}
}

func TestRequireWorker(t *testing.T) {
	t.Parallel()
	white := func(c *config.Config) { c.WhitePhoneNumberID, c.WhiteToken = "1234567890", "EAAG-token" }
	kannel := func(c *config.Config) {
		c.SMSURL, c.SMSDLRSecret = "http://127.0.0.1:13013/cgi-bin/sendsms", strings.Repeat("k", config.MinSecretLen)
	}
	cases := []struct {
		name  string
		set   func(*config.Config)
		want  []string // the variables the error names; nil: ready
		lines int      // how many problems the error lists
	}{
		{
			name:  "defaults lack every credential",
			set:   func(*config.Config) {},
			want:  []string{"HERALD_WHITE_PHONE_NUMBER_ID", "HERALD_WHITE_TOKEN", "HERALD_SMS_URL", "HERALD_SMS_DLR_SECRET"},
			lines: 4,
		},
		{
			name: "white and kannel configured",
			set:  func(c *config.Config) { white(c); kannel(c) },
		},
		{
			name:  "kannel without the DLR secret",
			set:   func(c *config.Config) { white(c); kannel(c); c.SMSDLRSecret = "" },
			want:  []string{"HERALD_SMS_DLR_SECRET"},
			lines: 1,
		},
		{
			name:  "white token missing",
			set:   func(c *config.Config) { white(c); c.WhiteToken = ""; c.SMSDriver = "nats" },
			want:  []string{"HERALD_WHITE_TOKEN"},
			lines: 1,
		},
		{
			name: "the nats SMS driver needs no URL",
			set:  func(c *config.Config) { white(c); c.SMSDriver = "nats" },
		},
		{
			name: "SMS alone",
			set:  func(c *config.Config) { c.Channels = []string{"sms"}; kannel(c) },
		},
		{
			name:  "grey without credentials",
			set:   func(c *config.Config) { c.Channels = []string{"grey"}; c.GreyBaseURL = "https://api.green-api.com" },
			want:  []string{"HERALD_GREY_BASE_URL", "HERALD_GREY_INSTANCE_ID", "HERALD_GREY_TOKEN"},
			lines: 1, // one line names the three together
		},
		{
			name: "grey configured",
			set: func(c *config.Config) {
				c.Channels = []string{"grey"}
				c.GreyBaseURL, c.GreyInstanceID, c.GreyToken = "https://api.green-api.com", "1101000001", "tok"
			},
		},
		{
			name: "only channels in the cascade are checked",
			set:  func(c *config.Config) { c.Channels = []string{"white"}; white(c) },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := documented()
			tc.set(&c)
			err := c.RequireWorker()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("RequireWorker: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("RequireWorker succeeded, want errors naming %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w+":") && !strings.Contains(err.Error(), w+",") {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
			if n := len(strings.Split(err.Error(), "\n")); n != tc.lines {
				t.Errorf("%d problems reported, want %d: %v", n, tc.lines, err)
			}
		})
	}
}

// TestRequireAPI: the API refuses to start without what authenticates its webhooks: the
// grey gateway's token once grey is configured, the DLR secret once SMS go through Kannel.
func TestRequireAPI(t *testing.T) {
	t.Parallel()
	secret := strings.Repeat("d", config.MinSecretLen)
	cases := []struct {
		name string
		set  func(*config.Config)
		want []string // the variables the error names, in order; nil: ready
	}{
		{"defaults: kannel in the cascade", func(*config.Config) {}, []string{"HERALD_SMS_DLR_SECRET"}},
		{"kannel with its secret", func(c *config.Config) { c.SMSDLRSecret = secret }, nil},
		{"smpp needs no DLR secret", func(c *config.Config) { c.SMSDriver = "smpp" }, nil},
		{"nats needs no DLR secret", func(c *config.Config) { c.SMSDriver = "nats" }, nil},
		{"no SMS at all", func(c *config.Config) { c.Channels = []string{"white"} }, nil},
		{"a kannel URL outside the cascade still sends reports", func(c *config.Config) {
			c.Channels = []string{"white"}
			c.SMSURL = "http://kannel:13013/cgi-bin/sendsms"
		}, []string{"HERALD_SMS_DLR_SECRET"}},
		{"grey in the cascade without a token", func(c *config.Config) {
			c.Channels = []string{"grey", "sms"}
			c.SMSDLRSecret = secret
		}, []string{"HERALD_GREY_WEBHOOK_TOKEN"}},
		{"grey gateway configured outside the cascade", func(c *config.Config) {
			c.SMSDLRSecret = secret
			c.GreyBaseURL, c.GreyInstanceID = "https://api.green-api.com", "1101000001"
		}, []string{"HERALD_GREY_WEBHOOK_TOKEN"}},
		{"grey with its token", func(c *config.Config) {
			c.Channels = []string{"grey", "sms"}
			c.SMSDLRSecret, c.GreyWebhookToken = secret, strings.Repeat("g", config.MinTokenLen)
		}, nil},
		{"both missing", func(c *config.Config) { c.Channels = []string{"grey", "sms"} },
			[]string{"HERALD_GREY_WEBHOOK_TOKEN", "HERALD_SMS_DLR_SECRET"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := documented()
			tc.set(&c)
			err := c.RequireAPI()
			var got []string
			if err != nil {
				for _, line := range strings.Split(err.Error(), "\n") {
					name, _, _ := strings.Cut(line, ":")
					got = append(got, name)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("RequireAPI named %q, want %q: %v", got, tc.want, err)
			}
		})
	}
}

func TestTenants(t *testing.T) {
	t.Parallel()
	cases := []struct {
		keys string
		want map[string]string
	}{
		{"", map[string]string{}},
		{"shop:0123456789", map[string]string{"0123456789": "shop"}},
		{"shop:0123456789,crm:abcdefgh", map[string]string{"0123456789": "shop", "abcdefgh": "crm"}},
		{" shop:0123456789 , ,crm:abcdefgh ", map[string]string{"0123456789": "shop", "abcdefgh": "crm"}},
		{"shop:key:with:colons", map[string]string{"key:with:colons": "shop"}},
		{"two-keys:aaaaaaaa,two-keys:bbbbbbbb", map[string]string{"aaaaaaaa": "two-keys", "bbbbbbbb": "two-keys"}},
		{"no-colon,shop:0123456789", map[string]string{"0123456789": "shop"}},
	}
	for _, tc := range cases {
		t.Run(tc.keys, func(t *testing.T) {
			t.Parallel()
			c := config.Config{APIKeys: tc.keys}
			if got := c.Tenants(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Tenants(%q) = %v, want %v", tc.keys, got, tc.want)
			}
		})
	}
}

func TestJobOptions(t *testing.T) {
	t.Parallel()
	c := documented()
	c.DefaultRegion, c.DefaultLanguage = "KZ", "kk"
	if got, want := c.JobOptions(), (job.Options{DefaultRegion: "KZ", DefaultLanguage: "kk"}); got != want {
		t.Errorf("JobOptions() = %+v, want %+v", got, want)
	}
}

// TestLoadIgnoresUnprefixedNames: only HERALD_* variables configure Herald; another
// program's REDIS_URL or LOG_LEVEL on the same host is never picked up.
func TestLoadIgnoresUnprefixedNames(t *testing.T) {
	t.Setenv("REDIS_URL", "redis://other-app:6379")
	t.Setenv("LOG_LEVEL", "verbose")
	t.Setenv("HTTP_ADDR", ":9999")
	t.Setenv("HERALD_CHANNELS", "white, sms")
	c, err := config.Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.RedisURL != "" || c.LogLevel != "info" || c.HTTPAddr != ":8080" {
		t.Fatalf("un-prefixed variables leaked in: redis %q, log level %q, addr %q", c.RedisURL, c.LogLevel, c.HTTPAddr)
	}
	if len(c.Channels) != 2 || c.Channels[1] != "sms" {
		t.Fatalf("channels %q: spaces not trimmed", c.Channels)
	}
	d := config.Defaults()
	if d.RedisURL != "" || d.LogLevel != "info" {
		t.Fatalf("Defaults read the environment: %+v", d)
	}
}
