package fleet_test

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/herald-notify/herald/internal/fleet"
)

// Valid senders of each kind, as flow mappings, for the cases to break one thing at a time.
const (
	white = `{id: w, kind: white, phone_number_id: "111", token: wtok, app_secret: wsec`
	grey  = `{id: g, kind: grey, base_url: "https://api.green-api.com", instance_id: "1101", token: gtok, webhook_token: 0123456789abcdef`
	sms   = `{id: s, kind: sms, driver: kannel, url: "http://kannel:13013/cgi-bin/sendsms"`
)

// doc is a fleet file with these senders (one per line, each closed here) and a tenant t using
// all three kinds unless tenants is given.
func doc(tenants string, senders ...string) string {
	var b strings.Builder
	b.WriteString("senders:\n")
	for _, s := range senders {
		b.WriteString("  - " + s + "}\n")
	}
	if tenants == "" {
		tenants = "  t: {channels: [white, grey, sms], senders: [w, g, s]}\n"
	}
	b.WriteString("tenants:\n" + tenants)
	return b.String()
}

// with overrides or adds keys of a flow-mapping sender (without its closing brace): a key set
// twice would be an error of its own.
func with(sender, pairs string) string {
	base := splitPairs(strings.TrimPrefix(sender, "{"))
	for _, kv := range splitPairs(pairs) {
		key, _, _ := strings.Cut(kv, ":")
		i := slices.IndexFunc(base, func(b string) bool { k, _, _ := strings.Cut(b, ":"); return k == key })
		if i >= 0 {
			base[i] = kv
		} else {
			base = append(base, kv)
		}
	}
	return "{" + strings.Join(base, ", ")
}

