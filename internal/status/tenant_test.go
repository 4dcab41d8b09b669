package status_test

import (
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/status"
)

// TestTenantsKeepApart: two tenants using the same job id, recipient and campaign name have
// two records, two claims and two sets of counters; a STOP to one tenant silences only that
// tenant, and the deployment-wide list silences both.
func TestTenantsKeepApart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	shop, bank := newJob("same-id", 9001), newJob("same-id", 9001)
	bank.Tenant = "bank"

	if adm := e.begin(t, shop, "shop-owner", time.Minute); adm.Verdict != status.Claimed {
		t.Fatalf("shop: verdict %s, want claimed", adm.Verdict)
	}
	// Shop's live claim must not make bank's job busy, and bank's claim is its own.
	if adm := e.begin(t, bank, "bank-owner", time.Minute); adm.Verdict != status.Claimed || adm.Record.Tenant != "bank" {
		t.Fatalf("bank: verdict %s tenant %q, want claimed for bank", adm.Verdict, adm.Record.Tenant)
	}
	if _, _, err := e.store.Attempt(t.Context(), shop.Ref(), "shop-owner", status.Outcome{Mode: status.ModeSent,
		Channel: "white", Attempts: 1, ProviderMessageID: "wamid.shop"}); err != nil {
		t.Fatal(err)
	}
	// Shop's send left bank's job untouched.
	got, err := e.store.Get(t.Context(), bank.Ref())
	if err != nil || got.State != status.Queued || got.Tenant != "bank" {
		t.Fatalf("bank's record = %+v, %v; want its own, queued", got, err)
	}
	if ref, err := e.store.RefForMessage(t.Context(), "wamid.shop"); err != nil || ref != "shop/same-id" {
		t.Fatalf("RefForMessage = %q, %v; want shop/same-id", ref, err)
	}
	for _, tenant := range []string{"shop", "bank"} {
		c, err := e.store.Campaign(t.Context(), tenant, "c1")
		if err != nil || c.States[status.Queued]+c.States[status.Sent] != 1 {
			t.Fatalf("%s's campaign c1 = %+v, %v; want its one job", tenant, c, err)
		}
	}

	// Consent is per tenant: bank's STOP list does not suppress shop's next job.
	if err := e.rdb.SAdd(t.Context(), status.SuppressedKey("bank"), shop.To).Err(); err != nil {
		t.Fatal(err)
	}
	shop2, bank2 := newJob("second", 9001), newJob("second", 9001)
	bank2.Tenant = "bank"
	if adm := e.begin(t, shop2, "o1", time.Minute); adm.Verdict != status.Claimed {
		t.Fatalf("shop after bank's STOP: verdict %s, want claimed", adm.Verdict)
	}
	if adm := e.begin(t, bank2, "o2", time.Minute); adm.Verdict != status.SuppressedVerdict {
		t.Fatalf("bank after its STOP: verdict %s, want suppressed", adm.Verdict)
	}
	// The deployment-wide list (operators only) suppresses every tenant.
	if err := e.rdb.SAdd(t.Context(), status.KeySuppressed, shop.To).Err(); err != nil {
		t.Fatal(err)
	}
	if adm := e.begin(t, newJob("third", 9001), "o3", time.Minute); adm.Verdict != status.SuppressedVerdict {
		t.Fatalf("shop after a deployment-wide STOP: verdict %s, want suppressed", adm.Verdict)
	}
}

// TestMarketingStop: a customer who stopped a tenant's marketing messages gets no marketing
// template from it, still gets its other messages, and still gets other tenants' marketing;
// the deployment-wide marketing list counts for every tenant.
func TestMarketingStop(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = 9100
	to := newJob("x", n).To
	if err := e.rdb.SAdd(t.Context(), status.MarketingKey("shop"), to).Err(); err != nil {
		t.Fatal(err)
	}
	mk := func(id, tenant string, marketing bool) *job.Job {
		j := newJob(id, n)
		j.Tenant, j.Marketing = tenant, marketing
		return j
	}
	for _, c := range []struct {
		name string
		j    *job.Job
		want status.Verdict
	}{
		{"shop's promotion", mk("m1", "shop", true), status.SuppressedVerdict},
		{"shop's order update", mk("m2", "shop", false), status.Claimed},
		{"bank's promotion", mk("m3", "bank", true), status.Claimed},
	} {
		adm := e.begin(t, c.j, "o-"+c.j.ID, time.Minute)
		if adm.Verdict != c.want {
			t.Errorf("%s: verdict %s, want %s", c.name, adm.Verdict, c.want)
		}
		if c.want == status.SuppressedVerdict && adm.Record.Reason != "recipient stopped marketing messages" {
			t.Errorf("%s: reason %q", c.name, adm.Record.Reason)
		}
	}
	if err := e.rdb.SAdd(t.Context(), status.MarketingKey(""), to).Err(); err != nil {
		t.Fatal(err)
	}
	if adm := e.begin(t, mk("m4", "bank", true), "o-m4", time.Minute); adm.Verdict != status.SuppressedVerdict {
		t.Errorf("bank's promotion after a deployment-wide marketing stop: verdict %s, want suppressed", adm.Verdict)
	}
}
