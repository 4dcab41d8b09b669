package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/harness"
	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/status"
)

// Two tenants and an operator on one deployment, as in the security review (issue 13).
const (
	shopKey = "shop-key-000001"
	bankKey = "bank-key-000001"
	opsKey  = "ops-key-0000001"
)

func twoTenants(t *testing.T) *harness.Herald {
	t.Helper()
	return harness.Start(t, harness.Options{NoWorker: true, Config: func(c *config.Config) {
		c.APIKeys = harness.Tenant + ":" + harness.APIKey + ",shop:" + shopKey + ",bank:" + bankKey
		c.AdminKeys = "ops:" + opsKey
	}})
}

type acceptedJSON struct {
	ID        string `json:"id"`
	State     string `json:"state"`
	Duplicate bool   `json:"duplicate"`
	Error     string `json:"error"`
}

func postAs(t *testing.T, h *harness.Herald, key, path string, body any) (int, []byte) {
	t.Helper()
	return call(t, http.MethodPost, h.APIURL+path, key, mustJSON(t, body), nil)
}

// TestTenantsCannotTouchEachOthersJobs: findings 1 and 7. One tenant's id never reads,
// blocks or changes another tenant's job, through the single route or the batch one.
func TestTenantsCannotTouchEachOthersJobs(t *testing.T) {
	t.Parallel()
	h := twoTenants(t)
	at := time.Now().Add(3 * time.Minute).UTC().Format(time.RFC3339)

	// Finding 1: shop schedules shop-appt-42; bank's batch with the same id, another
	// recipient and text, must leave shop's job as it is.
	shopJob := orderJob("shop-appt-42", "+79001237001")
	shopJob["send_at"] = at
	if code, out := postAs(t, h, shopKey, "/v1/notifications", shopJob); code != http.StatusAccepted {
		t.Fatalf("shop's post: %d %s", code, out)
	}
	bankJob := map[string]any{"id": "shop-appt-42", "to": "+79001237999", "text": "bank's text"}
	code, out := postAs(t, h, bankKey, "/v1/notifications/batch", map[string]any{"notifications": []any{bankJob}})
	if code != http.StatusOK {
		t.Fatalf("bank's batch: %d %s", code, out)
	}
	res := decode[struct{ Results []acceptedJSON }](t, out).Results
	if len(res) != 1 || res[0].Error != "" || res[0].Duplicate {
		t.Fatalf("bank's batch item = %+v, want accepted as bank's own new job", res)
	}
	shopRec, err := h.Store.Get(t.Context(), job.Ref("shop", "shop-appt-42"))
	if err != nil || shopRec.To != "+79001237001" || shopRec.State != status.Scheduled || shopRec.Tenant != "shop" {
		t.Fatalf("shop's record after bank's batch: %+v, %v", shopRec, err)
	}
	bankRec, err := h.Store.Get(t.Context(), job.Ref("bank", "shop-appt-42"))
	if err != nil || bankRec.To != "+79001237999" || bankRec.Tenant != "bank" {
		t.Fatalf("bank's record: %+v, %v", bankRec, err)
	}

	// The batch route looks for the tenant's own record: shop's repeat is a duplicate, and
	// so is an id repeated inside one batch.
	code, out = postAs(t, h, shopKey, "/v1/notifications/batch", map[string]any{"notifications": []any{shopJob, orderJob("shop-new-1", "+79001237002"), orderJob("shop-new-1", "+79001237003")}})
	if code != http.StatusOK {
		t.Fatalf("shop's batch: %d %s", code, out)
	}
	res = decode[struct{ Results []acceptedJSON }](t, out).Results
	if len(res) != 3 || !res[0].Duplicate || res[0].State != status.Scheduled || res[1].Error != "" || res[1].Duplicate || !res[2].Duplicate {
		t.Fatalf("shop's batch = %+v, want the repeat a duplicate, the new one queued, the in-batch repeat a duplicate", res)
	}

	// Past JetStream's duplicate window only the record remembers an id: a batch must look
	// for it, as a single post does, or the job goes out a second time.
	old := status.NewRecord(&job.Job{ID: "shop-old-1", Tenant: "shop", To: "+79001237004", Text: "sent last week"}, status.Delivered, []string{"white"}, time.Now())
	if _, _, err := h.Store.Create(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	code, out = postAs(t, h, shopKey, "/v1/notifications/batch", map[string]any{"notifications": []any{orderJob("shop-old-1", "+79001237004")}})
	if res := decode[struct{ Results []acceptedJSON }](t, out).Results; code != http.StatusOK || len(res) != 1 || !res[0].Duplicate || res[0].State != status.Delivered {
		t.Fatalf("batch repeat of an id past the duplicate window: %d %s, want a duplicate, delivered", code, out)
	}

	// Finding 7: bank posting order-777-ready first does not make shop's post a duplicate.
	if code, out := postAs(t, h, bankKey, "/v1/notifications", orderJob("order-777-ready", "+79001237010")); code != http.StatusAccepted {
		t.Fatalf("bank's post: %d %s", code, out)
	}
	code, out = postAs(t, h, shopKey, "/v1/notifications", orderJob("order-777-ready", "+79001237011"))
	if a := decode[acceptedJSON](t, out); code != http.StatusAccepted || a.Duplicate {
		t.Fatalf("shop's post after bank's: %d %s, want a new job", code, out)
	}

	// Reads are scoped: each tenant sees its own record under the shared id; a tenant key
	// cannot name another tenant; an operator can.
	for _, c := range []struct {
		name, key, query string
		code             int
		to               string
	}{
		{"shop reads its own", shopKey, "", http.StatusOK, "+79001237011"},
		{"bank reads its own", bankKey, "", http.StatusOK, "+79001237010"},
		{"bank names shop", bankKey, "?tenant=shop", http.StatusForbidden, ""},
		{"operator for shop", opsKey, "?tenant=shop", http.StatusOK, "+79001237011"},
		{"operator for bank", opsKey, "?tenant=bank", http.StatusOK, "+79001237010"},
		{"the default tenant has none", harness.APIKey, "", http.StatusNotFound, ""},
	} {
		code, out := call(t, http.MethodGet, h.APIURL+"/v1/notifications/order-777-ready"+c.query, c.key, nil, nil)
		if code != c.code {
			t.Errorf("%s: %d %s, want %d", c.name, code, out, c.code)
			continue
		}
		if c.to != "" {
			if rec := decode[status.Record](t, out); rec.To != c.to {
				t.Errorf("%s: record of %s, want %s", c.name, rec.To, c.to)
			}
		}
	}
}

// TestTenantsCannotTouchEachOthersConsent: finding 6. A tenant adds and lifts suppressions
// on its own list only; the deployment-wide list is an operator's.
func TestTenantsCannotTouchEachOthersConsent(t *testing.T) {
	t.Parallel()
	h := twoTenants(t)
	const p = "+79001238001"
	get := func(key string) map[string]any {
		t.Helper()
		code, out := call(t, http.MethodGet, h.APIURL+"/v1/suppressions/"+p, key, nil, nil)
		if code != http.StatusOK {
			t.Fatalf("GET suppression: %d %s", code, out)
		}
		return decode[map[string]any](t, out)
	}
	// The customer's STOP to shop, as shop's operator records it.
	if code, out := call(t, http.MethodPost, h.APIURL+"/v1/suppressions/"+p, shopKey, nil, nil); code != http.StatusOK {
		t.Fatalf("shop suppresses: %d %s", code, out)
	}
	// Bank lifting "its" suppression of that number cannot lift shop's.
	if code, out := call(t, http.MethodDelete, h.APIURL+"/v1/suppressions/"+p, bankKey, nil, nil); code != http.StatusOK {
		t.Fatalf("bank lifts: %d %s", code, out)
	}
	if s := get(shopKey); s["suppressed"] != true || s["by"] != "tenant:shop" {
		t.Fatalf("shop's view after bank's DELETE: %v, want still suppressed, by shop", s)
	}
	if s := get(bankKey); s["suppressed"] != false {
		t.Fatalf("bank's view: %v, want not suppressed for bank", s)
	}
	// Only an operator changes the deployment-wide list.
	if code, out := call(t, http.MethodPost, h.APIURL+"/v1/suppressions/"+p+"?scope=deployment", bankKey, nil, nil); code != http.StatusForbidden {
		t.Fatalf("bank on the deployment-wide list: %d %s, want 403", code, out)
	}
	if code, out := call(t, http.MethodPost, h.APIURL+"/v1/suppressions/"+p+"?scope=deployment", opsKey, nil, nil); code != http.StatusOK {
		t.Fatalf("operator on the deployment-wide list: %d %s", code, out)
	}
	if s := get(bankKey); s["suppressed"] != true {
		t.Fatalf("bank's view after the operator's deployment-wide STOP: %v, want suppressed", s)
	}

	// And the claim agrees: bank's job to the number ends suppressed, as would shop's.
	j := &job.Job{ID: "consent-job", Tenant: "bank", To: p, Text: "hi"}
	adm, err := h.Store.Begin(t.Context(), j, "w1", time.Minute, []string{"white"})
	if err != nil || adm.Verdict != status.SuppressedVerdict {
		t.Fatalf("bank's job: %+v, %v; want suppressed", adm, err)
	}
}
