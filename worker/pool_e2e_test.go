package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/harness"
	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/internal/webhook"
	"github.com/herald-notify/herald/producer"
)

// The pool fleet: shop sends from three numbers of one app at 20/s each; bank from one
// number of another app.
const (
	poolMPS                    = 20
	poolSecretShop, poolSecret = "pool-shop-app-secret", "pool-bank-app-secret"
	poolBankNum                = "700200001"
)

var poolShopNums = []string{"700100001", "700100002", "700100003"}

func poolFleet() string {
	y := "senders:\n"
	for i, n := range poolShopNums {
		y += fmt.Sprintf("  - {id: shop-%d, kind: white, phone_number_id: %q, waba_id: \"800100\", display_phone_number: \"7495000000%d\", token: t, app_secret: %s, mps: %d}\n",
			i+1, n, i+1, poolSecretShop, poolMPS)
	}
	y += fmt.Sprintf("  - {id: bank-1, kind: white, phone_number_id: %q, waba_id: \"800200\", token: t, app_secret: %s, mps: %d}\n", poolBankNum, poolSecret, poolMPS)
	y += "tenants:\n  shop: {api_keys: [pool-shop-key-01], channels: [white], senders: [shop-1, shop-2, shop-3]}\n" +
		"  bank: {api_keys: [pool-bank-key-01], channels: [white], senders: [bank-1]}\n"
	return y
}

