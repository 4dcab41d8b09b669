package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herald-notify/herald/internal/campaign"
	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/harness"
	"github.com/herald-notify/herald/internal/streams"
)

// TestImportCampaignPerTenant (issue 13, findings 4 and 11): `herald import --tenant` records
// the campaign under that tenant, `herald campaign show|cancel` act on the API key's tenant
// only, and an import or a cancel that would give a tenant more campaigns than
// HERALD_CAMPAIGNS_MAX_PER_TENANT fails (exit 1) with nothing queued. Not parallel: the CLI
// reads its settings from the environment.
func TestImportCampaignPerTenant(t *testing.T) {
	const limit = 2
	const shopKey, bankKey = "cli-shop-key-01", "cli-bank-key-01"
	h := harness.Start(t, harness.Options{NoWorker: true, Config: func(c *config.Config) {
		c.APIKeys = harness.Tenant + ":" + harness.APIKey + ",shop:" + shopKey + ",bank:" + bankKey
		c.CampaignsMaxPerTenant = limit
	}})
	t.Setenv("HERALD_NATS_URL", h.Cfg.NATSURL)
	t.Setenv("HERALD_API_URL", h.APIURL)
	t.Setenv("HERALD_CAMPAIGNS_MAX_PER_TENANT", fmt.Sprint(limit))

	dir := t.TempDir()
	file := filepath.Join(dir, "base.csv")
	if err := os.WriteFile(file, []byte("phone,first_name,bonus,expires\n+79010000001,Анна,100,30.11.2026\n+79010000002,Иван,200,30.11.2026\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	jobs := func() uint64 {
		s, err := h.JS.Stream(t.Context(), streams.JobsStream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	cli := func(key string, args ...string) (int, string, string) {
		t.Setenv("HERALD_API_KEY", key)
		var out, errb bytes.Buffer
		code := run(args, &out, &errb)
		return code, out.String(), errb.String()
	}
	imp := func(camp, tenant string) (int, string) {
		args := []string{"import", file, "--campaign", camp, "--template", "bonus_expiring", "--map", "name=first_name",
			"--map", "amount=bonus", "--map", "date=expires", "--rejects", filepath.Join(dir, camp+"-"+tenant+".rejects.csv")}
		if tenant != "" {
			args = append(args, "--tenant", tenant)
		}
		code, _, stderr := cli(shopKey, args...)
		return code, stderr
	}

	// The import records shop's campaign, nobody else's.
	if code, stderr := imp("bonus-nov", "shop"); code != exitOK {
		t.Fatalf("import: exit %d: %s", code, stderr)
	}
	kv, err := h.JS.KeyValue(t.Context(), streams.CampaignsKV)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := campaign.Get(t.Context(), kv, "shop", "bonus-nov"); err != nil || m.Queued != 2 || m.Template != "bonus_expiring" {
		t.Fatalf("shop's campaign: %+v, %v", m, err)
	}
	if _, err := campaign.Get(t.Context(), kv, "", "bonus-nov"); err == nil {
		t.Fatal("the import recorded the default tenant's campaign too")
	}

	shows := []struct {
		name string
		key  string
		code int
	}{
		{"shop sees its campaign", shopKey, exitOK},
		{"bank does not see shop's", bankKey, exitNotFound},
		{"the default tenant does not see shop's", harness.APIKey, exitNotFound},
	}
	for _, tc := range shows {
		code, out, stderr := cli(tc.key, "campaign", "show", "-output", "json", "bonus-nov")
		if code != tc.code {
			t.Fatalf("%s: exit %d, want %d: %s %s", tc.name, code, tc.code, out, stderr)
		}
		if code == exitOK {
			var v campaign.View
			if err := json.Unmarshal([]byte(out), &v); err != nil || v.Queued != 2 || v.Tenant != "shop" {
				t.Fatalf("%s: %s (%v)", tc.name, out, err)
			}
		}
	}
	// Bank's cancel of the name is bank's: shop's campaign is not canceled.
	if code, out, stderr := cli(bankKey, "campaign", "cancel", "bonus-nov"); code != exitOK || !strings.Contains(out, "tenant bank") {
		t.Fatalf("bank's cancel: exit %d: %s %s", code, out, stderr)
	}
	if m, _ := campaign.Get(t.Context(), kv, "shop", "bonus-nov"); m == nil || m.Canceled != nil {
		t.Fatalf("bank's cancel canceled shop's campaign: %+v", m)
	}

	// The cap: shop has one campaign; a second is fine, a re-run of either too, a third not.
	if code, stderr := imp("bonus-dec", "shop"); code != exitOK {
		t.Fatalf("second campaign: exit %d: %s", code, stderr)
	}
	before := jobs()
	code, stderr := imp("bonus-jan", "shop")
	if code != exitFailure || !strings.Contains(stderr, "HERALD_CAMPAIGNS_MAX_PER_TENANT") || !strings.Contains(stderr, "nothing queued") {
		t.Fatalf("import past the cap: exit %d: %s", code, stderr)
	}
	if after := jobs(); after != before {
		t.Fatalf("the refused import queued %d jobs", after-before)
	}
	if code, stderr := imp("bonus-nov", "shop"); code != exitOK {
		t.Fatalf("re-run of an existing campaign at the cap: exit %d: %s", code, stderr)
	}
	if code, stderr := imp("bonus-jan", ""); code != exitOK {
		t.Fatalf("the same name for the default tenant: exit %d: %s", code, stderr)
	}
	if code, out, stderr := cli(shopKey, "campaign", "cancel", "bonus-feb"); code != exitFailure || !strings.Contains(stderr, "HERALD_CAMPAIGNS_MAX_PER_TENANT") {
		t.Fatalf("cancel past the cap: exit %d: %s %s", code, out, stderr)
	}
}
