package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/harness"
	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/internal/webhook"
	"github.com/herald-notify/herald/producer"
)

// call sends an authenticated API request and decodes the JSON answer.
func call(t *testing.T, method, url string, body []byte) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+harness.APIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// postWhatsApp posts a signed Cloud API webhook to the API.
func postWhatsApp(t *testing.T, h *harness.Herald, payload string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.APIURL+"/webhooks/whatsapp", strings.NewReader(payload))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hub-Signature-256", webhook.Sign(harness.AppSecret, []byte(payload)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// calls counts the provider calls the simulator received on channel, failed ones included.
func calls(h *harness.Herald, channel string) int {
	n := 0
	for _, m := range h.Sim.Messages() {
		if m.Channel == channel {
			n++
		}
	}
	return n
}

func inboundPayload(from, id, text string) string {
	return fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"WABA","changes":[{"field":"messages","value":{
"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550000000","phone_number_id":"100200300"},
"contacts":[{"profile":{"name":"Customer"},"wa_id":"%s"}],
"messages":[{"from":"%s","id":"%s","timestamp":"1732400000","type":"text","text":{"body":%q}}]}}]}]}`, from, from, id, text)
}

func publish(t *testing.T, h *harness.Herald, j *producer.Job) {
	t.Helper()
	if _, err := h.Producer.Publish(context.Background(), j); err != nil {
		t.Fatal(err)
	}
}

// done: the provider took the message. Under a loaded machine the simulator may give up on a
// status webhook, so tests about routing do not wait for delivered.
func done(r *status.Record) bool {
	return r.State == status.Sent || r.State == status.Delivered || r.State == status.Read
}

func waitState(t *testing.T, h *harness.Herald, id string, d time.Duration, ok func(*status.Record) bool, what string) *status.Record {
	t.Helper()
	testutil.Eventually(t, d, func() bool { r := h.Record(id); return r != nil && ok(r) }, "%s: %s", id, what)
	return h.Record(id)
}

// TestFailedStatusEndsInSMS: WhatsApp accepts the message, then reports it failed
// (131026, not on WhatsApp): the job goes out as SMS, once, and the history tells the story.
func TestFailedStatusEndsInSMS(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{})
	j := orderJob(501)
	h.Sim.AddRule(sim.Rule{To: "79000000501", Code: 131026, Async: true})
	publish(t, h, j)
	rec := waitState(t, h, j.ID, 30*time.Second, func(r *status.Record) bool {
		return r.Channel == "sms" && r.State == status.Delivered
	}, "delivered by SMS")
	if len(rec.History) != 2 || rec.History[0].Channel != "white" || rec.History[0].State != status.Failed ||
		rec.History[0].Code != "131026" || rec.History[1].Channel != "sms" {
		t.Fatalf("history: %+v", rec.History)
	}
	sent := h.SentPerJob()
	if sent["white:"+j.ID] != 1 || sent["sms:"+j.ID] != 1 {
		t.Fatalf("sends: white %d, sms %d; want 1 and 1", sent["white:"+j.ID], sent["sms:"+j.ID])
	}
	// The parked deadline was consumed: nothing will fire later.
	st, _ := h.JS.Stream(context.Background(), streams.JobsStream)
	if _, err := st.GetLastMsgForSubject(context.Background(), streams.DeadlineSubject(j.Ref())); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatalf("deadline schedule still parked after the fallback: %v", err)
	}
}

// TestDeliveryDeadline: a WhatsApp message never reported delivered goes out as SMS when
// HERALD_FALLBACK_AFTER passes; a delivered one cancels its deadline.
func TestDeliveryDeadline(t *testing.T) {
	t.Parallel()
	t.Run("fires", func(t *testing.T) {
		t.Parallel()
		h := harness.Start(t, harness.Options{
			Sim:    func(c *sim.Config) { c.Statuses = []string{"sent"} }, // never delivered
			Config: func(c *config.Config) { c.FallbackAfter = 2 * time.Second },
		})
		j := orderJob(502)
		publish(t, h, j)
		rec := waitState(t, h, j.ID, 30*time.Second, func(r *status.Record) bool {
			return r.Channel == "sms" && r.State == status.Delivered
		}, "SMS after the deadline")
		if len(rec.History) != 3 || rec.History[0].State != status.Sent || rec.History[1].Code != "deadline" || rec.History[2].Channel != "sms" {
			t.Fatalf("history: %+v", rec.History)
		}
		if sent := h.SentPerJob(); sent["white:"+j.ID] != 1 || sent["sms:"+j.ID] != 1 {
			t.Fatalf("sends: %v", sent)
		}
	})
	t.Run("cancelled by delivered", func(t *testing.T) {
		t.Parallel()
		h := harness.Start(t, harness.Options{Config: func(c *config.Config) { c.FallbackAfter = 5 * time.Second }})
		j := orderJob(503)
		publish(t, h, j)
		waitState(t, h, j.ID, 30*time.Second, func(r *status.Record) bool { return r.State == status.Delivered }, "delivered")
		st, _ := h.JS.Stream(context.Background(), streams.JobsStream)
		testutil.Eventually(t, 10*time.Second, func() bool {
			_, err := st.GetLastMsgForSubject(context.Background(), streams.DeadlineSubject(j.Ref()))
			return errors.Is(err, jetstream.ErrMsgNotFound)
		}, "the delivered webhook purges the deadline schedule")
		// A later job proves the worker is live; the delivered one never went out as SMS.
		k := orderJob(504)
		publish(t, h, k)
		waitState(t, h, k.ID, 30*time.Second, func(r *status.Record) bool { return r.State == status.Delivered }, "second job delivered")
		if n := h.SentPerJob()["sms:"+j.ID]; n != 0 {
			t.Fatalf("a delivered message also went out as SMS (%d)", n)
		}
	})
}

// TestStopSuppressesEveryChannel: an inbound STOP puts the number on the suppression list;
// a job to it is sent nowhere (state suppressed), transactional or bulk; START (or the
// operator's DELETE) lifts it.
func TestStopSuppressesEveryChannel(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{})
	if code := postWhatsApp(t, h, inboundPayload("79000000601", "wamid.in601", "СТОП")); code != http.StatusOK {
		t.Fatalf("inbound webhook: %d", code)
	}
	code, out := call(t, http.MethodGet, h.APIURL+"/v1/suppressions/+79000000601", nil)
	if code != 200 || out["suppressed"] != true {
		t.Fatalf("suppression after STOP: %d %v", code, out)
	}
	for _, prio := range []string{"transactional", "bulk"} {
		j := orderJob(601)
		j.ID += "-" + prio
		j.Priority = prio
		j.Channels = []string{"white", "grey", "sms"}
		publish(t, h, j)
		waitState(t, h, j.ID, 20*time.Second, func(r *status.Record) bool { return r.State == status.Suppressed }, "suppressed")
	}
	for _, m := range h.Sim.Messages() {
		if m.To == "79000000601" {
			t.Fatalf("a suppressed recipient got a message on %s", m.Channel)
		}
	}
	// The event is the truth: it is on herald.events.optout.
	st, _ := h.JS.Stream(context.Background(), streams.OptOutStream)
	if info, _ := st.Info(context.Background()); info.State.Msgs != 1 {
		t.Fatalf("opt-out events: %d, want 1", info.State.Msgs)
	}
	// The operator lifts it; the next job goes out.
	if code, out := call(t, http.MethodDelete, h.APIURL+"/v1/suppressions/+79000000601", nil); code != 200 || out["suppressed"] != false {
		t.Fatalf("DELETE suppression: %d %v", code, out)
	}
	j := orderJob(601)
	j.ID += "-after"
	publish(t, h, j)
	waitState(t, h, j.ID, 20*time.Second, func(r *status.Record) bool { return r.State == status.Delivered }, "delivered after START")
	// An operator can also suppress; a bad number is a named error.
	if code, _ := call(t, http.MethodPost, h.APIURL+"/v1/suppressions/+79000000602", nil); code != 200 {
		t.Fatalf("POST suppression: %d", code)
	}
	if code, out := call(t, http.MethodPost, h.APIURL+"/v1/suppressions/12", nil); code != 400 || !strings.Contains(fmt.Sprint(out["error"]), "phone") {
		t.Fatalf("bad phone: %d %v", code, out)
	}
}

// TestWindowOpensOnInbound: GET /v1/windows tells whether the 24-hour window is open; an
// inbound message opens it and a free-form text job then goes over WhatsApp.
func TestWindowOpensOnInbound(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{})
	code, out := call(t, http.MethodGet, h.APIURL+"/v1/windows/+79000000701", nil)
	if code != 200 || out["open"] != false {
		t.Fatalf("window before inbound: %d %v", code, out)
	}
	text := &producer.Job{ID: "text-701-closed", To: "+79000000701", Text: "Ваш курьер будет в 15:00"}
	publish(t, h, text)
	waitState(t, h, text.ID, 20*time.Second, func(r *status.Record) bool { return r.Channel == "sms" && r.State == status.Delivered }, "SMS while the window is closed")

	if code := postWhatsApp(t, h, inboundPayload("79000000701", "wamid.in701", "Когда привезут заказ?")); code != 200 {
		t.Fatalf("inbound: %d", code)
	}
	code, out = call(t, http.MethodGet, h.APIURL+"/v1/windows/+79000000701", nil)
	until, _ := time.Parse(time.RFC3339, fmt.Sprint(out["until"]))
	if code != 200 || out["open"] != true || time.Until(until) < 23*time.Hour {
		t.Fatalf("window after inbound: %d %v", code, out)
	}
	// The window is the conversation with this business number, not with another of the
	// company's numbers.
	code, out = call(t, http.MethodGet, h.APIURL+"/v1/windows/+79000000701?phone_number_id=555000111", nil)
	if code != 200 || out["open"] != false {
		t.Fatalf("another number's window after an inbound to ours: %d %v", code, out)
	}
	text2 := &producer.Job{ID: "text-701-open", To: "+79000000701", Text: "Курьер будет в 15:00"}
	publish(t, h, text2)
	waitState(t, h, text2.ID, 20*time.Second, func(r *status.Record) bool { return r.Channel == "white" && r.State == status.Delivered }, "WhatsApp inside the window")
}

// TestPausedTemplateFallsBack: Meta pauses a template (webhook): workers stop sending it on
// WhatsApp at once and fall back to SMS; approved again, it goes on WhatsApp.
func TestPausedTemplateFallsBack(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{})
	statusUpdate := func(event string) string {
		return fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"WABA","time":1732400000,"changes":[{"field":"message_template_status_update",
"value":{"event":%q,"message_template_id":1,"message_template_name":"order_ready","message_template_language":"ru","reason":"NONE"}}]}]}`, event)
	}
	if code := postWhatsApp(t, h, statusUpdate("PAUSED")); code != 200 {
		t.Fatalf("template webhook: %d", code)
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		code, out := call(t, http.MethodGet, h.APIURL+"/v1/templates/order_ready/ru", nil)
		return code == 200 && out["status"] == "PAUSED"
	}, "catalogue shows PAUSED")
	j := orderJob(801)
	publish(t, h, j)
	rec := waitState(t, h, j.ID, 20*time.Second, func(r *status.Record) bool { return r.Channel == "sms" && r.State == status.Delivered }, "SMS while paused")
	if rec.History[0].Channel != "white" || rec.History[0].Code != "template" {
		t.Fatalf("history: %+v", rec.History)
	}
	if n := h.SentPerJob()["white:"+j.ID]; n != 0 {
		t.Fatalf("a paused template was sent on WhatsApp")
	}
	if code := postWhatsApp(t, h, statusUpdate("APPROVED")); code != 200 {
		t.Fatalf("template webhook: %d", code)
	}
	// Workers see the catalogue change through the watch: a later job goes white.
	testutil.Eventually(t, 20*time.Second, func() bool {
		k := orderJob(802)
		k.ID = fmt.Sprintf("after-approval-%d", time.Now().UnixNano())
		publish(t, h, k)
		testutil.Eventually(t, 10*time.Second, func() bool { r := h.Record(k.ID); return r != nil && r.State == status.Delivered }, "delivered")
		return h.Record(k.ID).Channel == "white"
	}, "white again after APPROVED")
}

