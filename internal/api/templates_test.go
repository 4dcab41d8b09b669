package api_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/harness"
	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/testutil"
)

// withTenants gives the harness the API keys of shop and bank (tenancy_test.go) besides its
// default one.
func withTenants(c *config.Config) {
	c.APIKeys += ",shop:" + shopKey + ",bank:" + bankKey
}

// tdef is the part of a stored definition the template tests read.
type tdef struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Language   string `json:"language"`
	Status     string `json:"status"`
	Category   string `json:"category"`
	Version    int    `json:"version"`
	Components []struct {
		Type, Text string
	} `json:"components"`
	// WABAs are the reviews per WABA: status, Meta's id and category.
	WABAs map[string]struct{ Status, ID, Category string } `json:"wabas"`
}

func (d tdef) body() string {
	for _, c := range d.Components {
		if c.Type == "BODY" {
			return c.Text
		}
	}
	return ""
}

// getTemplate reads name/language as the holder of key sees it (code 0 and no definition
// when it is not found).
func getTemplate(t *testing.T, h *harness.Herald, key, name, language string) (int, tdef) {
	t.Helper()
	code, out := call(t, http.MethodGet, h.APIURL+"/v1/templates/"+name+"/"+language, key, nil, nil)
	if code != http.StatusOK {
		return code, tdef{}
	}
	return code, decode[tdef](t, out)
}

// templateWebhook is a message_template_status_update for Meta's template id, from the
// deployment's WABA.
func templateWebhook(t *testing.T, id int64, name, language, event string) []byte {
	t.Helper()
	return templateWebhookFrom(t, "102290129340398", id, name, language, event)
}

// templateWebhookFrom is a message_template_status_update from WABA waba.
func templateWebhookFrom(t *testing.T, waba string, id int64, name, language, event string) []byte {
	t.Helper()
	return mustJSON(t, map[string]any{
		"object": "whatsapp_business_account",
		"entry": []any{map[string]any{"id": waba, "time": 1732400000, "changes": []any{map[string]any{
			"field": "message_template_status_update",
			"value": map[string]any{"event": event, "message_template_id": id, "message_template_name": name,
				"message_template_language": language, "reason": "NONE"},
		}}}},
	})
}

// shippingConfirmation is the en_US sample_shipping_confirmation definition from
// testdata/whatsapp/cloud-api-traffic/get_templates.yml, as the Graph API lists it: APPROVED,
// and its variable has no example (a lint error).
const shippingConfirmation = `{"name":"sample_shipping_confirmation","previous_category":"SHIPPING_UPDATE","components":[{"type":"BODY","text":"Your package has been shipped. It will be delivered in {{1}} business days."},{"type":"FOOTER","text":"This message is from an unverified business."}],"language":"en_US","status":"APPROVED","category":"UTILITY","id":"419824263320619"}`

// pickupCode is a lint-clean definition; %s is its name, %s its status field (or nothing).
const pickupCode = `{"name":%q,%s"language":"ru","category":"UTILITY","components":[{"type":"BODY","text":"Ваш заказ номер {{1}} находится в точке выдачи по адресу {{2}}. Срок хранения до {{3}} включительно.","example":{"body_text":[["123","ул. Ленина, 1","21.02"]]}}]}`

