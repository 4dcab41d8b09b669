package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/herald-notify/herald/internal/campaign"
	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/harness"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/testutil"
)

// Two tenants' keys for the campaign tests (issue 13, findings 4 and 11).
const (
	campShopKey = "camp-shop-key-01"
	campBankKey = "camp-bank-key-01"
)

// campaignTenants starts a Herald where shop and bank have a key each.
func campaignTenants(t *testing.T, noWorker bool, set func(*config.Config)) *harness.Herald {
	t.Helper()
	return harness.Start(t, harness.Options{NoWorker: noWorker, Config: func(c *config.Config) {
		c.APIKeys = harness.Tenant + ":" + harness.APIKey + ",shop:" + campShopKey + ",bank:" + campBankKey
		if set != nil {
			set(c)
		}
	}})
}

// campaignAs is GET /v1/campaigns/{name} with key.
func campaignAs(t *testing.T, h *harness.Herald, key, name string) (int, campaign.View, string) {
	t.Helper()
	code, out := call(t, http.MethodGet, h.APIURL+"/v1/campaigns/"+url.PathEscape(name), key, nil, nil)
	var v campaign.View
	if code == http.StatusOK {
		v = decode[campaign.View](t, out)
	}
	return code, v, string(out)
}

// cancelAs is POST /v1/campaigns/{name}/cancel with key.
func cancelAs(t *testing.T, h *harness.Herald, key, name string) (int, string) {
	t.Helper()
	code, out := call(t, http.MethodPost, h.APIURL+"/v1/campaigns/"+url.PathEscape(name)+"/cancel", key, nil, nil)
	return code, string(out)
}

// smsJob is a campaign's free-text job that goes out by SMS (no template, so no catalogue).
func smsJob(id, to, camp string) map[string]any {
	return map[string]any{"id": id, "to": to, "text": "Ваш бонус сгорает 30.11", "channels": []string{"sms"},
		"campaign": camp, "priority": "transactional"}
}

// stateAs is the state of key's tenant's job id ("" when it has no record yet).
func stateAs(t *testing.T, h *harness.Herald, key, id string) string {
	t.Helper()
	code, out := call(t, http.MethodGet, h.APIURL+"/v1/notifications/"+url.PathEscape(id), key, nil, nil)
	if code != http.StatusOK {
		return ""
	}
	return decode[status.Record](t, out).State
}

func sentOrDelivered(s string) bool { return s == status.Sent || s == status.Delivered }