// TestQuietHoursHoldAndRelease: a bulk job at 08:59:57 Moscow time is held (state
// scheduled, reason quiet_hours) and released by a JetStream schedule at 09:00; a
// transactional one goes at once. The worker's clock is injected.
func TestQuietHoursHoldAndRelease(t *testing.T) {
	t.Parallel()
	msk := time.FixedZone("MSK", 3*3600)
	fake := time.Date(2026, 11, 25, 8, 59, 57, 0, msk)
	// The fake clock starts once Herald is up: a slow start must not carry it past 09:00
	// before the bulk job is even published (the test would then prove nothing).
	var start atomic.Int64
	start.Store(time.Now().UnixNano())
	var calls atomic.Int64
	now := func() time.Time { calls.Add(1); return fake.Add(time.Duration(time.Now().UnixNano() - start.Load())) }
	h := harness.Start(t, harness.Options{Now: now, Config: func(c *config.Config) { c.QuietHours = "21:00-09:00" }})
	start.Store(time.Now().UnixNano())
	bulk := orderJob(901)
	bulk.Priority = "bulk"
	trans := orderJob(902)
	publish(t, h, bulk)
	publish(t, h, trans)
	waitState(t, h, trans.ID, 20*time.Second, func(r *status.Record) bool { return r.State == status.Delivered }, "transactional delivered at once")
	rec := waitState(t, h, bulk.ID, 20*time.Second, func(r *status.Record) bool {
		return r.State == status.Scheduled || r.State == status.Sent || r.State == status.Delivered
	}, "bulk held")
	if rec.State == status.Scheduled && !strings.Contains(rec.Reason, "quiet_hours") {
		t.Fatalf("held without saying why: %q", rec.Reason)
	}
	rec = waitState(t, h, bulk.ID, 30*time.Second, func(r *status.Record) bool { return r.State == status.Delivered }, "bulk released at 09:00")
	if rec.Channel != "white" || len(rec.History) != 1 {
		t.Fatalf("released job: %+v", rec.History)
	}
	var sentAt time.Time
	for _, m := range h.Sim.Messages() {
		if m.JobID == bulk.ID {
			sentAt = m.At
		}
	}
	if local := fake.Add(sentAt.Sub(time.Unix(0, start.Load()))); local.Before(time.Date(2026, 11, 25, 9, 0, 0, 0, msk)) {
		t.Fatalf("bulk job reached the provider at %s Moscow time, inside quiet hours", local.Format("15:04:05"))
	}
	if n := h.SentPerJob()["white:"+bulk.ID]; n != 1 {
		t.Fatalf("bulk sent %d times", n)
	}
}