func TestTemplates(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{NoWorker: true})
	do := func(t *testing.T, method, path string, body []byte) (int, []byte) {
		t.Helper()
		return call(t, method, h.APIURL+path, harness.APIKey, body, nil)
	}

	// A definition copied from Meta's listing is linted like any other, and registered
	// pending, once: posting it again stores nothing new.
	if code, out := do(t, http.MethodPost, "/v1/templates", []byte(shippingConfirmation)); code != http.StatusUnprocessableEntity || !strings.Contains(string(out), "missing_example") {
		t.Fatalf("unlinted post: %d %s", code, out)
	}
	for i := 1; i <= 2; i++ {
		code, out := do(t, http.MethodPost, "/v1/templates?force=true", []byte(shippingConfirmation))
		if code != http.StatusCreated {
			t.Fatalf("post %d: %d %s", i, code, out)
		}
		d := decode[tdef](t, out)
		if d.Name != "sample_shipping_confirmation" || d.Language != "en_US" || d.Status != "PENDING" ||
			d.Category != "UTILITY" || d.ID != "419824263320619" || d.Version != 1 {
			t.Fatalf("post %d stored %s, want version 1, PENDING", i, out)
		}
	}
	// A change is a new version, pending review; lint guards it.
	changed := strings.Replace(shippingConfirmation, "delivered in {{1}} business days", "delivered in {{1}} working days", 1)
	if code, out := do(t, http.MethodPost, "/v1/templates", []byte(changed)); code != http.StatusUnprocessableEntity || !strings.Contains(string(out), "missing_example") {
		t.Fatalf("unlinted change: %d %s", code, out)
	}
	code, out := do(t, http.MethodPost, "/v1/templates?force=true", []byte(changed))
	if d := decode[tdef](t, out); code != http.StatusCreated || d.Version != 2 || d.Status != "PENDING" {
		t.Fatalf("changed template: %d %s", code, out)
	}

	code, out = do(t, http.MethodGet, "/v1/templates", nil)
	if code != http.StatusOK {
		t.Fatalf("list: %d %s", code, out)
	}
	var keys []string
	for _, d := range decode[struct{ Data []tdef }](t, out).Data {
		keys = append(keys, fmt.Sprintf("%s.%s@%d", d.Name, d.Language, d.Version))
	}
	wantKeys := []string{"bonus_expiring.ru@1", "booking_reminder.ru@1", "order_ready.ru@1", "sample_shipping_confirmation.en_US@2"}
	if !slices.Equal(keys, wantKeys) {
		t.Fatalf("list %v, want %v", keys, wantKeys)
	}

	t.Run("get", func(t *testing.T) {
		t.Parallel()
		code, out := do(t, http.MethodGet, "/v1/templates/sample_shipping_confirmation/en_US", nil)
		if code != http.StatusOK {
			t.Fatalf("got %d %s", code, out)
		}
		d := decode[tdef](t, out)
		if d.Version != 2 || len(d.Components) != 2 || d.Components[0].Type != "BODY" ||
			!strings.Contains(d.Components[0].Text, "delivered in {{1}} working days") {
			t.Fatalf("got %s", out)
		}
	})

	for _, c := range []struct{ name, path string }{
		{"unknown template", "/v1/templates/no_such_template/en_US"},
		{"unknown language", "/v1/templates/sample_shipping_confirmation/pt_BR"},
		{"invalid language", "/v1/templates/order_ready/RU-ru"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if code, out := do(t, http.MethodGet, c.path, nil); code != http.StatusNotFound {
				t.Fatalf("got %d %s, want 404", code, out)
			}
		})
	}

	for _, c := range []struct{ name, body string }{
		{"not JSON", `name: x`},
		{"bad name", strings.Replace(shippingConfirmation, "sample_shipping_confirmation", "Bad-Name", 1)},
		{"bad language", strings.Replace(shippingConfirmation, `"en_US"`, `"english"`, 1)},
		{"no body", `{"name":"no_body","language":"en_US","status":"APPROVED","components":[{"type":"FOOTER","text":"x"}]}`},
		{"body too long", `{"name":"too_long","language":"en_US","components":[{"type":"BODY","text":"` + strings.Repeat("a", 1025) + `"}]}`},
		{"named variable in a positional template", `{"name":"mixed_vars","language":"en_US","components":[{"type":"BODY","text":"Hi {{name}}"}]}`},
	} {
		t.Run("invalid/"+c.name, func(t *testing.T) {
			t.Parallel()
			code, out := do(t, http.MethodPost, "/v1/templates?force=true", []byte(c.body))
			if code != http.StatusBadRequest {
				t.Fatalf("got %d %s, want 400", code, out)
			}
			if decode[map[string]string](t, out)["error"] == "" {
				t.Fatalf("no error message: %s", out)
			}
		})
	}

	t.Run("invalid definition is not stored", func(t *testing.T) {
		t.Parallel()
		body := `{"name":"never_stored","language":"en_US","components":[{"type":"BODY","text":"Hi {{name}}"}]}`
		if code, out := do(t, http.MethodPost, "/v1/templates", []byte(body)); code != http.StatusBadRequest {
			t.Fatalf("post: %d %s", code, out)
		}
		if code, out := do(t, http.MethodGet, "/v1/templates/never_stored/en_US", nil); code != http.StatusNotFound {
			t.Fatalf("get: %d %s, want 404", code, out)
		}
	})

	t.Run("over 256 KiB", func(t *testing.T) {
		t.Parallel()
		body := strings.Replace(shippingConfirmation, `"id":`, `"pad":"`+strings.Repeat("x", 256<<10)+`","id":`, 1)
		if code, out := do(t, http.MethodPost, "/v1/templates", []byte(body)); code != http.StatusRequestEntityTooLarge {
			t.Fatalf("got %d %s, want 413", code, out)
		}
	})
}

