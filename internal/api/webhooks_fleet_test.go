package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/api"
	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/fleet"
	"github.com/herald-notify/herald/internal/harness"
	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/internal/webhook"
	"github.com/herald-notify/herald/producer"
)

// The test fleet: shop has two white numbers of one app (secret A) and a grey instance; bank
// has one white number of another app (secret B) and its own grey instance.
const (
	shopNum1, shopNum2, bankNum = "500100001", "500100002", "500200001"
	shopWABA, bankWABA          = "600100", "600200"
	secretA, secretB            = "shop-app-secret-a", "bank-app-secret-b"
	fleetShopKey, fleetBankKey  = "shop-key-00001", "bank-key-00001"
	shopGrey, bankGrey          = "1101000001", "1101000002"
	shopGreyTok, bankGreyTok    = "shop-grey-webhook-0001", "bank-grey-webhook-0002"
	bankDisplay                 = "74950001122"
)

const fleetYAML = `
portfolios:
  shop-portfolio: {daily_unique: 10000}
senders:
  - {id: shop-1, kind: white, phone_number_id: "` + shopNum1 + `", waba_id: "` + shopWABA + `", portfolio: shop-portfolio, token: t, app_secret: ` + secretA + `}
  - {id: shop-2, kind: white, phone_number_id: "` + shopNum2 + `", waba_id: "` + shopWABA + `", portfolio: shop-portfolio, token: t, app_secret: ` + secretA + `}
  - {id: bank-1, kind: white, phone_number_id: "` + bankNum + `", waba_id: "` + bankWABA + `", display_phone_number: "` + bankDisplay + `", token: t, app_secret: ` + secretB + `, mps: 40}
  - id: shop-grey
    kind: grey
    base_url: http://127.0.0.1:9
    instance_id: "` + shopGrey + `"
    token: t
    webhook_token: ` + shopGreyTok + `
    daily_max: 300
    warmup: {start: 20, days: 10, since: 2026-01-01}
  - {id: bank-grey, kind: grey, base_url: "http://127.0.0.1:9", instance_id: "` + bankGrey + `", token: t, webhook_token: ` + bankGreyTok + `}
tenants:
  shop:
    api_keys: [` + fleetShopKey + `]
    channels: [white, grey]
    senders: [shop-1, shop-2, shop-grey]
  bank:
    api_keys: [` + fleetBankKey + `]
    channels: [white, grey]
    senders: [bank-1, bank-grey]
`

