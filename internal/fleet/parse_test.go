package fleet_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/fleet"
)

// exampleEnv holds the secrets of testdata/example.yaml.
var exampleEnv = map[string]string{
	"SHOP_WA_TOKEN":           "EAAG-shop-token-0001",
	"SHOP_APP_SECRET":         "shop-app-secret-0002",
	"SHOP_GREY_TOKEN":         "grey-token-0003",
	"SHOP_GREY_WEBHOOK_TOKEN": "grey-webhook-token-0004",
	"KANNEL_PASSWORD":         "kannel-password-0005",
	"SHOP_API_KEY":            "shop-api-key-0006",
	"BANK_API_KEY":            "bank-api-key-0007",
	"BANK_WA_TOKEN":           "EAAG-bank-token-0008",
	"BANK_APP_SECRET":         "bank-app-secret-0009",
}

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseExample(t *testing.T) {
	t.Parallel()
	got, err := fleet.Load(filepath.Join("testdata", "example.yaml"), envOf(exampleEnv))
	if err != nil {
		t.Fatalf("the example does not parse:\n%v", err)
	}
	pair := 10 * time.Second
	want := &fleet.Fleet{
		Portfolios: map[string]fleet.Portfolio{"shop-portfolio": {DailyUnique: 10000}, "bank-portfolio": {DailyUnique: 2000}},
		Senders: []fleet.Sender{
			{ID: "shop-msk", Kind: "white", PhoneNumberID: "1122334455667", WABAID: "2233445566778", Portfolio: "shop-portfolio",
				Token: "EAAG-shop-token-0001", AppSecret: "shop-app-secret-0002", MPS: 80,
				BaseURL: "https://graph.facebook.com", APIVersion: "v21.0"},
			{ID: "shop-spb", Kind: "white", PhoneNumberID: "1122334455668", WABAID: "2233445566778", Portfolio: "shop-portfolio",
				Token: "EAAG-shop-token-0001", AppSecret: "shop-app-secret-0002", MPS: 80,
				BaseURL: "https://graph.facebook.com", APIVersion: "v21.0"},
			{ID: "shop-grey-1", Kind: "grey", BaseURL: "https://api.green-api.com", InstanceID: "1101000001",
				Token: "grey-token-0003", WebhookToken: "grey-webhook-token-0004", MPS: 0.2, DailyMax: 300,
				Warmup: &fleet.Warmup{Start: 20, Days: 10}, Jitter: 0.5},
			{ID: "sms-main", Kind: "sms", Driver: "kannel", URL: "http://kannel:13013/cgi-bin/sendsms", User: "herald",
				Password: "kannel-password-0005", From: "SHOP"},
			{ID: "bank-main", Kind: "white", PhoneNumberID: "3344556677889", WABAID: "4455667788990", Portfolio: "bank-portfolio",
				DisplayPhoneNumber: "74950001122", Token: "EAAG-bank-token-0008", AppSecret: "bank-app-secret-0009", MPS: 80,
				BaseURL: "https://graph.facebook.com", APIVersion: "v21.0", PairInterval: &pair},
		},
		Tenants: map[string]fleet.Tenant{
			"shop": {APIKeys: []fleet.Secret{"shop-api-key-0006"}, Channels: []string{"white", "grey", "sms"},
				Senders: []string{"shop-msk", "shop-spb", "shop-grey-1", "sms-main"}, QuietHours: "21:00-09:00"},
			"bank": {APIKeys: []fleet.Secret{"bank-api-key-0007"}, Channels: []string{"white", "sms"},
				Senders: []string{"bank-main", "sms-main"}},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parsed\n%#v\nwant\n%#v", got, want)
		for i := range min(len(got.Senders), len(want.Senders)) {
			if !reflect.DeepEqual(got.Senders[i], want.Senders[i]) {
				t.Errorf("senders[%d]:\n got %+v\nwant %+v", i, got.Senders[i], want.Senders[i])
			}
		}
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate of a parsed fleet: %v", err)
	}
}

func TestParseDefaultsFromEnvironment(t *testing.T) {
	t.Parallel()
	const doc = `
senders:
  - {id: w, kind: white, phone_number_id: "1", token: t, app_secret: s}
  - {id: g, kind: grey, instance_id: "2", token: t, webhook_token: 0123456789abcdef}
  - {id: n, kind: sms, driver: nats}
tenants:
  t: {channels: [white, grey, sms], senders: [w, g, n]}
`
	env := map[string]string{"HERALD_WHITE_BASE_URL": "http://127.0.0.1:9", "HERALD_WHITE_API_VERSION": "v22.0", "HERALD_GREY_BASE_URL": "http://127.0.0.1:8"}
	f, err := fleet.Parse([]byte(doc), envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	w, g, n := f.Senders[0], f.Senders[1], f.Senders[2]
	if w.BaseURL != "http://127.0.0.1:9" || w.APIVersion != "v22.0" || w.MPS != 80 {
		t.Errorf("white defaults %+v", w)
	}
	if g.BaseURL != "http://127.0.0.1:8" || g.MPS != 1 || g.Jitter != 0.5 {
		t.Errorf("grey defaults %+v", g)
	}
	if n.Subject != "herald.sms.outbound" || n.MPS != 0 {
		t.Errorf("nats defaults %+v", n)
	}
}

func TestParseYAMLFeatures(t *testing.T) {
	t.Parallel()
	// Anchors, aliases and merge keys: senders sharing credentials. (A top-level key of its
	// own for the anchor would be an unknown field.)
	const ok = `
senders:
  - &a {id: a, kind: white, phone_number_id: 1122334455667, token: "${TOK}", app_secret: s3cret, mps: 20}
  - <<: *a
    id: b
    phone_number_id: "1122334455668"
    mps: 40
tenants:
  t: {channels: [white], senders: [a, b], api_keys: ["literal-$$-key-$${NOT}"]}
`
	f, err := fleet.Parse([]byte(ok), envOf(map[string]string{"TOK": "tok"}))
	if err != nil {
		t.Fatal(err)
	}
	a, b := f.Senders[0], f.Senders[1]
	if a.PhoneNumberID != "1122334455667" || a.Token != "tok" || a.MPS != 20 {
		t.Errorf("a = %+v", a)
	}
	if b.ID != "b" || b.Token != "tok" || b.AppSecret != "s3cret" || b.MPS != 40 || b.Kind != "white" {
		t.Errorf("b (merged from a) = %+v", b)
	}
	if k := f.Tenants["t"].APIKeys[0].Reveal(); k != "literal-$$-key-${NOT}" {
		t.Errorf("escaped key %q", k)
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	_, err := fleet.Load(filepath.Join(t.TempDir(), "none.yaml"), nil)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v, want a wrapped ErrNotExist", err)
	}
}

func errorStrings(err error) []string {
	if err == nil {
		return nil
	}
	var es fleet.Errors
	if !errors.As(err, &es) {
		return []string{"not fleet.Errors: " + err.Error()}
	}
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Error()
	}
	return out
}