// TestTemplatePostNeverApproves (issue 13, finding 5): every POST is linted, a status in the
// body is ignored, and ?force=true registers a pending version, never an approved one: only
// Meta approves a template.
func TestTemplatePostNeverApproves(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{NoWorker: true})
	findings := strings.Replace(shippingConfirmation, "sample_shipping_confirmation", "%s", 1)
	cases := []struct {
		name, body, query string
		code              int
		status            string // stored status, "" when nothing is stored
		mention           string
	}{
		{"clean", fmt.Sprintf(pickupCode, "p_clean", ""), "", http.StatusCreated, "PENDING", ""},
		{"clean, APPROVED in the body", fmt.Sprintf(pickupCode, "p_claims_approved", `"status":"APPROVED",`), "", http.StatusCreated, "PENDING", ""},
		{"clean, approved in lower case", fmt.Sprintf(pickupCode, "p_claims_lower", `"status":"approved",`), "", http.StatusCreated, "PENDING", ""},
		{"clean, PAUSED in the body", fmt.Sprintf(pickupCode, "p_claims_paused", `"status":"PAUSED",`), "", http.StatusCreated, "PENDING", ""},
		{"findings, APPROVED in the body", fmt.Sprintf(findings, "s_claims_approved"), "", http.StatusUnprocessableEntity, "", "missing_example"},
		{"findings, no status", strings.Replace(fmt.Sprintf(findings, "s_no_status"), `"status":"APPROVED",`, "", 1), "", http.StatusUnprocessableEntity, "", "missing_example"},
		{"findings, force", strings.Replace(fmt.Sprintf(findings, "s_forced"), `"status":"APPROVED",`, "", 1), "?force=true", http.StatusCreated, "PENDING", ""},
		{"findings, APPROVED in the body, force", fmt.Sprintf(findings, "s_forced_approved"), "?force=true", http.StatusCreated, "PENDING", ""},
		{"force=false is no force", fmt.Sprintf(findings, "s_force_false"), "?force=false", http.StatusUnprocessableEntity, "", "missing_example"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var name struct{ Name string }
			if err := json.Unmarshal([]byte(c.body), &name); err != nil {
				t.Fatal(err)
			}
			code, out := call(t, http.MethodPost, h.APIURL+"/v1/templates"+c.query, harness.APIKey, []byte(c.body), nil)
			if code != c.code || !strings.Contains(string(out), c.mention) {
				t.Fatalf("POST: %d %s, want %d mentioning %q", code, out, c.code, c.mention)
			}
			if code == http.StatusUnprocessableEntity {
				if f := decode[struct{ Findings []map[string]any }](t, out).Findings; len(f) == 0 {
					t.Errorf("422 without findings: %s", out)
				}
			}
			gcode, d := getTemplate(t, h, harness.APIKey, name.Name, map[bool]string{true: "ru", false: "en_US"}[strings.Contains(c.body, `"ru"`)])
			switch {
			case c.status == "" && gcode != http.StatusNotFound:
				t.Fatalf("refused template stored: GET %d %+v", gcode, d)
			case c.status != "" && (gcode != http.StatusOK || d.Status != c.status):
				t.Fatalf("stored %d %+v, want status %s", gcode, d, c.status)
			}
		})
	}

	t.Run("a change to an approved template claiming APPROVED", func(t *testing.T) {
		t.Parallel()
		_, before := getTemplate(t, h, harness.APIKey, "booking_reminder", "ru")
		body := `{"name":"booking_reminder","language":"ru","status":"APPROVED","category":"UTILITY","parameter_format":"NAMED","components":[{"type":"BODY","text":"Здравствуйте, {{name}}! Ваша бронь в отеле {{hotel}} подтверждена.","example":{"body_text_named_params":[{"param_name":"name","example":"Анна"},{"param_name":"hotel","example":"Волга"}]}}]}`
		code, out := call(t, http.MethodPost, h.APIURL+"/v1/templates", harness.APIKey, []byte(body), nil)
		if d := decode[tdef](t, out); code != http.StatusCreated || d.Status != "PENDING" || d.Version != before.Version+1 {
			t.Fatalf("POST: %d %s", code, out)
		}
	})
}