// TestCampaignsPerTenant (finding 4): bank cannot read shop's campaign's counts and cost,
// bank's cancel of shop's campaign name cancels nothing of shop's, and bank's pre-cancel of a
// name shop has not used yet does not cancel shop's later jobs under that name: they go out.
// Each cancel is proven applied by the workers (a bank job of the campaign ends canceled)
// before shop's jobs are posted.
func TestCampaignsPerTenant(t *testing.T) {
	t.Parallel()
	h := campaignTenants(t, false, nil)
	post := func(t *testing.T, key string, j map[string]any) {
		t.Helper()
		if code, out := call(t, http.MethodPost, h.APIURL+"/v1/notifications", key, mustJSON(t, j), nil); code != http.StatusAccepted {
			t.Fatalf("post %v: %d %s", j["id"], code, out)
		}
	}
	waitState := func(t *testing.T, key, id string, ok func(string) bool, what string) {
		t.Helper()
		testutil.Eventually(t, wait, func() bool { return ok(stateAs(t, h, key, id)) }, "%s %s", id, what)
	}
	canceled := func(s string) bool { return s == status.Canceled }

	// Shop's campaign autumn goes out.
	for i := range 3 {
		post(t, campShopKey, smsJob(fmt.Sprintf("autumn-%d", i), fmt.Sprintf("+7901000%04d", i), "autumn"))
	}
	for i := range 3 {
		waitState(t, campShopKey, fmt.Sprintf("autumn-%d", i), sentOrDelivered, "sent")
	}

	cases := []struct {
		name string
		camp string // the campaign name both tenants use
		// preCancel: bank cancels before shop has used the name.
		preCancel bool
	}{
		{"bank cancels shop's running campaign", "autumn", false},
		{"bank pre-cancels a name shop has not used", "winter", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.preCancel {
				// Bank does not see shop's counts and cost.
				if code, v, out := campaignAs(t, h, campBankKey, tc.camp); code != http.StatusNotFound {
					t.Fatalf("bank reads shop's campaign: %d %+v %s", code, v, out)
				}
				if code, v, out := campaignAs(t, h, campShopKey, tc.camp); code != http.StatusOK || v.Seen != 3 || v.Tenant != "shop" {
					t.Fatalf("shop's own view: %d %+v %s", code, v, out)
				}
			}
			if code, out := cancelAs(t, h, campBankKey, tc.camp); code != http.StatusOK {
				t.Fatalf("bank's cancel: %d %s", code, out)
			}
			// The workers have applied bank's cancel once a bank job of the name ends canceled.
			bankID := "bank-" + tc.camp
			post(t, campBankKey, smsJob(bankID, "+79019990001", tc.camp))
			waitState(t, campBankKey, bankID, canceled, "canceled")

			// Shop's campaign is not canceled, and its later jobs go out.
			for i := range 2 {
				post(t, campShopKey, smsJob(fmt.Sprintf("%s-later-%d", tc.camp, i), fmt.Sprintf("+7902000%04d", i), tc.camp))
			}
			for i := range 2 {
				waitState(t, campShopKey, fmt.Sprintf("%s-later-%d", tc.camp, i), sentOrDelivered, "sent despite bank's cancel")
			}
			code, v, out := campaignAs(t, h, campShopKey, tc.camp)
			if code != http.StatusOK || v.Canceled != nil || v.States[status.Canceled] != 0 {
				t.Fatalf("shop's campaign after bank's cancel: %d %s", code, out)
			}
			// Bank's view is bank's alone: its one canceled job, nothing of shop's sends.
			code, v, out = campaignAs(t, h, campBankKey, tc.camp)
			if code != http.StatusOK || v.Canceled == nil || v.Seen != 1 || v.States[status.Canceled] != 1 || v.Total != 0 || v.Tenant != "bank" {
				t.Fatalf("bank's view: %d %s", code, out)
			}
		})
	}
}

// TestCampaignCapPerTenant (finding 11): a tenant's campaigns are capped; the cancel that
// would create one more is refused with 409 naming HERALD_CAMPAIGNS_MAX_PER_TENANT, while the
// tenant's existing campaigns and other tenants' new ones are not.
func TestCampaignCapPerTenant(t *testing.T) {
	t.Parallel()
	const limit = 3
	h := campaignTenants(t, true, func(c *config.Config) { c.CampaignsMaxPerTenant = limit })
	for i := range limit {
		if code, out := cancelAs(t, h, campBankKey, fmt.Sprintf("flood-%d", i)); code != http.StatusOK {
			t.Fatalf("cancel %d of %d: %d %s", i+1, limit, code, out)
		}
	}
	cases := []struct {
		name, key, camp string
		want            int
	}{
		{"one campaign past the cap", campBankKey, "flood-new", http.StatusConflict},
		{"a campaign bank has", campBankKey, "flood-0", http.StatusOK},
		{"another tenant's new campaign", campShopKey, "flood-new", http.StatusOK},
		{"a bad name", campBankKey, "bad name!", http.StatusBadRequest},
	}
	for _, tc := range cases {
		code, out := cancelAs(t, h, tc.key, tc.camp)
		if code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, code, out, tc.want)
		}
		if tc.want == http.StatusConflict && !strings.Contains(out, "HERALD_CAMPAIGNS_MAX_PER_TENANT") {
			t.Errorf("%s: %s does not name the limit", tc.name, out)
		}
	}
	if code, _, out := campaignAs(t, h, campBankKey, "flood-new"); code != http.StatusNotFound {
		t.Fatalf("the refused campaign exists: %d %s", code, out)
	}
}
