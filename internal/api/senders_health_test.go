package api_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/api"
	"github.com/herald-notify/herald/internal/fleet"
	"github.com/herald-notify/herald/internal/health"
	"github.com/herald-notify/herald/internal/ratelimit"
	"github.com/herald-notify/herald/internal/testutil"
)

// qualityWebhook is a phone_number_quality_update or account_update for bank's number.
func qualityWebhook(t *testing.T, field string, value map[string]any) []byte {
	t.Helper()
	value["display_phone_number"], value["phone_number"] = bankDisplay, bankDisplay
	return mustJSON(t, map[string]any{"object": "whatsapp_business_account", "entry": []any{map[string]any{
		"id": bankWABA, "time": time.Now().Unix(), "changes": []any{map[string]any{"field": field, "value": value}}}}})
}

// TestSenderHealthReachesWorkers: a provider's health news posted to the API takes the
// sender out of (or back into) its pool on a worker's health.Watcher within a second, and
// GET /v1/senders says the same.
func TestSenderHealthReachesWorkers(t *testing.T) {
	t.Parallel()
	h := startFleet(t, false)
	nc, _ := h.NATS.Connect(t)
	ctx, cancel := context.WithCancel(context.Background())
	w, err := health.Watch(ctx, nc, health.NewStore(h.RDB), []string{"bank-1", "bank-grey", "shop-1"},
		slog.New(slog.DiscardHandler), health.WithRefresh(time.Hour)) // only the messages can tell it in time
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-w.Done() })
	bankGreyState := func(state string) func(t *testing.T) {
		return func(t *testing.T) {
			body := `{"typeWebhook":"stateInstanceChanged","instanceData":{"idInstance":` + bankGrey + `,"wid":"1@c.us","typeInstance":"whatsapp"},"timestamp":1700000000,"stateInstance":"` + state + `"}`
			if code, out := postGrey(t, h.APIURL, bankGreyTok, body); code != http.StatusOK {
				t.Fatalf("grey state: %d %s", code, out)
			}
		}
	}
	meta := func(field string, value map[string]any) func(t *testing.T) {
		return func(t *testing.T) {
			if code, out := postWith(t, h, qualityWebhook(t, field, value), secretB); code != http.StatusOK {
				t.Fatalf("%s: %d %s", field, code, out)
			}
		}
	}
	inAnHour := time.Now().Add(time.Hour).Unix()
	// Steps in order: each changes one sender.
	steps := []struct {
		name   string
		post   func(t *testing.T)
		sender string
		usable bool
		health string
		rating string
	}{
		{"quality flagged", meta("phone_number_quality_update", map[string]any{"event": "FLAGGED", "current_limit": "TIER_1K"}), "bank-1", false, "down", "RED"},
		{"downgraded while flagged", meta("phone_number_quality_update", map[string]any{"event": "DOWNGRADE", "current_limit": "TIER_250"}), "bank-1", false, "down", "RED"},
		{"unflagged", meta("phone_number_quality_update", map[string]any{"event": "UNFLAGGED", "current_limit": "TIER_250"}), "bank-1", true, "ok", "GREEN"},
		{"restricted for an hour", meta("account_update", map[string]any{"event": "ACCOUNT_RESTRICTION",
			"restriction_info": []any{map[string]any{"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expiration": inAnHour}}}), "bank-1", false, "down", "GREEN"},
		{"other account news lifts nothing", meta("account_update", map[string]any{"event": "VERIFIED_ACCOUNT"}), "bank-1", false, "down", "GREEN"},
		{"grey blocked", bankGreyState("blocked"), "bank-grey", false, "down", ""},
		{"grey authorized", bankGreyState("authorized"), "bank-grey", true, "ok", ""},
	}
	for _, st := range steps {
		// Not parallel: each step follows the one before.
		t.Run(st.name, func(t *testing.T) {
			st.post(t)
			testutil.Eventually(t, time.Second, func() bool { ok, _ := w.Usable(st.sender); return ok == st.usable },
				"watcher: %s usable %v", st.sender, st.usable)
			code, out := call(t, http.MethodGet, h.APIURL+"/v1/senders", fleetBankKey, nil, nil)
			if code != http.StatusOK {
				t.Fatalf("GET /v1/senders: %d %s", code, out)
			}
			for _, v := range decode[struct{ Senders []api.SenderView }](t, out).Senders {
				if v.ID != st.sender {
					continue
				}
				if v.Usable != st.usable || v.Health != st.health || v.Rating != st.rating || (v.Reason == "") == !st.usable {
					t.Errorf("%s: usable %v health %s rating %q reason %q; want %v %s %q", v.ID, v.Usable, v.Health, v.Rating, v.Reason, st.usable, st.health, st.rating)
				}
			}
			if ok, _ := w.Usable("shop-1"); !ok {
				t.Error("another tenant's sender left its pool")
			}
		})
	}
	if got, ok := w.Status("bank-1"); !ok || got.Until.Unix() != inAnHour {
		t.Errorf("restricted until %v, want the restriction's expiry", got.Until)
	}
	_, out := call(t, http.MethodGet, h.APIURL+"/v1/senders", fleetBankKey, nil, nil)
	for _, v := range decode[struct{ Senders []api.SenderView }](t, out).Senders {
		if v.ID == "bank-1" && (v.Account == nil || v.Account.Event != "VERIFIED_ACCOUNT" || v.Until == nil) {
			t.Errorf("bank-1 account %+v until %v, want the latest news shown and the restriction's end", v.Account, v.Until)
		}
	}
}