// TestSenderPool: a tenant with three numbers at 20/s sends 3,000 jobs through two workers.
// All three carry traffic, none goes over its cap in any second, and together they carry
// about three times one number's rate; a customer messaged again stays on their number; a
// quality webhook saying one number turned RED (FLAGGED) moves new jobs, its sticky customers
// included, to the other two within a second; and a webhook for bank's number signed with
// shop's app secret is refused.
func TestSenderPool(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "fleet.yaml")
	if err := os.WriteFile(path, []byte(poolFleet()), 0o600); err != nil {
		t.Fatal(err)
	}
	h := harness.Start(t, harness.Options{NoWorker: true,
		Sim: func(c *sim.Config) {
			c.Token, c.PhoneNumberIDs = "t", append(slices.Clone(poolShopNums), poolBankNum)
			c.AppSecrets = map[string]string{poolBankNum: poolSecret}
			c.DisplayPhoneNumbers = map[string]string{}
			for i, n := range poolShopNums {
				c.AppSecrets[n] = poolSecretShop
				c.DisplayPhoneNumbers[n] = fmt.Sprintf("7495000000%d", i+1)
			}
			c.MaxMessages = 0
		},
		Config: func(c *config.Config) { c.ConfigFile, c.PairInterval = path, 0 },
	})
	ctx := context.Background()
	// 3,000 jobs, as issue 14 asks: 50 s at the pool's 60/s.
	const n = 3000
	shopJob := func(id, to string, bulk bool) *producer.Job {
		j := pacingJob(id, to, bulk)
		j.Tenant = "shop"
		return j
	}
	jobs := make([]*producer.Job, n)
	for i := range jobs {
		jobs[i] = shopJob(fmt.Sprintf("pool-%04d", i), fmt.Sprintf("+7903%07d", i), true)
	}
	publishAll(t, h, jobs)
	h.StartWorker()
	h.StartWorker()

	sentFrom := func(prefix string) []sim.Message {
		var out []sim.Message
		for _, m := range acceptedWhite(h) {
			if len(m.JobID) >= len(prefix) && m.JobID[:len(prefix)] == prefix {
				out = append(out, m)
			}
		}
		return out
	}
	testutil.Eventually(t, 150*time.Second, func() bool { return len(sentFrom("pool-")) >= n },
		"all %d jobs reach the simulator (got %v)", n, lazy(func() string { return fmt.Sprint(len(sentFrom("pool-"))) }))
	sent := sentFrom("pool-")
	if len(sent) != n {
		t.Fatalf("%d accepted sends for %d jobs", len(sent), n)
	}

	// Every number carries traffic, none above its cap in any second.
	byNumber := map[string][]sim.Message{}
	numberOf := map[string]string{} // recipient → number
	for _, m := range sent {
		byNumber[m.PhoneNumberID] = append(byNumber[m.PhoneNumberID], m)
		numberOf[m.To] = m.PhoneNumberID
	}
	for _, num := range poolShopNums {
		ms := byNumber[num]
		perSecond, mostCal := map[int64]int{}, 0
		for _, m := range ms {
			perSecond[m.At.Unix()]++
			mostCal = max(mostCal, perSecond[m.At.Unix()])
		}
		most, _ := maxInWindow(ms, time.Second)
		t.Logf("number %s: %d sends, worst calendar second %d, worst sliding second %d (cap %d)", num, len(ms), mostCal, most, poolMPS)
		if len(ms) < n/6 {
			t.Errorf("number %s carried %d of %d sends: the pool does not spread", num, len(ms), n)
		}
		// As in TestFleetPacing: one more in a sliding window is the jitter of the path
		// from the slot to the provider, which the slot cannot see.
		if mostCal > poolMPS || most > poolMPS+1 {
			t.Errorf("number %s: %d in a calendar second, %d in a sliding second (cap %d)", num, mostCal, most, poolMPS)
		}
	}
	if len(byNumber) != len(poolShopNums) {
		t.Errorf("sends from %d numbers, want the pool's %d: %v", len(byNumber), len(poolShopNums), slices.Sorted(maps.Keys(byNumber)))
	}
	// The pool's rate over the steady part (the middle 80%): the limiter reserves 19.5/s of
	// each number's 20 (0.975 of the pool's 60/s). The figure is measured, and `make bench`
	// measures it on a larger pool; the test guards against a pool that does not add up:
	// more than two numbers' caps (with 5% to spare) can only come from all three sending at
	// once. The 0.95 of 60/s is a figure, not a timed assertion: 0.96-0.97 when this
	// test runs alone; under `make test` on 2 cores a worker that wakes more than 12.5 ms
	// after its slot gives the slot up rather than bunch sends, and 0.8 has been seen.
	lo, hi := n/10, n*9/10
	rate := float64(hi-lo) / sent[hi].At.Sub(sent[lo].At).Seconds()
	t.Logf("pool rate %.1f/s over the steady part = %.3f of the pool's %d/s", rate, rate/(3*poolMPS), 3*poolMPS)
	if floor := 2.1 * poolMPS; rate < floor {
		t.Errorf("pool rate %.1f/s is below %.0f/s, two numbers' caps: three numbers do not carry more than two", rate, floor)
	}

	// Sticky: customers messaged again stay on their number.
	again := make([]*producer.Job, 30)
	for i := range again {
		again[i] = shopJob(fmt.Sprintf("again-%02d", i), fmt.Sprintf("+7903%07d", i*97), false)
	}
	publishAll(t, h, again)
	testutil.Eventually(t, 30*time.Second, func() bool { return len(sentFrom("again-")) >= len(again) }, "repeat jobs sent")
	for _, m := range sentFrom("again-") {
		if m.PhoneNumberID != numberOf[m.To] {
			t.Errorf("customer …%s first messaged from %s, again from %s", m.To[len(m.To)-4:], numberOf[m.To], m.PhoneNumberID)
		}
	}

	// RED: Meta flags one number; its new jobs and its sticky customers go to the other two.
	red := poolShopNums[0]
	events := h.Sim.Stats().Webhooks.Events
	if err := h.Sim.QualityUpdate(sim.QualityUpdate{PhoneNumberID: red, Event: "FLAGGED"}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return h.Sim.Stats().Webhooks.Events > events }, "quality webhook delivered")
	flagged := time.Now()
	var moved []*producer.Job
	for i := range 300 { // customers of every number, new and sticky
		to := fmt.Sprintf("+7903%07d", i)
		moved = append(moved, shopJob(fmt.Sprintf("moved-%03d", i), to, false))
	}
	publishAll(t, h, moved)
	testutil.Eventually(t, 60*time.Second, func() bool { return len(sentFrom("moved-")) >= len(moved) }, "jobs after the quality webhook sent")
	stuckToRed := 0
	for _, m := range sentFrom("moved-") {
		if numberOf[m.To] == red {
			stuckToRed++
		}
		if m.PhoneNumberID == red && m.At.Sub(flagged) > time.Second {
			t.Errorf("job %s sent from the RED number %s %s after the webhook", m.JobID, red, m.At.Sub(flagged).Round(time.Millisecond))
		}
	}
	if stuckToRed == 0 {
		t.Fatal("no customer of the RED number among the moved jobs: the case proves nothing")
	}

	// It comes back when Meta unflags it: new customers reach it again.
	events = h.Sim.Stats().Webhooks.Events
	if err := h.Sim.QualityUpdate(sim.QualityUpdate{PhoneNumberID: red, Event: "UNFLAGGED"}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return h.Sim.Stats().Webhooks.Events > events }, "unflagged webhook delivered")
	back := make([]*producer.Job, 30)
	for i := range back {
		back[i] = shopJob(fmt.Sprintf("back-%02d", i), fmt.Sprintf("+7905%07d", i), false)
	}
	publishAll(t, h, back)
	testutil.Eventually(t, 30*time.Second, func() bool { return len(sentFrom("back-")) >= len(back) },
		"jobs after the recovery sent: %v", lazy(func() string {
			var out []string
			for _, j := range back {
				if r := h.Store; r != nil {
					rec, _ := r.Get(ctx, "shop/"+j.ID)
					if rec != nil {
						out = append(out, rec.State+" "+rec.Reason)
					}
				}
			}
			return fmt.Sprint(out)
		}))
	fromRed := 0
	for _, m := range sentFrom("back-") {
		if m.PhoneNumberID == red {
			fromRed++
		}
	}
	if fromRed == 0 {
		t.Errorf("none of %d new customers went to the unflagged number", len(back))
	}

	// Webhooks by number: bank's number signed with shop's secret is refused.
	body, _ := json.Marshal(map[string]any{"object": "whatsapp_business_account", "entry": []any{map[string]any{
		"id": "800200", "changes": []any{map[string]any{"field": "messages", "value": map[string]any{
			"messaging_product": "whatsapp",
			"metadata":          map[string]string{"display_phone_number": "74950000099", "phone_number_id": poolBankNum},
			"statuses":          []any{map[string]any{"id": "wamid.x", "status": "delivered", "timestamp": "1", "recipient_id": "79030000001"}},
		}}}}}})
	for _, tt := range []struct {
		secret string
		want   int
	}{{poolSecretShop, http.StatusUnauthorized}, {poolSecret, http.StatusOK}} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.APIURL+"/webhooks/whatsapp", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Hub-Signature-256", webhook.Sign(tt.secret, body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("bank's webhook signed with the %s secret: %d, want %d", map[bool]string{true: "shop", false: "bank"}[tt.secret == poolSecretShop], resp.StatusCode, tt.want)
		}
	}
}