// TestTemplatesPerTenant (issue 13, finding 5): bank posting its own order_ready leaves shop's
// alone, and Meta approving bank's version does not make it live for shop's jobs: shop's jobs
// go on rendering shop's approved version (its text on SMS, its button on WhatsApp), bank's
// render bank's.
func TestTemplatesPerTenant(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{Config: withTenants})
	_, shopBefore := getTemplate(t, h, shopKey, "order_ready", "ru")
	if shopBefore.Status != "APPROVED" {
		t.Fatalf("shop's sample order_ready: %+v", shopBefore)
	}
	const bankText = "Заказ {{order}} готов к выдаче по адресу {{address}}, хранение до {{until}}."
	bankVersion := `{"name":"order_ready","language":"ru","category":"UTILITY","parameter_format":"NAMED","components":[{"type":"BODY","text":"` + bankText + `","example":{"body_text_named_params":[{"param_name":"order","example":"123456"},{"param_name":"address","example":"ул. Ленина, 1"},{"param_name":"until","example":"21.02.2027"}]}}]}`
	code, out := call(t, http.MethodPost, h.APIURL+"/v1/templates", bankKey, []byte(bankVersion), nil)
	if code != http.StatusCreated {
		t.Fatalf("bank's POST: %d %s", code, out)
	}
	unchanged := func(when string) {
		t.Helper()
		for _, key := range []string{shopKey, harness.APIKey} {
			if code, d := getTemplate(t, h, key, "order_ready", "ru"); code != http.StatusOK || d.Status != "APPROVED" ||
				d.Version != shopBefore.Version || d.body() != shopBefore.body() {
				t.Errorf("%s, order_ready of %s's tenant: %d %+v, want version %d APPROVED with its own text", when, key, code, d, shopBefore.Version)
			}
		}
	}
	unchanged("after bank's POST")

	if code, out := postSigned(t, h, templateWebhook(t, 1, "order_ready", "ru", "APPROVED")); code != http.StatusOK {
		t.Fatalf("template webhook: %d %s", code, out)
	}
	testutil.Eventually(t, wait, func() bool {
		_, d := getTemplate(t, h, bankKey, "order_ready", "ru")
		return d.Status == "APPROVED" && d.body() == bankText
	}, "bank's version approved")
	unchanged("after Meta approved bank's version")

	params := map[string]string{"order": "123456", "address": "ул. Текстильщиков, д. 20", "until": "21.02.2027"}
	shopText := "Ваш заказ 123456 ждёт вас в пункте выдачи по адресу ул. Текстильщиков, д. 20. Срок хранения до 21.02.2027 включительно."
	bankRendered := "Заказ 123456 готов к выдаче по адресу ул. Текстильщиков, д. 20, хранение до 21.02.2027."
	jobs := []struct {
		name, key, tenant, channel string
		buttons                    map[string]string
		check                      func(m sim.Message) string // "" when the send is right
	}{
		{"shop by SMS", shopKey, "shop", "sms", map[string]string{"0": "123456"}, func(m sim.Message) string {
			if !strings.HasPrefix(m.Text, shopText) {
				return fmt.Sprintf("SMS text %q, want shop's %q", m.Text, shopText)
			}
			return ""
		}},
		{"shop on WhatsApp", shopKey, "shop", "white", map[string]string{"0": "123456"}, func(m sim.Message) string {
			if m.Template != "order_ready" || !strings.Contains(string(m.Body), `"sub_type":"url"`) || !strings.Contains(string(m.Body), `"text":"123456"`) {
				return fmt.Sprintf("Cloud API request %s, want shop's URL button", m.Body)
			}
			return ""
		}},
		{"bank by SMS", bankKey, "bank", "sms", nil, func(m sim.Message) string {
			if !strings.HasPrefix(m.Text, bankRendered) {
				return fmt.Sprintf("SMS text %q, want bank's %q", m.Text, bankRendered)
			}
			return ""
		}},
	}
	for i, jc := range jobs {
		t.Run(jc.name, func(t *testing.T) {
			t.Parallel()
			id := fmt.Sprintf("tenant-render-%d", i)
			body := mustJSON(t, map[string]any{"id": id, "to": fmt.Sprintf("+7900123%04d", 4100+i), "template": "order_ready",
				"params": params, "buttons": jc.buttons, "channels": []string{jc.channel}})
			if code, out := call(t, http.MethodPost, h.APIURL+"/v1/notifications", jc.key, body, nil); code != http.StatusAccepted {
				t.Fatalf("POST: %d %s", code, out)
			}
			var sent *sim.Message
			testutil.Eventually(t, wait, func() bool {
				for _, m := range h.Sim.Messages() {
					if m.JobID == id && m.Tenant == jc.tenant && m.Channel == jc.channel {
						sent = &m
						return true
					}
				}
				code, out := call(t, http.MethodGet, h.APIURL+"/v1/notifications/"+id, jc.key, nil, nil)
				if code == http.StatusOK && strings.Contains(string(out), `"state":"failed"`) {
					t.Fatalf("job failed: %s", out)
				}
				return false
			}, "%s's job %s sent on %s", jc.tenant, id, jc.channel)
			if msg := jc.check(*sent); msg != "" {
				t.Error(msg)
			}
		})
	}
}

