package sim_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/internal/webhook"
)

// TestTemplateReview: a template POSTed to /<WABA>/message_templates is answered PENDING
// and listed so; after the review delay the simulator lists it APPROVED or REJECTED, as the
// lint predicts, and posts a message_template_status_update webhook signed with the app
// secret of a number of that WABA, which Herald's webhook parser reads.
func TestTemplateReview(t *testing.T) {
	t.Parallel()
	fine := `{"name":"fine","language":"ru","category":"UTILITY","components":[{"type":"BODY","text":"Ваш заказ {{1}} готов к выдаче.","example":{"body_text":[["123"]]}}]}`
	promo := `{"name":"promo","language":"ru","category":"UTILITY","components":[{"type":"BODY","text":"Скидка 50% на всё! Заказ {{1}} ждёт.","example":{"body_text":[["123"]]}}]}`
	tests := []struct {
		name, waba, token, secret, body string
		verdict, reason                 string
	}{
		{"approved in WABA A", wabaA, tokA, secA, fine, sim.ReviewApproved, "NONE"},
		{"rejected in WABA B, signed with B's secret", wabaB, tokB, secB, promo, sim.ReviewRejected, "INCORRECT_CATEGORY"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc := newRecorder(t)
			cfg := twoNumbers(rc.url)
			cfg.ReviewDelay = 100 * time.Millisecond
			_, srv := start(t, cfg)
			base := srv.URL + "/v21.0/" + tc.waba + "/message_templates"
			r := do(t, http.MethodPost, base, tc.token, tc.body)
			var created struct{ ID, Status, Category string }
			if err := json.Unmarshal(r.body, &created); r.status != http.StatusOK || err != nil || created.ID == "" || created.Status != sim.ReviewPending || created.Category != "UTILITY" {
				t.Fatalf("create: %d %s", r.status, r.body)
			}
			statusOf := func() string {
				var page struct {
					Data []struct{ ID, Name, Status string }
				}
				if err := json.Unmarshal(do(t, http.MethodGet, base, tc.token, "").body, &page); err != nil {
					t.Fatal(err)
				}
				for _, d := range page.Data {
					if d.ID == created.ID {
						return d.Status
					}
				}
				return "not listed"
			}
			if st := statusOf(); st != sim.ReviewPending && st != tc.verdict {
				t.Fatalf("listed %s right after the submission", st)
			}
			var got *webhook.TemplateStatus
			testutil.Eventually(t, 10*time.Second, func() bool {
				for _, req := range rc.all() {
					if req.sig != sim.Sign(tc.secret, req.body) {
						t.Fatalf("webhook not signed with the WABA's number's secret: %s", req.sig)
					}
					b, err := webhook.Parse(req.body)
					if err != nil {
						t.Fatalf("webhook does not parse: %v\n%s", err, req.body)
					}
					if len(b.TemplateStatus) == 1 {
						got = &b.TemplateStatus[0]
						return true
					}
				}
				return false
			}, "a template status webhook")
			if got.Event != tc.verdict || got.Reason != tc.reason || got.TemplateID != created.ID || got.WABAID != tc.waba || got.Language != "ru" {
				t.Errorf("webhook %+v, want %s (%s) of %s in WABA %s", *got, tc.verdict, tc.reason, created.ID, tc.waba)
			}
			if st := statusOf(); st != tc.verdict {
				t.Errorf("listed %s after the webhook, want %s", st, tc.verdict)
			}
		})
	}
}

// TestTemplateCreateRefused: what Meta refuses outright is a Graph error, not a review.
func TestTemplateCreateRefused(t *testing.T) {
	t.Parallel()
	_, srv := start(t, twoNumbers(""))
	tests := []struct {
		name, waba, token, body string
		status                  int
	}{
		{"bad token", wabaA, "nope", `{"name":"x","language":"ru","category":"UTILITY","components":[{}]}`, http.StatusUnauthorized},
		{"unknown WABA", "999", tokA, `{"name":"x","language":"ru","category":"UTILITY","components":[{}]}`, http.StatusBadRequest},
		{"no name", wabaA, tokA, `{"language":"ru","category":"UTILITY","components":[{}]}`, http.StatusBadRequest},
		{"no components", wabaA, tokA, `{"name":"x","language":"ru","category":"UTILITY"}`, http.StatusBadRequest},
		{"not JSON", wabaA, tokA, `nope`, http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := do(t, http.MethodPost, srv.URL+"/v21.0/"+tc.waba+"/message_templates", tc.token, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			decodeErr(t, r)
		})
	}
}
