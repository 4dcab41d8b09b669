package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/api"
	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/harness"
	"github.com/herald-notify/herald/internal/health"
)

// TestSendersCommand: `herald senders` shows the key's tenant's pool as a table or JSON, and
// no other tenant's senders. Not parallel: the CLI reads its settings from the environment.
func TestSendersCommand(t *testing.T) {
	const fleetFile = `
senders:
  - {id: shop-msk, kind: white, phone_number_id: "700100001", token: t, app_secret: shop-secret, mps: 50}
  - {id: shop-grey, kind: grey, base_url: "http://127.0.0.1:9", instance_id: "1101000001", token: t,
     webhook_token: shop-grey-webhook-01, daily_max: 300, warmup: {start: 20, days: 10}}
  - {id: bank-msk, kind: white, phone_number_id: "700200001", token: t, app_secret: bank-secret}
tenants:
  shop: {api_keys: [cli-shop-key-1], channels: [white, grey], senders: [shop-msk, shop-grey]}
  bank: {api_keys: [cli-bank-key-1], channels: [white], senders: [bank-msk]}
`
	path := filepath.Join(t.TempDir(), "fleet.yaml")
	if err := os.WriteFile(path, []byte(fleetFile), 0o600); err != nil {
		t.Fatal(err)
	}
	h := harness.Start(t, harness.Options{NoWorker: true, Config: func(c *config.Config) { c.ConfigFile = path }})
	t.Setenv("HERALD_API_URL", h.APIURL)
	t.Setenv("HERALD_API_KEY", "cli-shop-key-1")
	tests := []struct {
		name    string
		args    []string
		code    int
		has     []string
		hasNone []string
	}{
		{"table", []string{"senders"}, exitOK,
			[]string{"tenant shop: 2 senders", "ID", "USABLE", "HEALTH", "REASON", "shop-msk", "700100001", "50/s", "shop-grey", "1101000001",
				"0 sent, 20 of 300", "0 of 1/s", "10 days from 20"},
			[]string{"bank-msk", "shop-secret", "shop-grey-webhook-01"}},
		{"json", []string{"senders", "-output", "json"}, exitOK, []string{`"id":"shop-msk"`, `"mps":50`, `"usable":true`, `"sends_24h":0`}, []string{"bank-msk"}},
		{"another tenant", []string{"senders", "-tenant", "bank"}, exitFailure, nil, []string{"bank-msk"}},
		{"an argument", []string{"senders", "extra"}, exitUsage, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tt.args, &out, &errb)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stdout %s stderr %s", code, tt.code, out.String(), errb.String())
			}
			for _, s := range tt.has {
				if !strings.Contains(out.String(), s) {
					t.Errorf("output lacks %q:\n%s", s, out.String())
				}
			}
			for _, s := range tt.hasNone {
				if strings.Contains(out.String()+errb.String(), s) {
					t.Errorf("output holds %q:\n%s", s, out.String())
				}
			}
			if tt.name == "json" {
				var v struct{ Senders []map[string]any }
				if err := json.Unmarshal(out.Bytes(), &v); err != nil || len(v.Senders) != 2 {
					t.Errorf("json: %v %s", err, out.String())
				}
			}
		})
	}
}

// TestPrintSenders: the table says which senders are out and why, and their use against
// their caps.
func TestPrintSenders(t *testing.T) {
	t.Parallel()
	n := func(i int) *int { return &i }
	until := time.Date(2026, 5, 2, 10, 0, 0, 0, time.UTC)
	day := 3
	tests := []struct {
		name string
		s    api.SenderView
		has  []string
	}{
		{"flagged number", api.SenderView{ID: "w", Kind: "white", PhoneNumberID: "100", MPS: 80, Health: "down", Rating: "RED",
			Reason: "quality RED (FLAGGED)", Quality: &health.Event{Event: "FLAGGED", Limit: "TIER_1K"}, DailyUnique: 1000,
			Use: &api.UseView{Rate: 40, BookedAheadMS: 300, Unique24h: n(12)}},
			[]string{"no", "down", "RED (FLAGGED TIER_1K)", "80/s slowed to 40 full", "12 of 1000", "quality RED (FLAGGED)"}},
		{"refused until", api.SenderView{ID: "r", Kind: "white", MPS: 80, Health: "down", Reason: "refused 131031", Until: &until},
			[]string{"no", "refused 131031 until 2026-05-02T10:00:00Z", "80/s"}},
		{"portfolio use", api.SenderView{ID: "p", Kind: "white", MPS: 80, Usable: true, Health: "ok", Portfolio: "pf", PortfolioDailyUnique: 5000,
			Use: &api.UseView{Rate: 80, PortfolioUnique24h: n(42)}},
			[]string{"yes", "42 of 5000 (pf)"}},
		{"grey warming up", api.SenderView{ID: "g", Kind: "grey", Instance: "11", MPS: 1, Usable: true, Health: "ok", Breaker: "closed",
			DailyMax: 300, DailyCap: 80, Warmup: &api.WarmupView{Start: 20, Days: 10, Day: &day, From: "first_send"},
			Use: &api.UseView{Rate: 1, Sends1s: n(1), Sends24h: n(57)}},
			[]string{"yes", "1 of 1/s", "57 sent, 80 of 300", "day 3 of 10 (from the first send)", "closed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			if err := printSenders(&b, "shop", []api.SenderView{tt.s}); err != nil {
				t.Fatal(err)
			}
			for _, want := range tt.has {
				if !strings.Contains(b.String(), want) {
					t.Errorf("table lacks %q:\n%s", want, b.String())
				}
			}
		})
	}
}