// TestTemplateWebhookPerTenant (issue 13, finding 5): a status webhook changes only the
// versions it is about: a definition that records Meta's template id takes only that id's
// reviews, so Meta approving bank's template leaves shop's pending one pending; a tenant's
// list shows only its own templates.
func TestTemplateWebhookPerTenant(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{NoWorker: true, Config: withTenants})
	shopDef := strings.Replace(fmt.Sprintf(pickupCode, "pickup_code", `"id":"111",`), "Ваш заказ номер", "Ваш заказ", 1)
	bankDef := fmt.Sprintf(pickupCode, "pickup_code", `"id":"222",`)
	for _, p := range []struct{ key, body string }{{shopKey, shopDef}, {bankKey, bankDef}} {
		if code, out := call(t, http.MethodPost, h.APIURL+"/v1/templates", p.key, []byte(p.body), nil); code != http.StatusCreated {
			t.Fatalf("POST: %d %s", code, out)
		}
	}
	steps := []struct {
		name       string
		id         int64
		event      string
		shop, bank string // the statuses after the webhook
	}{
		{"bank's template approved", 222, "APPROVED", "PENDING", "APPROVED"},
		{"shop's template rejected", 111, "REJECTED", "REJECTED", "APPROVED"},
		{"another template's review", 333, "PAUSED", "REJECTED", "APPROVED"},
		{"shop's template approved", 111, "APPROVED", "APPROVED", "APPROVED"},
		{"bank's template paused", 222, "PAUSED", "APPROVED", "PAUSED"},
	}
	for _, s := range steps { // in order: each step starts from the last one's statuses
		if code, out := postSigned(t, h, templateWebhook(t, s.id, "pickup_code", "ru", s.event)); code != http.StatusOK {
			t.Fatalf("%s: webhook %d %s", s.name, code, out)
		}
		testutil.Eventually(t, wait, func() bool {
			_, shop := getTemplate(t, h, shopKey, "pickup_code", "ru")
			_, bank := getTemplate(t, h, bankKey, "pickup_code", "ru")
			return shop.Status == s.shop && bank.Status == s.bank
		}, "%s: want shop %s, bank %s", s.name, s.shop, s.bank)
		_, shop := getTemplate(t, h, shopKey, "pickup_code", "ru")
		_, bank := getTemplate(t, h, bankKey, "pickup_code", "ru")
		if shop.ID != "111" || bank.ID != "222" || !strings.HasPrefix(shop.body(), "Ваш заказ {{1}}") || !strings.HasPrefix(bank.body(), "Ваш заказ номер") {
			t.Fatalf("%s: shop %+v, bank %+v", s.name, shop, bank)
		}
	}

	// Each tenant lists its own catalogue.
	_, out := call(t, http.MethodPost, h.APIURL+"/v1/templates", bankKey, []byte(fmt.Sprintf(pickupCode, "bank_only", "")), nil)
	if d := decode[tdef](t, out); d.Name != "bank_only" {
		t.Fatalf("POST bank_only: %s", out)
	}
	for _, c := range []struct {
		key  string
		want []string
	}{
		{shopKey, []string{"bonus_expiring", "booking_reminder", "order_ready", "pickup_code:111"}},
		{bankKey, []string{"bank_only", "bonus_expiring", "booking_reminder", "order_ready", "pickup_code:222"}},
		{harness.APIKey, []string{"bonus_expiring", "booking_reminder", "order_ready"}},
	} {
		code, out := call(t, http.MethodGet, h.APIURL+"/v1/templates", c.key, nil, nil)
		var got []string
		for _, d := range decode[struct{ Data []tdef }](t, out).Data {
			got = append(got, strings.TrimSuffix(d.Name+":"+d.ID, ":"))
		}
		if code != http.StatusOK || !slices.Equal(got, c.want) {
			t.Errorf("list of %s: %d %v, want %v", c.key, code, got, c.want)
		}
	}
}

