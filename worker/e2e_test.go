package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/harness"
	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/producer"
)

func orderJob(i int) *producer.Job {
	return &producer.Job{
		ID:       fmt.Sprintf("order-%06d-ready", i),
		To:       fmt.Sprintf("+7900%07d", i),
		Template: "order_ready",
		Params:   map[string]string{"order": fmt.Sprint(100000 + i), "address": "ул. Текстильщиков, д. 20", "until": "21.02.2027"},
		Buttons:  map[string]string{"0": fmt.Sprint(100000 + i)},
	}
}

// bodyParams extracts the body parameters (name → text) of a recorded Cloud API template send.
func bodyParams(t *testing.T, m sim.Message) map[string]string {
	t.Helper()
	var req struct {
		Template struct {
			Components []struct {
				Type       string `json:"type"`
				Parameters []struct {
					Name string `json:"parameter_name"`
					Text string `json:"text"`
				} `json:"parameters"`
			} `json:"components"`
		} `json:"template"`
	}
	if err := json.Unmarshal(m.Body, &req); err != nil {
		t.Fatalf("recorded body: %v", err)
	}
	out := map[string]string{}
	for _, c := range req.Template.Components {
		if c.Type == "body" {
			for _, p := range c.Parameters {
				out[p.Name] = p.Text
			}
		}
	}
	return out
}

// TestEndToEnd publishes 1,000 jobs through the producer: each reaches the simulator exactly
// once with its own parameters, and every record ends delivered through the signed status
// webhooks.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{})
	const n = 1000
	jobs := make([]*producer.Job, n)
	for i := range jobs {
		jobs[i] = orderJob(i)
	}
	ctx := context.Background()
	res, err := h.Producer.PublishBatch(ctx, jobs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil || r.Duplicate {
			t.Fatalf("publish %s: err=%v duplicate=%v", r.ID, r.Err, r.Duplicate)
		}
	}
	testutil.Eventually(t, 60*time.Second, func() bool { return h.Sim.Count() >= n }, "all %d jobs reach the simulator (got %d)", n, h.Sim.Count())
	byJob := map[string]sim.Message{}
	for _, m := range h.Sim.Messages() {
		if _, dup := byJob[m.JobID]; dup {
			t.Fatalf("job %s sent twice", m.JobID)
		}
		byJob[m.JobID] = m
	}
	for i, j := range jobs {
		m, ok := byJob[j.ID]
		if !ok {
			t.Fatalf("job %s never sent", j.ID)
		}
		if m.Channel != "white" || m.Template != "order_ready" || m.Language != "ru" || m.To != strings.TrimPrefix(j.To, "+") {
			t.Fatalf("job %s: sent as %+v", j.ID, m)
		}
		p := bodyParams(t, m)
		if p["order"] != fmt.Sprint(100000+i) || p["address"] != "ул. Текстильщиков, д. 20" || p["until"] != "21.02.2027" {
			t.Fatalf("job %s: rendered params %v", j.ID, p)
		}
	}
	testutil.Eventually(t, 60*time.Second, func() bool {
		for _, j := range jobs {
			if r := h.Record(j.ID); r == nil || r.State != status.Delivered {
				return false
			}
		}
		return true
	}, "every record delivered")
	rec := h.Record(jobs[0].ID)
	if len(rec.History) != 1 || rec.History[0].Channel != "white" || rec.History[0].ProviderMessageID == "" || rec.History[0].State != "delivered" {
		t.Fatalf("history %+v", rec.History)
	}
	// The API answers a repeated id with the existing record.
	body, _ := json.Marshal(jobs[0])
	code, out := post(t, h.APIURL+"/v1/notifications", body)
	if code != http.StatusOK || out["state"] != "delivered" || out["duplicate"] != true {
		t.Fatalf("repeat: %d %v", code, out)
	}
	if again := h.SentPerJob()["white:"+jobs[0].ID]; again != 1 {
		t.Fatalf("repeat sent again: %d", again)
	}
}