// TestGreyBreakerMovesJobsToSMS: the grey instance turns notAuthorized mid-run (its state
// webhook reaches the API, which tells the workers' breakers): later jobs go to SMS at once,
// without a failed grey send each.
func TestGreyBreakerMovesJobsToSMS(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{Config: func(c *config.Config) { c.Channels = []string{"grey", "sms"} }})
	first := orderJob(1001)
	publish(t, h, first)
	waitState(t, h, first.ID, 20*time.Second, func(r *status.Record) bool { return r.Channel == "grey" && done(r) }, "grey delivered")

	if err := h.Sim.SetGreyState("", sim.GreyNotAuthorized); err != nil {
		t.Fatal(err)
	}
	// The breaker opens when the state webhook arrives; jobs published after that never
	// reach the grey gateway.
	greyCalls := func() int { return calls(h, "grey") }
	testutil.Eventually(t, 40*time.Second, func() bool {
		probe := orderJob(1002)
		probe.ID = fmt.Sprintf("probe-%d", time.Now().UnixNano())
		publish(t, h, probe)
		r := waitState(t, h, probe.ID, 20*time.Second, func(r *status.Record) bool { return done(r) }, "probe delivered")
		return r.Channel == "sms" && len(r.History) == 2 && r.History[0].Code == "breaker_open"
	}, "breaker open")
	before := greyCalls()
	const n = 20
	for i := range n {
		j := orderJob(1100 + i)
		publish(t, h, j)
	}
	for i := range n {
		rec := waitState(t, h, orderJob(1100+i).ID, 20*time.Second, func(r *status.Record) bool {
			return r.Channel == "sms" && done(r)
		}, "SMS while grey is down")
		if rec.History[0].Code != "breaker_open" {
			t.Fatalf("history: %+v", rec.History)
		}
	}
	if after := greyCalls(); after != before {
		t.Fatalf("%d grey calls while the breaker was open", after-before)
	}
	// Healthy again: the breaker closes and grey carries jobs again.
	if err := h.Sim.SetGreyState("", sim.GreyAuthorized); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, func() bool {
		j := orderJob(1200)
		j.ID = fmt.Sprintf("healed-%d", time.Now().UnixNano())
		publish(t, h, j)
		r := waitState(t, h, j.ID, 20*time.Second, func(r *status.Record) bool { return done(r) }, "delivered")
		return r.Channel == "grey"
	}, "grey again after authorized")
}