// TestTemplateWebhookByFleetWABA: with a fleet file, a review applies to the tenants whose
// senders are of the WABA it came from, even where versions record no Meta id: bank's WABA
// approving its pickup_code leaves shop's (on another WABA) pending.
func TestTemplateWebhookByFleetWABA(t *testing.T) {
	t.Parallel()
	h := startFleet(t, false)
	for _, key := range []string{fleetShopKey, fleetBankKey} {
		if code, out := call(t, http.MethodPost, h.APIURL+"/v1/templates", key, []byte(fmt.Sprintf(pickupCode, "pickup_code", "")), nil); code != http.StatusCreated {
			t.Fatalf("POST: %d %s", code, out)
		}
	}
	steps := []struct {
		name, waba, secret, event string
		shop, bank                string // the statuses after the webhook
	}{
		{"bank's WABA approves", bankWABA, secretB, "APPROVED", "PENDING", "APPROVED"},
		{"shop's WABA rejects", shopWABA, secretA, "REJECTED", "REJECTED", "APPROVED"},
		{"shop's WABA approves", shopWABA, secretA, "APPROVED", "APPROVED", "APPROVED"},
		{"bank's WABA pauses", bankWABA, secretB, "PAUSED", "APPROVED", "PAUSED"},
	}
	for _, s := range steps { // in order: each step starts from the last one's statuses
		if code, out := postWith(t, h, templateWebhookFrom(t, s.waba, 0, "pickup_code", "ru", s.event), s.secret); code != http.StatusOK {
			t.Fatalf("%s: webhook %d %s", s.name, code, out)
		}
		testutil.Eventually(t, wait, func() bool {
			_, shop := getTemplate(t, h, fleetShopKey, "pickup_code", "ru")
			_, bank := getTemplate(t, h, fleetBankKey, "pickup_code", "ru")
			return shop.Status == s.shop && bank.Status == s.bank
		}, "%s: want shop %s, bank %s", s.name, s.shop, s.bank)
	}
}