// TestWorkerKilledMidBatch kills a worker while it is sending; a new worker finishes the
// batch and no job is sent twice.
func TestWorkerKilledMidBatch(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{NoWorker: true, Sim: func(c *sim.Config) { c.Latency = 2 * time.Millisecond }})
	const n = 600
	jobs := make([]*producer.Job, n)
	for i := range jobs {
		jobs[i] = orderJob(i)
	}
	if _, err := h.Producer.PublishBatch(context.Background(), jobs); err != nil {
		t.Fatal(err)
	}
	w := h.StartWorker()
	testutil.Eventually(t, 30*time.Second, func() bool { return h.Sim.Count() >= n/4 }, "first sends")
	w.Kill()
	killedAt := h.Sim.Count()
	h.StartWorker()
	testutil.Eventually(t, 90*time.Second, func() bool {
		for _, j := range jobs {
			r := h.Record(j.ID)
			if r == nil || (r.State != status.Delivered && r.State != status.Sent) {
				return false
			}
		}
		return true
	}, "every job sent after the restart")
	sent := h.SentPerJob()
	for _, j := range jobs {
		if c := sent["white:"+j.ID]; c != 1 {
			t.Fatalf("job %s sent %d times (killed after %d sends)", j.ID, c, killedAt)
		}
	}
	if killedAt >= n {
		t.Fatalf("the worker finished everything before it was killed; the test proves nothing")
	}
}

func post(t *testing.T, url string, body []byte) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+harness.APIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	harness.DecodeJSON(t, resp.Body, &out)
	return resp.StatusCode, out
}

// TestInvalidJobs: the API names the bad fields; a malformed message published straight to
// the subject lands in the DLQ with its reason, and the worker keeps going.
func TestInvalidJobs(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{})
	code, out := post(t, h.APIURL+"/v1/notifications", []byte(`{"id":"bad id!","to":"12","template":"order_ready","colour":"red"}`))
	if code != http.StatusBadRequest {
		t.Fatalf("API answered %d %v", code, out)
	}
	fields := map[string]bool{}
	for _, f := range out["fields"].([]any) {
		fields[f.(map[string]any)["field"].(string)] = true
	}
	for _, want := range []string{"id", "to", "colour"} {
		if !fields[want] {
			t.Fatalf("API did not name %q: %v", want, out)
		}
	}

	ctx := context.Background()
	for _, data := range []string{`not json at all`, `{"id":"raw-1","to":"+79001234567","template":"order_ready","params":{"order":5}}`} {
		if _, err := h.JS.Publish(ctx, streams.SubjectTransactional, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	good := orderJob(7)
	if _, err := h.Producer.Publish(ctx, good); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, func() bool { return h.SentPerJob()["white:"+good.ID] == 1 }, "valid job after the bad ones is sent")
	dlq, err := h.JS.Stream(ctx, streams.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		info, err := dlq.Info(ctx)
		return err == nil && info.State.Msgs == 2
	}, "two dead letters")
	// Workers dead-letter concurrently, so the two letters may land in either order.
	var named bool
	for seq := uint64(1); seq <= 2; seq++ {
		m, err := dlq.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != "herald.dlq.invalid" || m.Header.Get(streams.HeaderReason) != "invalid" || m.Header.Get(streams.HeaderError) == "" {
			t.Fatalf("dead letter %d: %s %v", seq, m.Subject, m.Header)
		}
		if m.Header.Get(streams.HeaderJobID) == "raw-1" {
			if !strings.Contains(m.Header.Get(streams.HeaderError), "params") {
				t.Fatalf("reason does not name the field: %v", m.Header)
			}
			named = true
		}
	}
	if !named {
		t.Fatal("no dead letter carries the job id raw-1")
	}
	if r := h.Record("raw-1"); r == nil || r.State != status.Rejected {
		t.Fatalf("raw-1 record: %+v", r)
	}
}

// TestPermanentWhiteErrorFallsBackToSMS: 131026 (not on WhatsApp) ends in an SMS through
// the kannel driver, with both attempts in the record and the SMS delivery report applied.
func TestPermanentWhiteErrorFallsBackToSMS(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{})
	j := orderJob(42)
	h.Sim.AddRule(sim.Rule{To: strings.TrimPrefix("+79000000042", "+"), Code: 131026})
	if _, err := h.Producer.Publish(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, func() bool {
		r := h.Record(j.ID)
		return r != nil && r.State == status.Delivered && r.Channel == "sms"
	}, "SMS delivered")
	rec := h.Record(j.ID)
	if len(rec.History) != 2 || rec.History[0].Channel != "white" || rec.History[0].State != "failed" || rec.History[0].Code != "131026" ||
		rec.History[1].Channel != "sms" || rec.History[1].State != "delivered" {
		t.Fatalf("history: %+v", rec.History)
	}
	var smsText string
	for _, m := range h.Sim.Messages() {
		if m.Channel == "sms" && m.JobID == j.ID {
			smsText = m.Text
		}
	}
	if !strings.Contains(smsText, "100042") || !strings.Contains(smsText, "ул. Текстильщиков") {
		t.Fatalf("SMS text %q lacks the rendered parameters", smsText)
	}
}

var _ = nats.Header{}
var _ = config.Defaults