// splitPairs splits "a: 1, b: {c: 2, d: 3}" at the commas outside braces and quotes.
func splitPairs(s string) []string {
	var out []string
	depth, quote, start := 0, byte(0), 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quote != 0:
			if c == quote && s[i-1] != '\\' {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
		case c == ',' && depth == 0:
			out = append(out, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	if rest := strings.TrimSpace(s[start:]); rest != "" {
		out = append(out, rest)
	}
	return out
}

func TestValidationRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		doc  string
		env  map[string]string
		want []string
	}{
		{"valid", doc("", white, grey, sms), nil, nil},

		// The document.
		{"yaml syntax", "senders: [\n", nil, []string{"line 1: did not find expected node content"}},
		{"empty document", "", nil, []string{"senders: must list at least one sender", "tenants: must define at least one tenant"}},
		{"unknown top-level key", doc("", white, grey, sms) + "routes: {}\n", nil, []string{"routes: unknown field"}},
		{"unknown sender key, with a suggestion", doc("", with(white, "tokn: x"), grey, sms), nil, []string{"senders[0].tokn: unknown field (did you mean token?)"}},
		{"unknown tenant key", doc("  t: {channels: [white, grey, sms], senders: [w, g, s], quiet: off}\n", white, grey, sms), nil,
			[]string{"tenants.t.quiet: unknown field"}},
		{"key set twice", "senders:\n  - id: w\n    id: x\n    kind: white\ntenants: {}\n", nil,
			[]string{"senders[0].id: set twice (lines 2 and 3)", "senders[0].phone_number_id: required for a white sender (the Cloud API phone number id)",
				"senders[0].token: required", "senders[0].app_secret: required", "tenants: must define at least one tenant"}},
		{"senders not a list", "senders: {}\ntenants: {t: {channels: [white], senders: [w]}}\n", nil,
			[]string{"senders: must be a list", "tenants.t.senders[0]: no sender \"w\" in senders"}},
		{"mps not a number", doc("", with(white, "mps: fast"), grey, sms), nil, []string{"senders[0].mps: must be a number"}},
		{"daily_max not a whole number", doc("", white, with(grey, "daily_max: 1.5"), sms), nil, []string{"senders[1].daily_max: must be a whole number"}},
		{"pair_interval not a duration", doc("", with(white, "pair_interval: 6"), grey, sms), nil, []string{"senders[0].pair_interval: must be a duration like 6s or 1m30s"}},
		{"warmup not a mapping", doc("", white, with(grey, "daily_max: 9, warmup: 3"), sms), nil, []string{"senders[1].warmup: must be a mapping of keys to values"}},
		{"warmup since not a date", doc("", white, with(grey, "daily_max: 9, warmup: {start: 1, days: 2, since: tomorrow}"), sms), nil,
			[]string{"senders[1].warmup.since: must be a date (2026-05-01) or an RFC 3339 time"}},
		{"channels not a list", doc("  t: {channels: white, senders: [w]}\n", white), nil,
			[]string{"tenants.t.channels: must be a list"}},

		// The environment.
		{"unset variable", doc("", white, with(grey, `token: "${GREY_TOKEN}"`), sms), nil,
			[]string{"senders[1].token: ${GREY_TOKEN}: the environment variable GREY_TOKEN is not set (or empty)"}},
		{"set variable", doc("", white, with(grey, `token: "${GREY_TOKEN}"`), sms), map[string]string{"GREY_TOKEN": "x"}, nil},
		{"unclosed reference", doc("", white, with(grey, `token: "${GREY_TOKEN"`), sms), nil,
			[]string{"senders[1].token: ${ without a closing } (write $${ for a literal ${)"}},
		{"bad variable name", doc("", white, with(grey, `token: "${1X}"`), sms), nil,
			[]string{"senders[1].token: ${1X}: a variable name is letters, digits and _, not starting with a digit"}},

		// Every sender.
		{"id required", doc("", with(white, "id: ''"), grey, sms), nil, []string{"senders[0].id: required", `tenants.t.senders[0]: no sender "w" in senders`}},
		{"id shape", doc("  t: {channels: [white], senders: [Shop_1]}\n", with(white, "id: Shop_1")), nil, []string{"senders[0].id: must be 1 to 63 of a-z, 0-9 and -"}},
		{"id unique", doc("  t: {channels: [white], senders: [w]}\n", white, with(white, `phone_number_id: "222"`)), nil,
			[]string{`senders[1].id: "w" is already the id of senders[0]`}},
		{"kind required", doc("", with(white, "kind: ''"), grey, sms), nil, []string{"senders[0].kind: required (white, grey or sms)", "tenants.t.channels[0]: no white sender in tenants.t.senders"}},
		{"kind known", doc("", with(white, "kind: fax"), grey, sms), nil, []string{`senders[0].kind: must be white, grey or sms, not "fax"`, "tenants.t.channels[0]: no white sender in tenants.t.senders"}},
		{"field of another kind", doc("", with(white, `instance_id: "5", daily_max: 3`), grey, sms), nil,
			[]string{"senders[0].instance_id: not a field of a white sender", "senders[0].daily_max: not a field of a white sender"}},
		{"field of another driver", doc("", white, grey, with(sms, "system_id: x")), nil, []string{"senders[2].system_id: not a field of an sms sender with driver kannel"}},
		{"mps zero", doc("", with(white, "mps: 0"), grey, sms), nil, []string{"senders[0].mps: must be greater than 0"}},
		{"mps negative", doc("", white, with(grey, "mps: -0.2"), sms), nil, []string{"senders[1].mps: must be greater than 0"}},
		{"sms mps negative", doc("", white, grey, with(sms, "mps: -1")), nil, []string{"senders[2].mps: must be greater than 0"}},
		{"pair interval negative", doc("", with(white, "pair_interval: -1s"), grey, sms), nil, []string{"senders[0].pair_interval: must not be negative"}},

		// White.
		{"phone_number_id required", doc("", with(white, "phone_number_id: ''"), grey, sms), nil, []string{"senders[0].phone_number_id: required for a white sender (the Cloud API phone number id)"}},
		{"phone_number_id digits", doc("", with(white, "phone_number_id: '+7900'"), grey, sms), nil,
			[]string{"senders[0].phone_number_id: must be digits only (the Cloud API phone number id, not the phone number)"}},
		{"phone_number_id unique", doc("  t: {channels: [white], senders: [w, w2]}\n", white, with(white, "id: w2")), nil,
			[]string{"senders[1].phone_number_id: already the phone_number_id of senders[0] (w)"}},
		{"waba_id digits", doc("", with(white, "waba_id: abc"), grey, sms), nil, []string{"senders[0].waba_id: must be digits only"}},
		{"token required", doc("", with(white, "token: ''"), grey, sms), nil, []string{"senders[0].token: required"}},
		{"app_secret required", doc("", with(white, "app_secret: ~"), grey, sms), nil, []string{"senders[0].app_secret: required"}},
		{"token with a newline", doc("", with(white, `token: "wtok\n"`), grey, sms), nil,
			[]string{"senders[0].token: must not contain spaces, tabs or line breaks (a stray newline from a secret file?)"}},
		{"base_url absolute", doc("", with(white, "base_url: graph.facebook.com"), grey, sms), nil, []string{"senders[0].base_url: must be an absolute http(s) URL"}},
		{"base_url without credentials", doc("", with(white, "base_url: 'https://u:p@graph.facebook.com'"), grey, sms), nil,
			[]string{"senders[0].base_url: must not carry credentials (user and password have fields of their own)"}},
		{"api_version", doc("", with(white, "api_version: '21'"), grey, sms), nil, []string{"senders[0].api_version: must be a Graph API version like v21.0"}},
		{"daily_unique negative", doc("", with(white, "daily_unique: -1"), grey, sms), nil, []string{"senders[0].daily_unique: must not be negative (0 means no limit of its own)"}},
		{"portfolio from the environment, shown as written", doc("", with(white, `portfolio: "${P}"`), grey, sms), map[string]string{"P": "secret-name"},
			[]string{"senders[0].portfolio: no portfolio ${P} in portfolios"}},
		{"portfolio exists", doc("", with(white, "portfolio: nope"), grey, sms), nil, []string{`senders[0].portfolio: no portfolio "nope" in portfolios`}},
		{"display_phone_number", doc("", with(white, "display_phone_number: '7-900'"), grey, sms), nil,
			[]string{"senders[0].display_phone_number: must be the number's 5 to 15 digits, as Meta's webhooks show it"}},

		// Portfolios.
		{"portfolio daily_unique negative", "portfolios: {shop-portfolio: {daily_unique: -5}}\n" + doc("", with(white, "portfolio: shop-portfolio"), grey, sms), nil,
			[]string{"portfolios.shop-portfolio.daily_unique: must not be negative (0 means unlimited)"}},
		{"portfolio name", "portfolios: {Shop: {}}\n" + doc("", white, grey, sms), nil, []string{"portfolios.Shop: a portfolio name must be 1 to 63 of a-z, 0-9 and -"}},
		{"portfolio unknown key", "portfolios: {p: {limit: 5}}\n" + doc("", white, grey, sms), nil, []string{"portfolios.p.limit: unknown field"}},

		// Grey.
		{"grey base_url required", doc("", white, with(grey, "base_url: ''"), sms), nil, []string{"senders[1].base_url: required for a grey sender (or set HERALD_GREY_BASE_URL)"}},
		{"instance_id required", doc("", white, with(grey, "instance_id: ''"), sms), nil, []string{"senders[1].instance_id: required for a grey sender"}},
		{"instance_id digits", doc("", white, with(grey, "instance_id: abc"), sms), nil, []string{"senders[1].instance_id: must be digits only (GREEN-API's idInstance)"}},
		{"instance_id unique", doc("", white, grey, with(grey, "id: g2"), sms), nil, []string{"senders[2].instance_id: already the instance_id of senders[1]"}},
		{"grey token required", doc("", white, with(grey, "token: ''"), sms), nil, []string{"senders[1].token: required"}},
		{"webhook_token required", doc("", white, with(grey, "webhook_token: ''"), sms), nil, []string{"senders[1].webhook_token: required"}},
		{"webhook_token length", doc("", white, with(grey, "webhook_token: short"), sms), nil, []string{"senders[1].webhook_token: must be at least 16 characters, so it cannot be guessed"}},
		{"daily_max negative", doc("", white, with(grey, "daily_max: -1"), sms), nil, []string{"senders[1].daily_max: must not be negative (0 means no cap)"}},
		{"warmup needs daily_max", doc("", white, with(grey, "warmup: {start: 1, days: 3}"), sms), nil, []string{"senders[1].warmup: needs daily_max, the cap it ramps up to"}},
		{"warmup start at least 1", doc("", white, with(grey, "daily_max: 9, warmup: {start: 0, days: 3}"), sms), nil, []string{"senders[1].warmup.start: must be at least 1"}},
		{"warmup start not above daily_max", doc("", white, with(grey, "daily_max: 9, warmup: {start: 10, days: 3}"), sms), nil,
			[]string{"senders[1].warmup.start: must not be above daily_max (9)"}},
		{"warmup days at least 1", doc("", white, with(grey, "daily_max: 9, warmup: {start: 1, days: 0}"), sms), nil, []string{"senders[1].warmup.days: must be at least 1"}},
		{"warmup unknown key", doc("", white, with(grey, "daily_max: 9, warmup: {start: 1, days: 2, end: 9}"), sms), nil, []string{"senders[1].warmup.end: unknown field"}},
		{"jitter range", doc("", white, with(grey, "jitter: 1.5"), sms), nil, []string{"senders[1].jitter: must be between 0 and 1"}},

		// SMS.
		{"driver required", doc("", white, grey, with(sms, "driver: ''")), nil, []string{"senders[2].driver: required for an sms sender (kannel, smpp or nats)"}},
		{"driver known", doc("", white, grey, with(sms, "driver: http")), nil, []string{`senders[2].driver: must be kannel, smpp or nats, not "http"`}},
		{"kannel password with spaces", doc("", white, grey, with(sms, "password: 'a b c'")), nil, nil},
		{"kannel password with a newline", doc("", white, grey, with(sms, `password: "abc\n"`)), nil,
			[]string{"senders[2].password: must not contain tabs or line breaks (a stray newline from a secret file?)"}},
		{"kannel url required", doc("", white, grey, with(sms, "url: ''")), nil, []string{"senders[2].url: required for the kannel driver (its sendsms URL)"}},
		{"kannel url absolute", doc("", white, grey, with(sms, "url: kannel:13013")), nil, []string{"senders[2].url: must be an absolute http(s) URL"}},
		{"smpp fields", doc("", white, grey, `{id: s, kind: sms, driver: smpp, addr: smsc`), nil,
			[]string{"senders[2].addr: must be host:port", "senders[2].system_id: required for the smpp driver"}},
		{"smpp addr required", doc("", white, grey, `{id: s, kind: sms, driver: smpp, system_id: herald`), nil,
			[]string{"senders[2].addr: required for the smpp driver (host:port of the SMSC)"}},
		{"smpp system_id length", doc("", white, grey, `{id: s, kind: sms, driver: smpp, addr: "smsc:2775", system_id: a-very-long-system-id`), nil,
			[]string{"senders[2].system_id: must be at most 15 characters (SMPP 3.4)"}},
		{"nats subject", doc("", white, grey, `{id: s, kind: sms, driver: nats, subject: "herald.sms.*"`), nil,
			[]string{"senders[2].subject: must be a NATS subject: dot-separated tokens, no spaces or wildcards"}},
		{"nats with a kannel field", doc("", white, grey, `{id: s, kind: sms, driver: nats, url: "http://x"`), nil,
			[]string{"senders[2].url: not a field of an sms sender with driver nats"}},

		// Tenants.
		{"no tenants", "senders:\n  - " + white + "}\ntenants: {}\n", nil, []string{"tenants: must define at least one tenant"}},
		{"tenant name", doc("  Bank: {channels: [white], senders: [w]}\n", white), nil, []string{"tenants.Bank: a tenant name must be 1 to 63 of a-z, 0-9 and -"}},
		{"tenant name with a dot", doc("  a.b: {channels: [white], senders: [w]}\n", white), nil,
			[]string{`tenants["a.b"]: a tenant name must be 1 to 63 of a-z, 0-9 and -`}},
		{"api key length", doc("  t: {channels: [white], senders: [w], api_keys: [short]}\n", white), nil, []string{"tenants.t.api_keys[0]: must be at least 8 characters"}},
		{"api key spaces", doc("  t: {channels: [white], senders: [w], api_keys: ['key with spaces']}\n", white), nil,
			[]string{"tenants.t.api_keys[0]: must not contain spaces, tabs or line breaks"}},
		{"api key unique across tenants", doc("  shop: {channels: [white], senders: [w], api_keys: [key-0000001]}\n  bank: {channels: [white], senders: [w], api_keys: [key-0000001]}\n", white), nil,
			[]string{"tenants.shop.api_keys[0]: the same key as tenants.bank.api_keys[0]: a key names one tenant"}},
		{"api key unique in a tenant", doc("  t: {channels: [white], senders: [w], api_keys: [key-0000001, key-0000001]}\n", white), nil,
			[]string{"tenants.t.api_keys[1]: the same key as tenants.t.api_keys[0]: a key names one tenant"}},
		{"channels required", doc("  t: {senders: [w]}\n", white), nil, []string{"tenants.t.channels: must list at least one of white, grey, sms"}},
		{"channel known", doc("  t: {channels: [white, fax], senders: [w]}\n", white), nil, []string{`tenants.t.channels[1]: must be white, grey or sms, not "fax"`}},
		{"channel repeated", doc("  t: {channels: [white, white], senders: [w]}\n", white), nil, []string{"tenants.t.channels[1]: white is listed twice"}},
		{"senders required", doc("  t: {channels: [white]}\n", white), nil, []string{"tenants.t.senders: must list at least one sender id"}},
		{"sender exists", doc("  bank: {channels: [white], senders: [bank-main, w]}\n", white), nil, []string{`tenants.bank.senders[0]: no sender "bank-main" in senders`}},
		{"sender repeated", doc("  t: {channels: [white], senders: [w, w]}\n", white), nil, []string{`tenants.t.senders[1]: "w" is listed twice`}},
		{"channel without a sender", doc("  t: {channels: [white, sms], senders: [w]}\n", white, sms), nil, []string{"tenants.t.channels[1]: no sms sender in tenants.t.senders"}},
		{"quiet hours", doc("  t: {channels: [white], senders: [w], quiet_hours: '21-09'}\n", white), nil, []string{"tenants.t.quiet_hours: must be HH:MM-HH:MM (21:00-09:00) or off"}},
		{"quiet hours off", doc("  t: {channels: [white], senders: [w], quiet_hours: 'off'}\n", white), nil, nil},
		{"a sender in two tenants", doc("  a: {channels: [white], senders: [w]}\n  b: {channels: [white], senders: [w]}\n", white), nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := fleet.Parse([]byte(tt.doc), envOf(tt.env))
			if got := errorStrings(err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors\n got %q\nwant %q\ndocument:\n%s", got, tt.want, tt.doc)
			}
		})
	}
}