// TestSenderErrorStopsChannel: an account-level error (131031, the business account locked)
// stops the white channel in that worker: the job and the next ones go to SMS without a
// WhatsApp call each.
func TestSenderErrorStopsChannel(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{})
	h.Sim.AddRule(sim.Rule{Code: 131031})
	first := orderJob(1301)
	publish(t, h, first)
	rec := waitState(t, h, first.ID, 20*time.Second, func(r *status.Record) bool { return r.Channel == "sms" && r.State == status.Delivered }, "SMS")
	if rec.History[0].Code != "131031" {
		t.Fatalf("history: %+v", rec.History)
	}
	whiteCalls := func() int { return calls(h, "white") }
	before := whiteCalls()
	for i := range 10 {
		j := orderJob(1310 + i)
		publish(t, h, j)
		r := waitState(t, h, j.ID, 20*time.Second, func(r *status.Record) bool { return r.Channel == "sms" && r.State == status.Delivered }, "SMS")
		if r.History[0].Code != "sender_stopped" {
			t.Fatalf("job %d history: %+v", i, r.History)
		}
	}
	if after := whiteCalls(); after != before {
		t.Fatalf("%d WhatsApp calls while the sender was stopped", after-before)
	}
}

// TestSenderStopReachesTheFleet: one worker's account-level error stops the channel in every
// worker: with two workers sharing the jobs, no WhatsApp call follows the first refusal.
func TestSenderStopReachesTheFleet(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{NoWorker: true})
	h.StartWorker()
	h.StartWorker()
	h.Sim.AddRule(sim.Rule{Code: 131031})
	whiteCalls := func() int { return calls(h, "white") }
	first := orderJob(1401)
	publish(t, h, first)
	waitState(t, h, first.ID, 20*time.Second, func(r *status.Record) bool { return r.Channel == "sms" && r.State == status.Delivered }, "SMS")
	if n := whiteCalls(); n != 1 {
		t.Fatalf("%d WhatsApp calls for the first job", n)
	}
	jobs := make([]string, 0, 20)
	for i := range 20 {
		j := orderJob(1410 + i)
		publish(t, h, j)
		jobs = append(jobs, j.ID)
	}
	for _, id := range jobs {
		r := waitState(t, h, id, 20*time.Second, func(r *status.Record) bool { return r.Channel == "sms" && r.State == status.Delivered }, "SMS")
		if r.History[0].Code != "sender_stopped" {
			t.Fatalf("job %s history: %+v", id, r.History)
		}
	}
	if n := whiteCalls(); n != 1 {
		t.Fatalf("%d WhatsApp calls in all: a worker kept calling the stopped sender", n)
	}
}