// TestSendersUse: GET /v1/senders shows each sender's current use from the limiter's keys
// and a warm-up day counted from the first send when the fleet file gives no since.
func TestSendersUse(t *testing.T) {
	t.Parallel()
	f, err := fleet.Parse([]byte(`
portfolios:
  pf: {daily_unique: 5000}
senders:
  - {id: w-1, kind: white, phone_number_id: "900100001", token: t, app_secret: s, mps: 20, daily_unique: 1000, portfolio: pf}
  - {id: g-new, kind: grey, base_url: "http://127.0.0.1:9", instance_id: "1109000001", token: t,
     webhook_token: g-new-webhook-token-1, mps: 1, daily_max: 300, warmup: {start: 20, days: 10}}
  - {id: g-idle, kind: grey, base_url: "http://127.0.0.1:9", instance_id: "1109000002", token: t,
     webhook_token: g-idle-webhook-token, mps: 1, daily_max: 300, warmup: {start: 20, days: 10}}
  - {id: w-other, kind: white, phone_number_id: "900200001", token: t, app_secret: s2}
tenants:
  t1: {channels: [white, grey], senders: [w-1, g-new, g-idle]}
  t2: {channels: [white], senders: [w-other]}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	rdb := testutil.StartRedis(t).Client(t)
	ctx := context.Background()
	lim := ratelimit.New(rdb)
	reserve := func(r ratelimit.Request) {
		t.Helper()
		if d, err := lim.Reserve(ctx, r); err != nil || !d.Allowed {
			t.Fatalf("reserve %+v: %+v %v", r, d, err)
		}
	}
	w1, _ := f.SenderByID("w-1")
	gNew, _ := f.SenderByID("g-new")
	for _, to := range []string{"+79000000001", "+79000000002"} {
		reserve(ratelimit.Request{Sender: w1.Key(), Rate: 20, Horizon: time.Second, Recipient: to, UniqueDailyMax: 1000, CountsUnique: true,
			Portfolio: "pf", PortfolioDailyMax: 5000})
	}
	for range 3 {
		reserve(ratelimit.Request{Sender: gNew.Key(), Rate: 1000, Horizon: time.Second, SenderDailyMax: 300})
	}
	// g-new first sent three days ago.
	if err := rdb.Set(ctx, "herald:sender:{g-new}:first_seen", time.Now().Add(-73*time.Hour).UnixMilli(), 0).Err(); err != nil {
		t.Fatal(err)
	}
	srv := api.New(api.Config{Fleet: f, Keys: map[string]string{"t1-key-000001": "t1"}, Health: api.NewRedisHealth(rdb),
		Logger: slog.New(slog.DiscardHandler)})
	var views map[string]api.SenderView
	testutil.Eventually(t, 2*time.Second, func() bool {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httpRequest(t, http.MethodGet, "/v1/senders", "", map[string]string{"Authorization": "Bearer t1-key-000001"}))
		if rec.Code != http.StatusOK {
			t.Fatalf("GET /v1/senders: %d %s", rec.Code, rec.Body)
		}
		views = map[string]api.SenderView{}
		for _, v := range decode[struct{ Senders []api.SenderView }](t, rec.Body.Bytes()).Senders {
			views[v.ID] = v
		}
		// The grey slots are 1 ms apart: the last may still lie ahead.
		u := views["g-new"].Use
		return u != nil && u.Sends24h != nil && *u.Sends24h == 3
	}, "g-new's 3 sends counted")
	tests := []struct {
		id    string
		check func(t *testing.T, v api.SenderView)
	}{
		{"w-1", func(t *testing.T, v api.SenderView) {
			if u := v.Use; u == nil || u.Rate != 20 || u.Unique24h == nil || *u.Unique24h != 2 || u.Sends24h != nil ||
				u.PortfolioUnique24h == nil || *u.PortfolioUnique24h != 2 {
				t.Errorf("use %+v, want rate 20 and 2 unique for the number and its portfolio", u)
			}
		}},
		{"g-new", func(t *testing.T, v api.SenderView) {
			if u := v.Use; u == nil || u.Sends1s == nil || *u.Sends1s != 3 || u.Unique24h != nil {
				t.Errorf("use %+v, want 3 sends in the last second", u)
			}
			if wu := v.Warmup; wu == nil || wu.Day == nil || *wu.Day != 3 || wu.From != "first_send" || v.DailyCap <= 20 {
				t.Errorf("warmup %+v daily cap %d, want day 3 from the first send", wu, v.DailyCap)
			}
		}},
		{"g-idle", func(t *testing.T, v api.SenderView) {
			if wu := v.Warmup; wu == nil || wu.Day != nil || v.DailyCap != 20 {
				t.Errorf("warmup %+v daily cap %d, want no day yet and the first day's cap", wu, v.DailyCap)
			}
			if u := v.Use; u == nil || u.Sends24h == nil || *u.Sends24h != 0 {
				t.Errorf("use %+v, want 0 sends", u)
			}
			if !v.Usable || v.Health != "unknown" {
				t.Errorf("usable %v health %s, want usable with no news", v.Usable, v.Health)
			}
		}},
		{"w-other", func(t *testing.T, v api.SenderView) { t.Error("another tenant's sender is listed") }},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			t.Parallel()
			v, ok := views[tt.id]
			if !ok {
				if tt.id != "w-other" {
					t.Fatalf("%s not listed", tt.id)
				}
				return
			}
			tt.check(t, v)
		})
	}
}