// TestTemplateWebhookRecordsWABA: a template webhook records its review under the WABA of
// its entry, beside the other WABAs' (GET and the listing show them), and the definition's
// Status sums them up: approved while one WABA approves. A review of another template id in
// a WABA that knows the template changes nothing.
func TestTemplateWebhookRecordsWABA(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{NoWorker: true, Config: withTenants})
	if code, out := call(t, http.MethodPost, h.APIURL+"/v1/templates", shopKey, []byte(fmt.Sprintf(pickupCode, "pickup_code", "")), nil); code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, out)
	}
	const wabaA, wabaB = "600301", "600302"
	steps := []struct {
		name, waba, event string
		id                int64
		status            string            // the definition's
		wabas             map[string]string // WABA → status
	}{
		{"A approves", wabaA, "APPROVED", 9001, "APPROVED", map[string]string{wabaA: "APPROVED"}},
		{"B rejects", wabaB, "REJECTED", 9002, "APPROVED", map[string]string{wabaA: "APPROVED", wabaB: "REJECTED"}},
		{"another template in A", wabaA, "PAUSED", 9999, "APPROVED", map[string]string{wabaA: "APPROVED", wabaB: "REJECTED"}},
		{"A pauses", wabaA, "PAUSED", 9001, "PAUSED", map[string]string{wabaA: "PAUSED", wabaB: "REJECTED"}},
		{"B approves", wabaB, "APPROVED", 9002, "APPROVED", map[string]string{wabaA: "PAUSED", wabaB: "APPROVED"}},
	}
	ids := map[string]string{wabaA: "9001", wabaB: "9002"}
	for _, s := range steps { // in order: each step starts from the last one's reviews
		if code, out := postSigned(t, h, templateWebhookFrom(t, s.waba, s.id, "pickup_code", "ru", s.event)); code != http.StatusOK {
			t.Fatalf("%s: webhook %d %s", s.name, code, out)
		}
		reviews := func(d tdef) map[string]string {
			got := map[string]string{}
			for w, r := range d.WABAs {
				got[w] = r.Status
			}
			return got
		}
		testutil.Eventually(t, wait, func() bool {
			_, d := getTemplate(t, h, shopKey, "pickup_code", "ru")
			return d.Status == s.status && maps.Equal(reviews(d), s.wabas)
		}, "%s: want %s with reviews %v", s.name, s.status, s.wabas)
		_, d := getTemplate(t, h, shopKey, "pickup_code", "ru")
		for w, r := range d.WABAs {
			if r.ID != ids[w] {
				t.Errorf("%s: review of %s names id %s, want %s", s.name, w, r.ID, ids[w])
			}
		}
	}
	code, out := call(t, http.MethodGet, h.APIURL+"/v1/templates", shopKey, nil, nil)
	for _, d := range decode[struct{ Data []tdef }](t, out).Data {
		if d.Name == "pickup_code" && (code != http.StatusOK || d.WABAs[wabaA].Status != "PAUSED" || d.WABAs[wabaB].Status != "APPROVED") {
			t.Errorf("listing: %d %+v, want the reviews per WABA", code, d)
		}
	}
	// bank has no pickup_code: none of this touched its catalogue.
	if code, _ := getTemplate(t, h, bankKey, "pickup_code", "ru"); code != http.StatusNotFound {
		t.Errorf("bank's pickup_code: %d, want 404", code)
	}
}