// writeFleet writes the test fleet to a file and returns its path.
func writeFleet(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fleet.yaml")
	if err := os.WriteFile(p, []byte(fleetYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func testFleet(t *testing.T) *fleet.Fleet {
	t.Helper()
	f, err := fleet.Parse([]byte(fleetYAML), nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// startFleet runs Herald with the test fleet as HERALD_CONFIG_FILE. The simulator posts no
// webhooks of its own: the tests post them.
func startFleet(t *testing.T, worker bool) *harness.Herald {
	t.Helper()
	path := writeFleet(t)
	return harness.Start(t, harness.Options{NoWorker: !worker,
		Sim: func(c *sim.Config) {
			// The workers send from the fleet's numbers, with the fleet's token.
			c.WebhookURL, c.Token, c.PhoneNumberIDs = "", "t", []string{shopNum1, shopNum2, bankNum}
		},
		Config: func(c *config.Config) { c.ConfigFile = path },
	})
}

// numberWebhook is a "messages" change for one business number: a status (msgID, state,
// opaque) or, with from set, an inbound text.
func numberWebhook(t *testing.T, number, msgID, state, opaque, from, text string) []byte {
	t.Helper()
	value := map[string]any{
		"messaging_product": "whatsapp",
		"metadata":          map[string]string{"display_phone_number": "15550000000", "phone_number_id": number},
	}
	ts := fmt.Sprint(time.Now().Unix())
	if from != "" {
		value["contacts"] = []any{map[string]any{"wa_id": from, "profile": map[string]string{"name": "A"}}}
		value["messages"] = []any{map[string]any{"from": from, "id": msgID, "timestamp": ts, "type": "text", "text": map[string]string{"body": text}}}
	} else {
		st := map[string]any{"id": msgID, "status": state, "timestamp": ts, "recipient_id": "79001234567"}
		if opaque != "" {
			st["biz_opaque_callback_data"] = opaque
		}
		value["statuses"] = []any{st}
	}
	return mustJSON(t, map[string]any{"object": "whatsapp_business_account", "entry": []any{map[string]any{
		"id": "waba", "changes": []any{map[string]any{"field": "messages", "value": value}}}}})
}

func postWith(t *testing.T, h *harness.Herald, body []byte, secret string) (int, []byte) {
	t.Helper()
	return postWebhook(t, h, body, webhook.Sign(secret, body))
}

// TestFleetStatusWebhooks: a status for bank's number is applied only when signed with
// bank's app secret, and never to a job of a tenant the number does not serve.
func TestFleetStatusWebhooks(t *testing.T) {
	t.Parallel()
	h := startFleet(t, true)
	ctx := context.Background()
	j := &producer.Job{ID: "bank-1", Tenant: "bank", To: "+79001234567", Template: "order_ready",
		Params:   map[string]string{"order": "1", "address": "a", "until": "b"},
		Buttons:  map[string]string{"0": "1"},
		Channels: []string{job.ChannelWhite}}
	if _, err := h.Producer.Publish(ctx, j); err != nil {
		t.Fatal(err)
	}
	ref := job.Ref("bank", j.ID)
	var msgID string
	testutil.Eventually(t, wait, func() bool {
		r, err := h.Store.Get(ctx, ref)
		if err != nil || r.ProviderMessageID == "" {
			return false
		}
		msgID = r.ProviderMessageID
		return true
	}, "bank's job sent")
	steps := []struct {
		name          string
		number, state string
		opaque        string
		secret        string
		code          int
		want          string
	}{
		{"bank's number signed with shop's secret", bankNum, status.Delivered, ref, secretA, http.StatusUnauthorized, status.Sent},
		{"bank's number unsigned", bankNum, status.Delivered, ref, "", http.StatusUnauthorized, status.Sent},
		{"shop's number reporting on bank's job", shopNum1, status.Delivered, ref, secretA, http.StatusOK, status.Sent},
		{"bank's number signed with bank's secret", bankNum, status.Delivered, ref, secretB, http.StatusOK, status.Delivered},
		{"found by message id", bankNum, status.Read, "", secretB, http.StatusOK, status.Read},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			body := numberWebhook(t, st.number, msgID, st.state, st.opaque, "", "")
			sig := ""
			if st.secret != "" {
				sig = webhook.Sign(st.secret, body)
			}
			if code, out := postWebhook(t, h, body, sig); code != st.code {
				t.Fatalf("got %d %s, want %d", code, out, st.code)
			}
			if r, _ := h.Store.Get(ctx, ref); r == nil || r.State != st.want {
				t.Fatalf("record %+v, want state %s", r, st.want)
			}
		})
	}
}

// TestFleetInbound: a customer's message to shop's second number opens the window of that
// number only, and a STOP to it silences shop, not bank.
func TestFleetInbound(t *testing.T) {
	t.Parallel()
	h := startFleet(t, false)
	const customer = "79001112233"
	code, out := postWith(t, h, numberWebhook(t, shopNum2, "wamid.in-1", "", "", customer, "СТОП"), secretA)
	if code != http.StatusOK {
		t.Fatalf("inbound: %d %s", code, out)
	}
	tests := []struct {
		name, key, number string
		open              bool
	}{
		{"shop's second number", fleetShopKey, shopNum2, true},
		{"shop's first number", fleetShopKey, shopNum1, false},
		{"bank's number", fleetBankKey, bankNum, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out := call(t, http.MethodGet, h.APIURL+"/v1/windows/+"+customer+"?phone_number_id="+tt.number, tt.key, nil, nil)
			if code != http.StatusOK {
				t.Fatalf("%d %s", code, out)
			}
			if w := decode[struct{ Open bool }](t, out); w.Open != tt.open {
				t.Fatalf("open %v, want %v", w.Open, tt.open)
			}
		})
	}
	for _, tt := range []struct {
		key  string
		want bool
	}{{fleetShopKey, true}, {fleetBankKey, false}} {
		code, out := call(t, http.MethodGet, h.APIURL+"/v1/suppressions/+"+customer, tt.key, nil, nil)
		if code != http.StatusOK {
			t.Fatalf("suppression: %d %s", code, out)
		}
		if s := decode[struct{ Suppressed bool }](t, out); s.Suppressed != tt.want {
			t.Errorf("key %s: suppressed %v, want %v", tt.key, s.Suppressed, tt.want)
		}
	}
}

// TestFleetWebhookRouting: what reaches the routing alone, on a server without a store: a
// number or instance the fleet does not know is answered 200 and counted, a body naming
// numbers of two apps is refused, grey webhooks need their own instance's token.
func TestFleetWebhookRouting(t *testing.T) {
	t.Parallel()
	srv, reader := newUnit(t, api.Config{Fleet: testFleet(t), RouteByFleet: true})
	two := mustJSON(t, map[string]any{"object": "whatsapp_business_account", "entry": []any{map[string]any{"id": "w", "changes": []any{
		map[string]any{"field": "messages", "value": map[string]any{"metadata": map[string]string{"phone_number_id": shopNum1}}},
		map[string]any{"field": "messages", "value": map[string]any{"metadata": map[string]string{"phone_number_id": bankNum}}},
	}}}})
	unknown := numberWebhook(t, "999999999", "wamid.x", status.Delivered, "", "", "")
	greyBody := func(instance string) string {
		return `{"typeWebhook":"stateInstanceChanged","instanceData":{"idInstance":` + instance + `,"wid":"1@c.us","typeInstance":"whatsapp"},"timestamp":1700000000,"stateInstance":"authorized"}`
	}
	tests := []struct {
		name, path, body string
		header           map[string]string
		code             int
		source, result   string
	}{
		{"unknown number", "/webhooks/whatsapp", string(unknown), map[string]string{"X-Hub-Signature-256": webhook.Sign("anything", unknown)},
			http.StatusOK, "whatsapp", "unknown_number"},
		{"two apps in one body, signed by one", "/webhooks/whatsapp", string(two), map[string]string{"X-Hub-Signature-256": webhook.Sign(secretA, two)},
			http.StatusUnauthorized, "whatsapp", "bad_signature"},
		{"not a webhook", "/webhooks/whatsapp", `<html>`, nil, http.StatusBadRequest, "whatsapp", "malformed"},
		{"grey, unknown instance", "/webhooks/grey", greyBody("1101009999"), map[string]string{"Authorization": "Bearer " + shopGreyTok},
			http.StatusOK, "grey", "unknown_instance"},
		{"grey, another instance's token", "/webhooks/grey", greyBody(bankGrey), map[string]string{"Authorization": "Bearer " + shopGreyTok},
			http.StatusUnauthorized, "grey", "unauthorized"},
		{"grey, no token", "/webhooks/grey", greyBody(shopGrey), nil, http.StatusUnauthorized, "grey", "unauthorized"},
		{"grey, its own token", "/webhooks/grey", greyBody(bankGrey), map[string]string{"Authorization": "Bearer " + bankGreyTok},
			http.StatusOK, "grey", "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := webhookCount(t, reader, tt.source, tt.result)
			req := httpRequest(t, http.MethodPost, tt.path, tt.body, tt.header)
			rec := <-serve(srv, req)
			if rec.Code != tt.code {
				t.Fatalf("got %d %s, want %d", rec.Code, rec.Body, tt.code)
			}
			if n := webhookCount(t, reader, tt.source, tt.result); n != before+1 {
				t.Errorf("herald_webhooks{source=%s,result=%s} %d, want %d", tt.source, tt.result, n, before+1)
			}
		})
	}
}

// TestFleetKeys: the fleet's tenants' keys work beside HERALD_API_KEYS; one key for two
// tenants is an error naming them.
func TestFleetKeys(t *testing.T) {
	t.Parallel()
	f := testFleet(t)
	tests := []struct {
		name    string
		env     map[string]string
		wantErr bool
	}{
		{"merged", map[string]string{"env-key-0001": "default"}, false},
		{"same key, same tenant", map[string]string{fleetShopKey: "shop"}, false},
		{"same key, another tenant", map[string]string{fleetShopKey: "bank"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			keys, err := api.FleetKeys(f, tt.env)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("no error: %v", keys)
				}
				if msg := err.Error(); !containsAll(msg, "tenants.shop.api_keys[0]", "bank") || containsAll(msg, fleetShopKey) {
					t.Errorf("error %q: want the path and the other tenant, never the key", msg)
				}
				return
			}
			if err != nil || keys[fleetShopKey] != "shop" || keys[fleetBankKey] != "bank" {
				t.Fatalf("%v %v", keys, err)
			}
			for k, v := range tt.env {
				if keys[k] != v {
					t.Errorf("key of %s lost", v)
				}
			}
		})
	}
}