// TestUnknownOutcomeIsNotLost: a worker dies during the WhatsApp call (here: a claim taken by
// a "dead" owner that never records an outcome). The next delivery does not resend on
// WhatsApp; it parks the delivery deadline. If the provider never reports the message (it
// never left), the job goes out as SMS at the deadline; if the provider reports it delivered
// (by job id: the worker never learnt the message id), the record adopts the report and the
// deadline is cancelled.
func TestUnknownOutcomeIsNotLost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		reported bool
	}{{"never reported: SMS at the deadline", false}, {"reported delivered: no SMS", true}}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Only the report may settle the reported case: its deadline must not race the
			// test's own webhook.
			fallback := 2 * time.Second
			if tt.reported {
				fallback = time.Minute
			}
			h := harness.Start(t, harness.Options{NoWorker: true, Config: func(c *config.Config) { c.FallbackAfter = fallback }})
			ctx := context.Background()
			pj := orderJob(1501 + i)
			j := decoded(t, pj)
			if adm, err := h.Store.Begin(ctx, j, "dead-worker", 300*time.Millisecond, []string{"white", "sms"}); err != nil || adm.Verdict != status.Claimed {
				t.Fatalf("claim by the dead worker: %+v %v", adm, err)
			}
			publish(t, h, pj)
			h.StartWorker()
			rec := waitState(t, h, pj.ID, 20*time.Second, func(r *status.Record) bool {
				return len(r.History) > 0 && r.History[0].State == "unknown"
			}, "the attempt in doubt recorded as unknown")
			if rec.State != status.Sent {
				t.Fatalf("record after the verdict: %+v", rec)
			}
			if !tt.reported {
				rec = waitState(t, h, pj.ID, 30*time.Second, func(r *status.Record) bool {
					return r.Channel == "sms" && r.State == status.Delivered
				}, "SMS after the deadline")
				if sent := h.SentPerJob(); sent["white:"+pj.ID] != 0 || sent["sms:"+pj.ID] != 1 {
					t.Fatalf("sends: %v", sent)
				}
				if n := len(rec.History); rec.History[0].State != "unknown" || rec.History[n-1].Channel != "sms" || rec.History[n-2].Code != "deadline" {
					t.Fatalf("history: %+v", rec.History)
				}
				return
			}
			body := `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{` +
				`"messaging_product":"whatsapp","metadata":{"display_phone_number":"1","phone_number_id":"` + harness.PhoneNumberID + `"},` +
				`"statuses":[{"id":"wamid.in-doubt-` + pj.ID + `","status":"delivered","timestamp":"1700000000","recipient_id":"` +
				strings.TrimPrefix(pj.To, "+") + `","biz_opaque_callback_data":"` + pj.ID + `"}]}}]}]}`
			if code := postWhatsApp(t, h, body); code != http.StatusOK {
				t.Fatalf("webhook: %d", code)
			}
			rec = waitState(t, h, pj.ID, 10*time.Second, func(r *status.Record) bool { return r.State == status.Delivered }, "delivered")
			if a := rec.History[0]; a.ProviderMessageID != "wamid.in-doubt-"+pj.ID || a.State != status.Delivered {
				t.Fatalf("attempt in doubt after the report: %+v", a)
			}
			st, err := h.JS.Stream(ctx, streams.JobsStream)
			if err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, 10*time.Second, func() bool {
				_, err := st.GetLastMsgForSubject(ctx, streams.DeadlineSubject(pj.Ref()))
				return errors.Is(err, jetstream.ErrMsgNotFound)
			}, "the report cancels the deadline")
			if sent := h.SentPerJob(); sent["white:"+pj.ID] != 0 || sent["sms:"+pj.ID] != 0 {
				t.Fatalf("sends: %v", sent)
			}
		})
	}
}