func TestAllErrorsAtOnce(t *testing.T) {
	t.Parallel()
	const bad = `
portfolios:
  p: {daily_unique: -1}
senders:
  - {id: a, kind: white, phone_number_id: "1", token: t, app_secret: s, mps: 0}
  - {id: b, kind: grey, instance_id: "2", token: t, webhook_token: 0123456789abcdef, base_url: "http://g", warmup: {start: 0, days: 0}}
  - {id: c, kind: sms}
tenants:
  bank: {channels: [white, grey], senders: [bank-main], api_keys: [short]}
  shop: {channels: [white, grey, sms], senders: [a]}
`
	_, err := fleet.Parse([]byte(bad), nil)
	want := []string{
		"portfolios.p.daily_unique: must not be negative (0 means unlimited)",
		"senders[0].mps: must be greater than 0",
		"senders[1].warmup: needs daily_max, the cap it ramps up to",
		"senders[1].warmup.start: must be at least 1",
		"senders[1].warmup.days: must be at least 1",
		"senders[2].driver: required for an sms sender (kannel, smpp or nats)",
		"tenants.bank.api_keys[0]: must be at least 8 characters",
		`tenants.bank.senders[0]: no sender "bank-main" in senders`,
		"tenants.shop.channels[1]: no grey sender in tenants.shop.senders",
		"tenants.shop.channels[2]: no sms sender in tenants.shop.senders",
	}
	if got := errorStrings(err); !reflect.DeepEqual(got, want) {
		t.Errorf("errors\n got %q\nwant %q", got, want)
	}
	if !strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), want[0]) {
		t.Errorf("Error() is not one problem per line: %q", err.Error())
	}
	var one fleet.Error
	if !errors.Is(err, fleet.ErrInvalid) || !errors.As(err, &one) || one.Path != "portfolios.p.daily_unique" {
		t.Errorf("errors.Is ErrInvalid, errors.As Error: %v, %+v", errors.Is(err, fleet.ErrInvalid), one)
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	t.Parallel()
	secrets := map[string]string{
		"WA_TOKEN":   "EAAGsupersecret\n", // a stray newline: refused, never shown
		"APP_SECRET": "app secret 42",
		"GREY_HOOK":  "hook-short",
		"API_KEY":    "k3y",
		"KIND":       "secret-kind",
		"PORTFOLIO":  "secret-portfolio",
		"SENDER":     "secret-sender",
		"CHANNEL":    "secret-channel",
		"PASSWORD":   "pass\tword", // tabs are refused, spaces are not
	}
	doc := `
senders:
  - {id: w, kind: white, phone_number_id: "1", token: "${WA_TOKEN}", app_secret: "${APP_SECRET}", portfolio: "${PORTFOLIO}", verify_token: "verify me"}
  - {id: g, kind: grey, base_url: "http://g", instance_id: "2", token: "gt", webhook_token: "${GREY_HOOK}"}
  - {id: x, kind: "${KIND}", token: "literal-token-value"}
  - {id: s, kind: sms, driver: kannel, url: "http://k", password: "${PASSWORD}"}
tenants:
  t: {channels: [white, "${CHANNEL}"], senders: [w, "${SENDER}"], api_keys: ["${API_KEY}", "${API_KEY}-long-enough", "${API_KEY}-long-enough"]}
`
	_, err := fleet.Parse([]byte(doc), envOf(secrets))
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for name, v := range secrets {
		for _, part := range []string{strings.TrimSpace(v), "supersecret", "k3y"} {
			if strings.Contains(msg, part) {
				t.Errorf("the error quotes %s (%q):\n%s", name, part, msg)
			}
		}
	}
	for _, literal := range []string{"literal-token-value", "verify me"} {
		if strings.Contains(msg, literal) {
			t.Errorf("the error quotes a secret field's value %q:\n%s", literal, msg)
		}
	}
	for _, path := range []string{"senders[0].token", "senders[0].app_secret", "senders[0].verify_token", "senders[1].webhook_token",
		"senders[0].portfolio", "senders[2].kind", "senders[3].password", "tenants.t.channels[1]", "tenants.t.senders[1]",
		"tenants.t.api_keys[0]", "tenants.t.api_keys[2]"} {
		if !strings.Contains(msg, path+": ") {
			t.Errorf("no error for %s:\n%s", path, msg)
		}
	}
}