// TestListSenders: GET /v1/senders shows the caller's tenant's pool, with health as the
// webhooks reported it, and never another tenant's senders.
func TestListSenders(t *testing.T) {
	t.Parallel()
	h := startFleet(t, false)
	// Health news: a quality downgrade of bank's number, a yellow card of shop's instance.
	q := mustJSON(t, map[string]any{"object": "whatsapp_business_account", "entry": []any{map[string]any{"id": bankWABA, "time": time.Now().Unix(),
		"changes": []any{map[string]any{"field": "phone_number_quality_update", "value": map[string]any{
			"display_phone_number": bankDisplay, "event": "DOWNGRADE", "current_limit": "TIER_250", "old_limit": "TIER_1K"}}}}}})
	if code, out := postWith(t, h, q, secretB); code != http.StatusOK {
		t.Fatalf("quality update: %d %s", code, out)
	}
	if code, out := postWith(t, h, q, secretA); code != http.StatusUnauthorized {
		t.Fatalf("quality update signed by another app: %d %s", code, out)
	}
	yc := `{"typeWebhook":"stateInstanceChanged","instanceData":{"idInstance":` + shopGrey + `,"wid":"1@c.us","typeInstance":"whatsapp"},"timestamp":1700000000,"stateInstance":"yellowCard"}`
	if code, out := postGrey(t, h.APIURL, shopGreyTok, yc); code != http.StatusOK {
		t.Fatalf("grey state: %d %s", code, out)
	}
	type list struct {
		Tenant  string
		Senders []api.SenderView
	}
	tests := []struct {
		name, key, query string
		code             int
		want             []string
	}{
		{"shop", fleetShopKey, "", http.StatusOK, []string{"shop-1", "shop-2", "shop-grey"}},
		{"bank", fleetBankKey, "", http.StatusOK, []string{"bank-1", "bank-grey"}},
		{"shop naming bank", fleetShopKey, "?tenant=bank", http.StatusForbidden, nil},
		{"no key", "", "", http.StatusUnauthorized, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out := call(t, http.MethodGet, h.APIURL+"/v1/senders"+tt.query, tt.key, nil, nil)
			if code != tt.code {
				t.Fatalf("%d %s, want %d", code, out, tt.code)
			}
			if code != http.StatusOK {
				return
			}
			l := decode[list](t, out)
			var ids []string
			for _, s := range l.Senders {
				ids = append(ids, s.ID)
			}
			if l.Tenant != tt.name || !slices.Equal(ids, tt.want) {
				t.Fatalf("tenant %s senders %v, want %s %v", l.Tenant, ids, tt.name, tt.want)
			}
			for _, s := range l.Senders {
				switch s.ID {
				case "shop-1":
					if s.PhoneNumberID != shopNum1 || s.Portfolio != "shop-portfolio" || s.PortfolioDailyUnique != 10000 || s.MPS != 80 || s.Health != "unknown" {
						t.Errorf("shop-1: %+v", s)
					}
				case "shop-grey":
					if s.Instance != shopGrey || s.Breaker != "open" || s.Health != "degraded" || s.Warmup == nil || s.Warmup.Day == nil ||
						s.DailyMax != 300 || s.DailyCap <= 20 {
						t.Errorf("shop-grey: %+v warmup %+v", s, s.Warmup)
					}
				case "bank-1":
					if s.Quality == nil || s.Quality.Event != "DOWNGRADE" || s.Quality.Limit != "TIER_250" || s.Health != "degraded" || s.MPS != 40 {
						t.Errorf("bank-1: %+v quality %+v", s, s.Quality)
					}
				case "bank-grey":
					if s.Health != "unknown" || s.Breaker != "" {
						t.Errorf("bank-grey: %+v", s)
					}
				}
			}
			if containsAll(string(out), secretA) || containsAll(string(out), secretB) || containsAll(string(out), shopGreyTok) {
				t.Error("the answer holds a secret")
			}
		})
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// httpRequest builds a request for a unit server.
func httpRequest(t *testing.T, method, path, body string, header map[string]string) *http.Request {
	t.Helper()
	u := &url.URL{Scheme: "http", Host: "herald.test", Path: path}
	req, err := http.NewRequest(method, u.String(), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return req
}

// TestFleetSenderPin: a job may pin a sender of its own tenant's pool; another tenant's
// number is refused with 400 naming the field.
func TestFleetSenderPin(t *testing.T) {
	t.Parallel()
	h := startFleet(t, false)
	for _, tt := range []struct {
		sender string
		want   int
	}{{"shop-2", http.StatusAccepted}, {"bank-1", http.StatusBadRequest}, {"nope", http.StatusBadRequest}} {
		body := fmt.Sprintf(`{"id":"pin-%s","to":"+79001234567","text":"hi","channels":["white"],"sender":%q}`, tt.sender, tt.sender)
		code, out := call(t, http.MethodPost, h.APIURL+"/v1/notifications", fleetShopKey, []byte(body), nil)
		if code != tt.want {
			t.Errorf("sender %s: %d %s, want %d", tt.sender, code, out, tt.want)
		}
		if tt.want == http.StatusBadRequest && !strings.Contains(string(out), `"field":"sender"`) {
			t.Errorf("sender %s: %s does not name the field", tt.sender, out)
		}
	}
}