// data is pj's JSON.
func data(t *testing.T, pj *producer.Job) []byte {
	t.Helper()
	b, err := json.Marshal(pj)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decoded is pj as a worker reads it, for writing its record the way a (dead) worker did.
func decoded(t *testing.T, pj *producer.Job) *job.Job {
	t.Helper()
	j, err := job.Decode(data(t, pj), job.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// TestSettledButPublishLost: a worker settled a job in Redis and died (or its publish failed)
// before what it publishes was stored, its message not acknowledged. The redelivery finds
// the job settled and does nothing twice at the provider, but stores what was lost before it
// acknowledges: a send gets its status event and delivery deadline (so if WhatsApp never
// reports it delivered, the SMS still goes out), a failed job its event and its DLQ letter.
// A first delivery of a duplicate publish republishes nothing: the original's redelivery does.
func TestSettledButPublishLost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		outcome   status.Outcome
		redeliver bool
		event     string // the state whose event must be stored again ("" none)
		replay    bool   // the job comes as a replay from the DLQ
	}{
		{"sent: event and deadline again", status.Outcome{Mode: status.ModeSent, Channel: "white", Attempts: 1, ProviderMessageID: "wamid.lost"}, true, status.Sent, false},
		{"replayed and sent: event and deadline again", status.Outcome{Mode: status.ModeSent, Channel: "white", Attempts: 1, ProviderMessageID: "wamid.replay"}, true, status.Sent, true},
		{"failed: event and letter again", status.Outcome{Mode: status.ModeFailed, Channel: "sms", ChannelIdx: 1, Attempts: 1,
			Code: "503", Reason: "every channel failed, last: gateway down", DeadLetter: "exhausted"}, true, status.Failed, false},
		// Failed by a provider report: never dead-lettered, so no letter now either.
		{"failed by a report: nothing again", status.Outcome{Mode: status.ModeFailed, Channel: "sms", ChannelIdx: 1, Attempts: 1,
			Code: "131026", Reason: "undeliverable"}, true, "", false},
		{"duplicate publish: nothing again", status.Outcome{Mode: status.ModeSent, Channel: "white", Attempts: 1, ProviderMessageID: "wamid.dup"}, false, "", false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := harness.Start(t, harness.Options{NoWorker: true, Config: func(c *config.Config) { c.FallbackAfter = 2 * time.Second }})
			ctx := context.Background()
			pj := orderJob(1601 + i)
			j := decoded(t, pj)
			// What the dead worker left: the outcome recorded, nothing published.
			if adm, err := h.Store.Begin(ctx, j, "dead-worker", time.Minute, []string{"white", "sms"}); err != nil || adm.Verdict != status.Claimed {
				t.Fatalf("claim by the dead worker: %+v %v", adm, err)
			}
			if _, _, err := h.Store.Attempt(ctx, pj.Ref(), "dead-worker", tt.outcome); err != nil {
				t.Fatal(err)
			}
			events, err := h.NC.SubscribeSync(streams.SubjectStatusPrefix + ">")
			if err != nil {
				t.Fatal(err)
			}
			defer events.Unsubscribe()
			if tt.replay {
				// As `herald dlq replay` publishes it.
				m := &nats.Msg{Subject: streams.SubjectFor(pj.Priority), Data: data(t, pj), Header: nats.Header{streams.HeaderReplay: {"1"}}}
				if _, err := h.JS.PublishMsg(ctx, m); err != nil {
					t.Fatal(err)
				}
			} else {
				publish(t, h, pj)
			}
			cons, err := h.JS.Consumer(ctx, streams.JobsStream, streams.ConsumerTransactional)
			if err != nil {
				t.Fatal(err)
			}
			if tt.redeliver {
				// The dead worker's delivery: taken and never acknowledged.
				batch, err := cons.Fetch(1, jetstream.FetchMaxWait(10*time.Second))
				if err != nil {
					t.Fatal(err)
				}
				for m := range batch.Messages() {
					_ = m.Nak()
				}
			}
			h.StartWorker()
			testutil.Eventually(t, 20*time.Second, func() bool {
				ci, err := cons.Info(ctx)
				return err == nil && ci.NumAckPending == 0 && ci.NumPending == 0 && ci.AckFloor.Stream > 0
			}, "the delivery acknowledged")
			st, err := h.JS.Stream(ctx, streams.JobsStream)
			if err != nil {
				t.Fatal(err)
			}
			_, derr := st.GetLastMsgForSubject(ctx, streams.DeadlineSubject(pj.Ref()))
			if tt.event == "" {
				if !errors.Is(derr, jetstream.ErrMsgNotFound) {
					t.Fatalf("a deadline was parked (err %v)", derr)
				}
				if m, err := events.NextMsg(100 * time.Millisecond); err == nil {
					t.Fatalf("published %s: %s", m.Subject, m.Data)
				}
				dlq, err := h.JS.Stream(ctx, streams.DLQStream)
				if err != nil {
					t.Fatal(err)
				}
				info, err := dlq.Info(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if info.State.Msgs != 0 {
					t.Fatalf("DLQ holds %d letters, want none", info.State.Msgs)
				}
				return
			}
			msg, err := events.NextMsg(10 * time.Second)
			if err != nil {
				t.Fatalf("no event again: %v", err)
			}
			if msg.Subject != streams.StatusSubject(tt.event) || !strings.Contains(string(msg.Data), `"id":"`+pj.ID+`"`) {
				t.Fatalf("event %s %s, want %s for job %s", msg.Subject, msg.Data, tt.event, pj.ID)
			}
			switch tt.event {
			case status.Sent:
				if derr != nil {
					t.Fatalf("deadline not parked again: %v", derr)
				}
				rec := waitState(t, h, pj.ID, 30*time.Second, func(r *status.Record) bool {
					return r.Channel == "sms" && r.State == status.Delivered
				}, "SMS after the deadline parked again")
				if sent := h.SentPerJob(); sent["white:"+pj.ID] != 0 || sent["sms:"+pj.ID] != 1 {
					t.Fatalf("sends: %v (the recorded WhatsApp send must not be repeated)", sent)
				}
				if n := len(rec.History); rec.History[0].State != status.Sent || rec.History[n-2].Code != "deadline" {
					t.Fatalf("history: %+v", rec.History)
				}
			case status.Failed:
				dlq, err := h.JS.Stream(ctx, streams.DLQStream)
				if err != nil {
					t.Fatal(err)
				}
				m, err := dlq.GetLastMsgForSubject(ctx, streams.DLQSubject("exhausted"))
				if err != nil || m.Header.Get(streams.HeaderJobID) != pj.ID {
					t.Fatalf("DLQ letter: %+v %v", m, err)
				}
				if sent := h.SentPerJob(); len(sent) != 0 {
					t.Fatalf("sends: %v", sent)
				}
			}
		})
	}
}
