package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/api"
	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/harness"
	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/sms"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/internal/webhook"
	"github.com/herald-notify/herald/producer"
)

// wait bounds every wait on an asynchronous outcome (a worker's send, a status change).
const wait = 20 * time.Second

// call sends one request and returns the status and the body. key, when set, goes into
// Authorization as a bearer key; header entries are added as they are.
func call(t *testing.T, method, u, key string, body []byte, header map[string]string) (int, []byte) {
	t.Helper()
	code, b, err := send(method, u, key, body, header)
	if err != nil {
		t.Fatal(err)
	}
	return code, b
}

// send is call for goroutines other than the test's own, which must not call t.Fatal.
func send(method, u, key string, body []byte, header map[string]string) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		return 0, nil, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return v
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// result is the API's answer for one job (single or batch item).
type result struct {
	ID        string           `json:"id"`
	State     string           `json:"state"`
	Duplicate bool             `json:"duplicate"`
	Error     string           `json:"error"`
	Fields    []job.FieldError `json:"fields"`
}

func fieldNames(fs []job.FieldError) []string {
	names := make([]string, 0, len(fs))
	for _, f := range fs {
		names = append(names, f.Field)
	}
	sort.Strings(names)
	return names
}

// orderJob is a valid order_ready job for the sample template.
func orderJob(id, to string) map[string]any {
	return map[string]any{
		"id": id, "to": to, "template": "order_ready",
		"params":  map[string]string{"order": "123456", "address": "ул. Текстильщиков, д. 20", "until": "21.02.2027"},
		"buttons": map[string]string{"0": "123456"},
	}
}

func postJob(t *testing.T, h *harness.Herald, body []byte) (int, []byte) {
	t.Helper()
	return call(t, http.MethodPost, h.APIURL+"/v1/notifications", harness.APIKey, body, nil)
}

// postWebhook posts body to the Cloud API webhook with signature sig ("" sends none).
func postWebhook(t *testing.T, h *harness.Herald, body []byte, sig string) (int, []byte) {
	t.Helper()
	hdr := map[string]string{"Content-Type": "application/json"}
	if sig != "" {
		hdr["X-Hub-Signature-256"] = sig
	}
	return call(t, http.MethodPost, h.APIURL+"/webhooks/whatsapp", "", body, hdr)
}

func postSigned(t *testing.T, h *harness.Herald, body []byte) (int, []byte) {
	t.Helper()
	return postWebhook(t, h, body, webhook.Sign(harness.AppSecret, body))
}

// statusWebhook is a Cloud API status webhook (as in testdata/message_status.json) for one
// message, without biz_opaque_callback_data, so the API must find the job by message id.
func statusWebhook(t *testing.T, msgID, state string) []byte {
	t.Helper()
	return mustJSON(t, map[string]any{
		"object": "whatsapp_business_account",
		"entry": []any{map[string]any{
			"id": "100200300",
			"changes": []any{map[string]any{
				"field": "messages",
				"value": map[string]any{
					"messaging_product": "whatsapp",
					"metadata":          map[string]string{"display_phone_number": "15550000000", "phone_number_id": "100200300"},
					"statuses": []any{map[string]any{
						"id": msgID, "status": state, "timestamp": fmt.Sprint(time.Now().Unix()), "recipient_id": "79001234567",
					}},
				},
			}},
		}},
	})
}

// fixtures reads testdata/whatsapp/webhooks/<name>.json: variant name → full webhook body.
func fixtures(t *testing.T, name string) map[string]json.RawMessage {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testutil.WhatsAppFixtures(), "webhooks", name))
	if err != nil {
		t.Fatal(err)
	}
	return decode[map[string]json.RawMessage](t, b)
}

func TestAuth(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{NoWorker: true})
	routes := []struct{ method, path string }{
		{http.MethodPost, "/v1/notifications"},
		{http.MethodPost, "/v1/notifications/batch"},
		{http.MethodGet, "/v1/notifications/some-id"},
		{http.MethodGet, "/v1/templates"},
		{http.MethodPost, "/v1/templates"},
		{http.MethodGet, "/v1/templates/order_ready/ru"},
	}
	body := mustJSON(t, orderJob("auth-1", "+79001230001"))
	// The group returns only when its parallel subtests have finished.
	t.Run("refused", func(t *testing.T) {
		for _, rt := range routes {
			for _, c := range []struct {
				name   string
				header map[string]string
			}{
				{"no key", nil},
				{"wrong key", map[string]string{"Authorization": "Bearer not-" + harness.APIKey}},
				{"key without Bearer", map[string]string{"Authorization": harness.APIKey}},
				{"empty bearer", map[string]string{"Authorization": "Bearer "}},
			} {
				t.Run(rt.method+" "+rt.path+"/"+c.name, func(t *testing.T) {
					t.Parallel()
					code, out := call(t, rt.method, h.APIURL+rt.path, "", body, c.header)
					if code != http.StatusUnauthorized {
						t.Fatalf("got %d %s, want 401", code, out)
					}
					if e := decode[map[string]string](t, out)["error"]; e == "" {
						t.Fatalf("401 without an error message: %s", out)
					}
				})
			}
		}
	})
	// Nothing was queued by the refused POSTs.
	if rec := h.Record("auth-1"); rec != nil {
		t.Fatalf("a refused request created a record: %+v", rec)
	}

	t.Run("right key passes", func(t *testing.T) {
		t.Parallel()
		code, out := call(t, http.MethodGet, h.APIURL+"/v1/templates", harness.APIKey, nil, nil)
		if code != http.StatusOK {
			t.Fatalf("got %d %s", code, out)
		}
	})
	for _, c := range []struct {
		path, status string
	}{{"/healthz", "ok"}, {"/readyz", "ready"}} {
		t.Run(c.path+" needs no key", func(t *testing.T) {
			t.Parallel()
			code, out := call(t, http.MethodGet, h.APIURL+c.path, "", nil, nil)
			if code != http.StatusOK {
				t.Fatalf("got %d %s", code, out)
			}
			if got := decode[map[string]any](t, out)["status"]; got != c.status {
				t.Fatalf("status %v, want %q: %s", got, c.status, out)
			}
		})
	}
}

func TestPostNotification(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{NoWorker: true})

	t.Run("valid", func(t *testing.T) {
		t.Parallel()
		code, out := postJob(t, h, mustJSON(t, orderJob("post-valid", "+7 900 123-00-01")))
		if code != http.StatusAccepted {
			t.Fatalf("got %d %s, want 202", code, out)
		}
		got := decode[map[string]any](t, out)
		if len(got) != 2 || got["id"] != "post-valid" || got["state"] != status.Queued {
			t.Fatalf("answer %s, want exactly {id, state: queued}", out)
		}
		rec := h.Record("post-valid")
		if rec == nil || rec.State != status.Queued || rec.Tenant != harness.Tenant || rec.To != "+79001230001" ||
			!slices.Equal(rec.Channels, []string{"white", "sms"}) {
			t.Fatalf("record %+v: want queued, tenant test (the key's), normalised number, default cascade", rec)
		}
	})

	t.Run("tenant of the key given explicitly", func(t *testing.T) {
		t.Parallel()
		j := orderJob("post-tenant-ok", "+79001230002")
		j["tenant"] = harness.Tenant
		if code, out := postJob(t, h, mustJSON(t, j)); code != http.StatusAccepted {
			t.Fatalf("got %d %s, want 202", code, out)
		}
	})

	t.Run("exactly 64 KiB", func(t *testing.T) {
		t.Parallel()
		b := mustJSON(t, orderJob("post-64k", "+79001230003"))
		b = append(b, bytes.Repeat([]byte(" "), job.MaxSize-len(b))...)
		if code, out := postJob(t, h, b); code != http.StatusAccepted {
			t.Fatalf("a %d-byte job: got %d %s, want 202", len(b), code, out)
		}
	})

	invalid := []struct {
		name   string
		body   string
		id     string
		fields []string
	}{
		{"unknown field", `{"id":"bad-1","to":"+79001230010","template":"order_ready","colour":"red"}`, "bad-1", []string{"colour"}},
		{"bad phone", `{"id":"bad-2","to":"12","template":"order_ready"}`, "bad-2", []string{"to"}},
		{"template and text", `{"id":"bad-3","to":"+79001230011","template":"order_ready","text":"hi"}`, "bad-3", []string{"text"}},
		{"every fault at once", `{"id":"bad 4!","to":"12","template":"order_ready","text":"hi","colour":"red","priority":"urgent"}`, "bad 4!",
			[]string{"colour", "id", "priority", "text", "to"}},
		{"no id", `{"to":"+79001230012","text":"hi"}`, "", []string{"id"}},
		{"not an object", `[1,2,3]`, "", []string{"$"}},
		{"not JSON", `id=1`, "", []string{"$"}},
	}
	for _, c := range invalid {
		t.Run("invalid/"+c.name, func(t *testing.T) {
			t.Parallel()
			code, out := postJob(t, h, []byte(c.body))
			if code != http.StatusBadRequest {
				t.Fatalf("got %d %s, want 400", code, out)
			}
			res := decode[result](t, out)
			if got := fieldNames(res.Fields); !slices.Equal(got, c.fields) {
				t.Fatalf("fields %v, want %v: %s", got, c.fields, out)
			}
			for _, f := range res.Fields {
				if f.Reason == "" {
					t.Fatalf("field %s without a reason", f.Field)
				}
			}
			if res.ID != c.id || res.Error == "" {
				t.Fatalf("answer %s: want id %q and an error", out, c.id)
			}
			if c.id != "" && h.Record(c.id) != nil {
				t.Fatalf("an invalid job got a record")
			}
		})
	}

	t.Run("other tenant", func(t *testing.T) {
		t.Parallel()
		j := orderJob("post-other-tenant", "+79001230020")
		j["tenant"] = "shop"
		code, out := postJob(t, h, mustJSON(t, j))
		if code != http.StatusForbidden {
			t.Fatalf("got %d %s, want 403", code, out)
		}
		if res := decode[result](t, out); !slices.Equal(fieldNames(res.Fields), []string{"tenant"}) {
			t.Fatalf("answer %s does not name the tenant", out)
		}
		if h.Record("post-other-tenant") != nil {
			t.Fatal("a job of another tenant got a record")
		}
	})

	t.Run("over 64 KiB", func(t *testing.T) {
		t.Parallel()
		j := orderJob("post-huge", "+79001230021")
		j["metadata"] = map[string]string{"pad": strings.Repeat("x", job.MaxSize)}
		code, out := postJob(t, h, mustJSON(t, j))
		if code != http.StatusRequestEntityTooLarge {
			t.Fatalf("got %d %s, want 413", code, out)
		}
		if h.Record("post-huge") != nil {
			t.Fatal("an oversized job got a record")
		}
	})
}

// TestRepeatedNotification: a repeated id answers 200 with the record's current state, and
// is never sent twice.
func TestRepeatedNotification(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{NoWorker: true})
	body := mustJSON(t, orderJob("repeat-1", "+79001231001"))
	if code, out := postJob(t, h, body); code != http.StatusAccepted {
		t.Fatalf("first: %d %s", code, out)
	}
	code, out := postJob(t, h, body)
	if res := decode[result](t, out); code != http.StatusOK || !res.Duplicate || res.State != status.Queued || res.ID != "repeat-1" {
		t.Fatalf("repeat while queued: %d %s, want 200 duplicate queued", code, out)
	}

	h.StartWorker()
	testutil.Eventually(t, wait, func() bool {
		r := h.Record("repeat-1")
		return r != nil && r.State == status.Delivered
	}, "repeat-1 delivered")
	code, out = postJob(t, h, body)
	if res := decode[result](t, out); code != http.StatusOK || !res.Duplicate || res.State != status.Delivered {
		t.Fatalf("repeat after delivery: %d %s, want 200 duplicate delivered", code, out)
	}
	if n := h.SentPerJob()["white:repeat-1"]; n != 1 {
		t.Fatalf("sent %d times, want once", n)
	}
}

func TestBatch(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{})
	other := orderJob("batch-4", "+79001232004")
	other["tenant"] = "shop"
	items := []json.RawMessage{
		mustJSON(t, orderJob("batch-1", "+79001232001")),
		json.RawMessage(`{"id":"batch-2","to":"12","template":"order_ready","text":"hi"}`),
		mustJSON(t, orderJob("batch-3", "+79001232003")),
		mustJSON(t, other),
		mustJSON(t, orderJob("batch-1", "+79001232001")), // repeated inside the batch
		json.RawMessage(`"not a job"`),
		mustJSON(t, map[string]any{"id": "batch-7", "to": "+79001232007", "template": "booking_reminder",
			"params": map[string]string{"name": "Анна", "hotel": "Волга", "from": "12.07.2026", "to": "15.07.2026"}}),
	}
	code, out := call(t, http.MethodPost, h.APIURL+"/v1/notifications/batch", harness.APIKey,
		mustJSON(t, map[string]any{"notifications": items}), nil)
	if code != http.StatusOK {
		t.Fatalf("got %d %s", code, out)
	}
	got := decode[struct {
		Accepted int      `json:"accepted"`
		Rejected int      `json:"rejected"`
		Results  []result `json:"results"`
	}](t, out)
	want := []struct {
		id        string
		ok, dup   bool
		badFields []string
	}{
		{"batch-1", true, false, nil},
		{"batch-2", false, false, []string{"text", "to"}},
		{"batch-3", true, false, nil},
		{"batch-4", false, false, []string{"tenant"}},
		{"batch-1", true, true, nil},
		{"", false, false, []string{"$"}},
		{"batch-7", true, false, nil},
	}
	if got.Accepted != 4 || got.Rejected != 3 || len(got.Results) != len(want) {
		t.Fatalf("accepted %d rejected %d results %d: %s", got.Accepted, got.Rejected, len(got.Results), out)
	}
	for i, w := range want {
		r := got.Results[i]
		if r.ID != w.id || r.Duplicate != w.dup || (r.Error == "") != w.ok || !slices.Equal(fieldNames(r.Fields), w.badFields) {
			t.Fatalf("result %d = %+v, want id %q ok %v duplicate %v fields %v", i, r, w.id, w.ok, w.dup, w.badFields)
		}
		if w.ok && r.State != status.Queued {
			t.Fatalf("result %d state %q, want queued", i, r.State)
		}
	}

	sent := []string{"batch-1", "batch-3", "batch-7"}
	testutil.Eventually(t, wait, func() bool {
		for _, id := range sent {
			if r := h.Record(id); r == nil || r.State != status.Delivered {
				return false
			}
		}
		return true
	}, "every valid batch item delivered")
	perJob := h.SentPerJob()
	for _, id := range sent {
		if perJob["white:"+id] != 1 {
			t.Fatalf("%s sent %d times, want once (%v)", id, perJob["white:"+id], perJob)
		}
	}
	if len(perJob) != len(sent) {
		t.Fatalf("sends %v, want only %v", perJob, sent)
	}
	for _, id := range []string{"batch-2", "batch-4"} {
		if h.Record(id) != nil {
			t.Fatalf("rejected item %s got a record", id)
		}
	}
}

func TestBatchLimits(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{NoWorker: true})
	items := func(n int) []byte {
		return []byte(`{"notifications":[` + strings.TrimSuffix(strings.Repeat(`{},`, n), ",") + `]}`)
	}
	cases := []struct {
		name     string
		body     []byte
		code     int
		rejected int
	}{
		{"exactly the maximum", items(api.MaxBatch), http.StatusOK, api.MaxBatch},
		{"one over the maximum", items(api.MaxBatch + 1), http.StatusBadRequest, 0},
		{"empty", items(0), http.StatusBadRequest, 0},
		{"no list", []byte(`{}`), http.StatusBadRequest, 0},
		{"unknown field", []byte(`{"notifications":[{}],"jobs":[]}`), http.StatusBadRequest, 0},
		{"not JSON", []byte(`notifications`), http.StatusBadRequest, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			code, out := call(t, http.MethodPost, h.APIURL+"/v1/notifications/batch", harness.APIKey, c.body, nil)
			if code != c.code {
				t.Fatalf("got %d %.200s, want %d", code, out, c.code)
			}
			if code != http.StatusOK {
				if decode[map[string]any](t, out)["error"] == nil {
					t.Fatalf("no error message: %s", out)
				}
				return
			}
			got := decode[struct {
				Accepted, Rejected int
				Results            []result
			}](t, out)
			if got.Rejected != c.rejected || got.Accepted != 0 || len(got.Results) != c.rejected {
				t.Fatalf("accepted %d rejected %d results %d", got.Accepted, got.Rejected, len(got.Results))
			}
		})
	}
}

func TestGetNotification(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{})
	ctx := context.Background()
	get := func(t *testing.T, id string) (int, []byte) {
		t.Helper()
		return call(t, http.MethodGet, h.APIURL+"/v1/notifications/"+url.PathEscape(id), harness.APIKey, nil, nil)
	}

	t.Run("unknown", func(t *testing.T) {
		t.Parallel()
		if code, out := get(t, "no-such-job"); code != http.StatusNotFound {
			t.Fatalf("got %d %s, want 404", code, out)
		}
	})

	t.Run("delivered, with history", func(t *testing.T) {
		t.Parallel()
		if code, out := postJob(t, h, mustJSON(t, orderJob("get-1", "+79001233001"))); code != http.StatusAccepted {
			t.Fatalf("post: %d %s", code, out)
		}
		testutil.Eventually(t, wait, func() bool {
			r := h.Record("get-1")
			return r != nil && r.State == status.Delivered
		}, "get-1 delivered")
		code, out := get(t, "get-1")
		if code != http.StatusOK {
			t.Fatalf("got %d %s", code, out)
		}
		raw := decode[map[string]json.RawMessage](t, out)
		if _, ok := raw["claim"]; ok {
			t.Fatalf("record exposes its claim: %s", out)
		}
		rec := decode[status.Record](t, out)
		if rec.ID != "get-1" || rec.State != status.Delivered || rec.Tenant != harness.Tenant || rec.Template != "order_ready" {
			t.Fatalf("record %s", out)
		}
		if len(rec.History) != 1 || rec.History[0].Channel != "white" || rec.History[0].State != status.Delivered ||
			rec.History[0].ProviderMessageID == "" || rec.History[0].ProviderMessageID != rec.ProviderMessageID {
			t.Fatalf("history %+v", rec.History)
		}
	})

	t.Run("claimed record hides its claim", func(t *testing.T) {
		t.Parallel()
		// A record as a worker holds it mid-send, with a status report parked for it: the
		// claim and the parked report are internal.
		j, err := job.Decode(mustJSON(t, map[string]any{"id": "get-claimed", "to": "+79001233002", "text": "hi", "tenant": harness.Tenant}), job.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.Store.Begin(ctx, j, "someone", time.Minute, []string{"white"}); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := h.Store.Apply(ctx, status.Report{JobRef: j.Ref(), MessageID: "wamid.early", State: status.Delivered}); err != nil {
			t.Fatal(err)
		}
		if r := h.Record(j.ID); r == nil || r.Claim == nil || len(r.Early) == 0 {
			t.Fatalf("setup: record %+v should hold a claim and an early report", r)
		}
		code, out := get(t, j.ID)
		if code != http.StatusOK {
			t.Fatalf("got %d %s", code, out)
		}
		raw := decode[map[string]json.RawMessage](t, out)
		for _, k := range []string{"claim", "early"} {
			if _, ok := raw[k]; ok {
				t.Fatalf("record exposes %q: %s", k, out)
			}
		}
		if decode[status.Record](t, out).State != status.Queued {
			t.Fatalf("record %s", out)
		}
	})

	t.Run("another tenant's record", func(t *testing.T) {
		t.Parallel()
		j, err := job.Decode(mustJSON(t, map[string]any{"id": "get-other", "to": "+79001233003", "text": "hi", "tenant": "shop"}), job.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := h.Store.Create(ctx, status.NewRecord(j, status.Queued, []string{"white"}, time.Now())); err != nil {
			t.Fatal(err)
		}
		if code, out := get(t, j.ID); code != http.StatusNotFound {
			t.Fatalf("got %d %s, want 404", code, out)
		}
	})
}

func TestWhatsAppVerify(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{NoWorker: true})
	cases := []struct {
		name  string
		query url.Values
		code  int
	}{
		{"right token", url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {"verify-me"}, "hub.challenge": {"1158201444"}}, http.StatusOK},
		{"wrong token", url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {"verify-you"}, "hub.challenge": {"1158201444"}}, http.StatusForbidden},
		{"no token", url.Values{"hub.mode": {"subscribe"}, "hub.challenge": {"1158201444"}}, http.StatusForbidden},
		{"wrong mode", url.Values{"hub.mode": {"unsubscribe"}, "hub.verify_token": {"verify-me"}, "hub.challenge": {"1158201444"}}, http.StatusForbidden},
		{"no mode", url.Values{"hub.verify_token": {"verify-me"}, "hub.challenge": {"1158201444"}}, http.StatusForbidden},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			code, out := call(t, http.MethodGet, h.APIURL+"/webhooks/whatsapp?"+c.query.Encode(), "", nil, nil)
			if code != c.code {
				t.Fatalf("got %d %s, want %d", code, out, c.code)
			}
			if code == http.StatusOK && string(out) != "1158201444" {
				t.Fatalf("body %q, want the challenge echoed", out)
			}
			if code != http.StatusOK && strings.Contains(string(out), "1158201444") {
				t.Fatalf("refused handshake echoes the challenge: %s", out)
			}
		})
	}
}

func TestWhatsAppWebhookSignature(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{NoWorker: true})
	body := fixtures(t, "message_status.json")["delivered"]
	good := webhook.Sign(harness.AppSecret, body)
	// pad keeps body valid JSON while making it exactly n bytes long.
	pad := func(n int) []byte {
		return append(bytes.Clone(body), bytes.Repeat([]byte(" "), n-len(body))...)
	}
	exact, over := pad(api.MaxWebhookBody), pad(api.MaxWebhookBody+1)
	cases := []struct {
		name string
		body []byte
		sig  string
		code int
	}{
		{"signed", body, good, http.StatusOK},
		{"unsigned", body, "", http.StatusUnauthorized},
		{"signed with another secret", body, webhook.Sign("not-the-secret", body), http.StatusUnauthorized},
		{"signature of another body", body, webhook.Sign(harness.AppSecret, []byte(`{}`)), http.StatusUnauthorized},
		{"body changed after signing", bytes.Replace(body, []byte("delivered"), []byte("read"), 1), good, http.StatusUnauthorized},
		{"not hex", body, "sha256=zz" + good[9:], http.StatusUnauthorized},
		{"sha1 label", body, "sha1=" + good[len("sha256="):], http.StatusUnauthorized},
		{"bare hex", body, good[len("sha256="):], http.StatusUnauthorized},
		{"exactly 1 MiB, signed", exact, webhook.Sign(harness.AppSecret, exact), http.StatusOK},
		{"over 1 MiB, signed", over, webhook.Sign(harness.AppSecret, over), http.StatusRequestEntityTooLarge},
		{"over 1 MiB, unsigned", over, "", http.StatusRequestEntityTooLarge},
		{"signed, not JSON", []byte(`not json`), webhook.Sign(harness.AppSecret, []byte(`not json`)), http.StatusBadRequest},
		{"signed, another object", []byte(`{"object":"page","entry":[]}`), webhook.Sign(harness.AppSecret, []byte(`{"object":"page","entry":[]}`)), http.StatusBadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			code, out := postWebhook(t, h, c.body, c.sig)
			if code != c.code {
				t.Fatalf("got %d %.200s, want %d", code, out, c.code)
			}
		})
	}
}

// TestWhatsAppWebhookFixtures posts every recorded Cloud API webhook: none is about a message
// Herald sent, so each is accepted and ignored (Meta would retry an error for days).
func TestWhatsAppWebhookFixtures(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{NoWorker: true})
	files, err := filepath.Glob(filepath.Join(testutil.WhatsAppFixtures(), "webhooks", "*.json"))
	if err != nil || len(files) < 5 {
		t.Fatalf("fixtures: %v %v", files, err)
	}
	n := 0
	for _, f := range files {
		for variant, body := range fixtures(t, filepath.Base(f)) {
			n++
			t.Run(strings.TrimSuffix(filepath.Base(f), ".json")+"/"+variant, func(t *testing.T) {
				t.Parallel()
				code, out := postSigned(t, h, body)
				if code != http.StatusOK {
					t.Fatalf("got %d %s, want 200", code, out)
				}
				if code, out := postSigned(t, h, body); code != http.StatusOK {
					t.Fatalf("repeated delivery: got %d %s, want 200", code, out)
				}
			})
		}
	}
	if n < 30 {
		t.Fatalf("only %d fixture variants", n)
	}
}

// TestStatusFlow applies status webhooks out of order: the record ends read and never
// moves backwards, and a repeated report changes nothing.
func TestStatusFlow(t *testing.T) {
	t.Parallel()
	// The simulator's own webhooks are off: this test sends the statuses itself.
	h := harness.Start(t, harness.Options{Sim: func(c *sim.Config) { c.WebhookURL = "" }})
	ctx := context.Background()
	j := &producer.Job{
		ID: "flow-1", To: "+79001234567", Template: "order_ready",
		Params:  map[string]string{"order": "123456", "address": "ул. Текстильщиков, д. 20", "until": "21.02.2027"},
		Buttons: map[string]string{"0": "1"},
	}
	if _, err := h.Producer.Publish(ctx, j); err != nil {
		t.Fatal(err)
	}
	var msgID string
	testutil.Eventually(t, wait, func() bool {
		r := h.Record(j.ID)
		if r == nil || r.ProviderMessageID == "" {
			return false
		}
		msgID = r.ProviderMessageID
		return true
	}, "flow-1 sent")
	if r := h.Record(j.ID); r.State != status.Sent {
		t.Fatalf("before any webhook: state %q, want sent", r.State)
	}
	events, err := h.JS.Stream(ctx, streams.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	readEvents := func() uint64 {
		t.Helper()
		info, err := events.Info(ctx, jetstream.WithSubjectFilter(streams.StatusSubject(status.Read)))
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Subjects[streams.StatusSubject(status.Read)]
	}

	var afterRead *status.Record
	for i, st := range []string{status.Read, status.Delivered, status.Sent, status.Read} {
		code, out := postSigned(t, h, statusWebhook(t, msgID, st))
		if code != http.StatusOK {
			t.Fatalf("webhook %d (%s): %d %s", i, st, code, out)
		}
		r := h.Record(j.ID)
		if r.State != status.Read || len(r.History) != 1 || r.History[0].State != status.Read {
			t.Fatalf("after %s (webhook %d): state %q, history %+v; want read", st, i, r.State, r.History)
		}
		if i == 0 {
			afterRead = r
			continue
		}
		if r.UpdatedAt != afterRead.UpdatedAt || r.History[0].StatusAt != afterRead.History[0].StatusAt {
			t.Fatalf("webhook %d (%s) changed the record: %+v, was %+v", i, st, r, afterRead)
		}
	}
	// Events are published without waiting for JetStream's acknowledgement.
	testutil.Eventually(t, 10*time.Second, func() bool { return readEvents() >= 1 }, "the read event stored")
	if n := readEvents(); n != 1 {
		t.Fatalf("%d read events, want 1", n)
	}
}

// TestInbound: a customer's message opens the 24-hour window and is handed to the business
// on herald.events.inbound, once however often Meta delivers it.
func TestInbound(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{NoWorker: true})
	ctx := context.Background()
	// The fixture's sender, 972987654321, is not a valid number by libphonenumber; the
	// sender here is one that is.
	body := bytes.ReplaceAll(fixtures(t, "message.json")["text"], []byte("972987654321"), []byte("79001234567"))
	for i := range 2 {
		if code, out := postSigned(t, h, body); code != http.StatusOK {
			t.Fatalf("delivery %d: %d %s", i, code, out)
		}
	}
	ttl, err := h.RDB.TTL(ctx, status.WindowKey("1122334455667", "+79001234567") /* the fixture's business number */).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl < api.WindowDuration-time.Minute || ttl > api.WindowDuration {
		t.Fatalf("window TTL %v, want about %v", ttl, api.WindowDuration)
	}
	if n, err := h.RDB.Exists(ctx, "herald:win:1122334455667:+79001234567").Result(); err != nil || n != 1 {
		t.Fatalf("window key: %d %v", n, err)
	}

	events, err := h.JS.Stream(ctx, streams.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	var m *jetstream.RawStreamMsg
	testutil.Eventually(t, 10*time.Second, func() bool {
		m, err = events.GetLastMsgForSubject(ctx, streams.SubjectInbound)
		return err == nil
	}, "the inbound event stored")
	ev := decode[api.InboundEvent](t, m.Data)
	want := api.InboundEvent{Channel: "white", From: "+79001234567", ID: "wamid.xyzxyz", Type: "text", Text: "Body Text",
		Name: "Test Name", At: time.Unix(1697043223, 0).UTC()}
	if !ev.At.Equal(want.At) {
		t.Fatalf("event time %v, want %v", ev.At, want.At)
	}
	ev.At = want.At
	if ev != want {
		t.Fatalf("event %+v, want %+v", ev, want)
	}
	info, err := events.Info(ctx, jetstream.WithSubjectFilter(streams.SubjectInbound))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[streams.SubjectInbound]; n != 1 {
		t.Fatalf("%d inbound events after a repeated delivery, want 1", n)
	}
}

// dlrQuery is a Kannel delivery report's query for job id, with the token Herald's dlr-url
// carries (token "" leaves it out).
// dlrQuery is the query of a Kannel report on the harness tenant's job id, as Kannel calls
// the dlr-url the worker made (its id is the job's ref).
func dlrQuery(id, token, rest string) string {
	q := "id=" + url.QueryEscape(job.Ref(harness.Tenant, id)) + "&" + rest
	if token != "" {
		q += "&token=" + url.QueryEscape(token)
	}
	return q
}

func dlrToken(id string) string {
	return sms.DLRToken([]byte(harness.DLRSecret), job.Ref(harness.Tenant, id))
}

// TestSMSDeliveryReport applies Kannel delivery reports to a job sent by SMS, and only the
// ones Kannel makes of Herald's dlr-url: a report without the job's token, or for a job
// Herald sent no SMS for, is refused with 401 and changes nothing.
func TestSMSDeliveryReport(t *testing.T) {
	t.Parallel()
	// The simulator's own delivery reports go to a closed loopback port, so that only the
	// reports this test sends reach the API.
	h := harness.Start(t, harness.Options{Config: func(c *config.Config) { c.PublicURL = "http://127.0.0.1:1" }})
	dlr := func(t *testing.T, q string) (int, []byte) {
		t.Helper()
		return call(t, http.MethodGet, h.APIURL+"/webhooks/sms?"+q, "", nil, nil)
	}
	j := orderJob("sms-1", "+79001235001")
	j["channels"] = []string{"sms"}
	if code, out := postJob(t, h, mustJSON(t, j)); code != http.StatusAccepted {
		t.Fatalf("post: %d %s", code, out)
	}
	testutil.Eventually(t, wait, func() bool {
		r := h.Record("sms-1")
		return r != nil && r.State == status.Sent
	}, "sms-1 sent")
	if r := h.Record("sms-1"); r.Channel != "sms" || r.ProviderMessageID != "kannel:"+job.Ref(harness.Tenant, "sms-1") {
		t.Fatalf("record %+v", r)
	}
	// The finding: anyone could turn a sent SMS into a failed one.
	for _, c := range []struct{ name, query string }{
		{"no token", dlrQuery("sms-1", "", "type=2&reply=forged")},
		{"another job's token", dlrQuery("sms-1", dlrToken("sms-2"), "type=2&reply=forged")},
		{"a token that is not one", dlrQuery("sms-1", "not-a-token", "type=2&reply=forged")},
	} {
		if code, out := dlr(t, c.query); code != http.StatusUnauthorized {
			t.Fatalf("%s: %d %s, want 401", c.name, code, out)
		}
		if r := h.Record("sms-1"); r.State != status.Sent || len(r.Early) != 0 {
			t.Fatalf("%s changed the record: %+v", c.name, r)
		}
	}

	// An intermediate report (SMSC accepted) is not a state Herald tracks.
	code, out := dlr(t, dlrQuery("sms-1", dlrToken("sms-1"), "type=8&reply=ACK%2F"))
	if code != http.StatusOK {
		t.Fatalf("type 8: %d %s", code, out)
	}
	if r := h.Record("sms-1"); r.State != status.Sent {
		t.Fatalf("after type 8: %q, want sent", r.State)
	}
	for i := range 2 {
		if code, out := dlr(t, dlrQuery("sms-1", dlrToken("sms-1"), "type=1&to=%2B79001235001&ts=1700000000&reply=id%3A1+stat%3ADELIVRD")); code != http.StatusOK {
			t.Fatalf("type 1 (%d): %d %s", i, code, out)
		}
		r := h.Record("sms-1")
		if r.State != status.Delivered || len(r.History) != 1 || r.History[0].State != status.Delivered {
			t.Fatalf("after type 1 (%d): %+v", i, r)
		}
	}
	if code, out := dlr(t, dlrQuery("no-such-job", dlrToken("no-such-job"), "type=1")); code != http.StatusOK {
		t.Fatalf("report on an unknown (expired) job: %d %s, want 200 (ignored)", code, out)
	}

	// A job Herald sent on WhatsApp only: even a report with its token changes nothing.
	w := orderJob("white-only-1", "+79001235002")
	w["channels"] = []string{"white"}
	if code, out := postJob(t, h, mustJSON(t, w)); code != http.StatusAccepted {
		t.Fatalf("post: %d %s", code, out)
	}
	testutil.Eventually(t, wait, func() bool {
		r := h.Record("white-only-1")
		return r != nil && r.State == status.Delivered
	}, "white-only-1 delivered")
	if code, out := dlr(t, dlrQuery("white-only-1", dlrToken("white-only-1"), "type=2&reply=forged")); code != http.StatusUnauthorized {
		t.Fatalf("report on a job with no SMS: %d %s, want 401", code, out)
	}
	if r := h.Record("white-only-1"); r.State != status.Delivered || len(r.Early) != 0 {
		t.Fatalf("a report on a job with no SMS changed it: %+v", r)
	}

	t.Run("malformed", func(t *testing.T) { malformedDLRs(t, dlr) })
	if r := h.Record("sms-1"); r.State != status.Delivered {
		t.Fatalf("malformed reports changed the record: %+v", r)
	}
}

// TestForgedReportBeforeTheSMS: a forged failure sent before the SMS went out was parked
// and applied once it went; now it is refused and never parked, and the SMS's own report
// is what counts.
func TestForgedReportBeforeTheSMS(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{NoWorker: true, Config: func(c *config.Config) { c.PublicURL = "http://127.0.0.1:1" }})
	dlr := func(q string) (int, []byte) {
		return call(t, http.MethodGet, h.APIURL+"/webhooks/sms?"+q, "", nil, nil)
	}
	j := orderJob("sms-early", "+79001235101")
	j["channels"] = []string{"sms"}
	if code, out := postJob(t, h, mustJSON(t, j)); code != http.StatusAccepted {
		t.Fatalf("post: %d %s", code, out)
	}
	for _, q := range []string{
		dlrQuery("sms-early", "", "type=2&reply=forged"),
		// Even with the token (it leaked, say), no SMS is being sent yet.
		dlrQuery("sms-early", dlrToken("sms-early"), "type=2&reply=forged"),
	} {
		if code, out := dlr(q); code != http.StatusUnauthorized {
			t.Fatalf("report before the SMS: %d %s, want 401", code, out)
		}
	}
	if r := h.Record("sms-early"); r == nil || r.State != status.Queued || len(r.Early) != 0 {
		t.Fatalf("record after the forged reports: %+v, want queued with nothing parked", r)
	}
	h.StartWorker()
	testutil.Eventually(t, wait, func() bool {
		r := h.Record("sms-early")
		return r != nil && r.State == status.Sent
	}, "sms-early sent")
	if r := h.Record("sms-early"); r.State != status.Sent {
		t.Fatalf("the SMS went out and took a forged report: %+v", r)
	}
	if code, out := dlr(dlrQuery("sms-early", dlrToken("sms-early"), "type=1")); code != http.StatusOK {
		t.Fatalf("the SMS's own report: %d %s", code, out)
	}
	if r := h.Record("sms-early"); r.State != status.Delivered {
		t.Fatalf("after its report: %+v, want delivered", r)
	}
}

// malformedDLRs sends delivery reports Herald never asked for; each is refused with 400.
func malformedDLRs(t *testing.T, dlr func(*testing.T, string) (int, []byte)) {
	for _, c := range []struct{ name, query string }{
		{"empty", ""},
		{"no id", "type=1"},
		{"no type", "id=sms-1"},
		{"type not a number", "id=sms-1&type=x"},
		{"unknown type", "id=sms-1&type=64"},
		{"ts not a number", "id=sms-1&type=1&ts=yesterday"},
		{"id too long", "id=" + strings.Repeat("a", 193) + "&type=1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if code, out := dlr(t, c.query); code != http.StatusBadRequest {
				t.Fatalf("got %d %s, want 400", code, out)
			}
		})
	}
}

// TestRedisOutage: while Redis is down the API is not ready and answers webhooks with 500,
// so that Meta retries them; the retry after Redis is back is applied.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{Sim: func(c *sim.Config) { c.WebhookURL = "" }})
	if code, out := postJob(t, h, mustJSON(t, orderJob("outage-1", "+79001236001"))); code != http.StatusAccepted {
		t.Fatalf("post: %d %s", code, out)
	}
	var msgID string
	testutil.Eventually(t, wait, func() bool {
		r := h.Record("outage-1")
		if r == nil || r.State != status.Sent {
			return false
		}
		msgID = r.ProviderMessageID
		return true
	}, "outage-1 sent")

	h.Redis.Stop()
	delivered := statusWebhook(t, msgID, status.Delivered)
	inbound := bytes.ReplaceAll(fixtures(t, "message.json")["text"], []byte("972987654321"), []byte("79001236002"))
	// The Redis client retries for a while before it gives up, so the requests run side by
	// side (in goroutines: -parallel is as low as the machine's core count).
	sig := func(b []byte) map[string]string {
		return map[string]string{"X-Hub-Signature-256": webhook.Sign(harness.AppSecret, b)}
	}
	checks := []struct {
		name, method, path, key string
		body                    []byte
		header                  map[string]string
		code                    int
	}{
		{"readyz", http.MethodGet, "/readyz", "", nil, nil, http.StatusServiceUnavailable},
		{"status webhook", http.MethodPost, "/webhooks/whatsapp", "", delivered, sig(delivered), http.StatusInternalServerError},
		{"inbound webhook", http.MethodPost, "/webhooks/whatsapp", "", inbound, sig(inbound), http.StatusInternalServerError},
		{"get notification", http.MethodGet, "/v1/notifications/outage-1", harness.APIKey, nil, nil, http.StatusServiceUnavailable},
	}
	bodies := make([][]byte, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() {
			code, out, err := send(c.method, h.APIURL+c.path, c.key, c.body, c.header)
			switch {
			case err != nil:
				t.Errorf("%s: %v", c.name, err)
			case code != c.code:
				t.Errorf("%s with Redis down: got %d %s, want %d", c.name, code, out, c.code)
			}
			bodies[i] = out
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if got := decode[struct {
		Status   string
		Problems map[string]string
	}](t, bodies[0]); got.Status != "not ready" || got.Problems["redis"] == "" || got.Problems["nats"] != "" {
		t.Fatalf("readyz with Redis down: %s, want not ready naming redis only", bodies[0])
	}

	h.Redis.Restart(t) // an empty Redis: the record is gone, as after a loss without persistence
	testutil.Eventually(t, wait, func() bool {
		resp, err := http.Get(h.APIURL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "ready again")
	if code, out := postSigned(t, h, inbound); code != http.StatusOK {
		t.Fatalf("inbound retry: %d %s", code, out)
	}
	if n, err := h.RDB.Exists(context.Background(), status.WindowKey("1122334455667", "+79001236002")).Result(); err != nil || n != 1 {
		t.Fatalf("window after the retry: %d %v", n, err)
	}
}

// TestInboundFromNumberUnknownToLibphonenumber: the fixture's own sender (972987654321)
// is not a valid number to libphonenumber, but Meta's wa_id is authoritative: the window
// still opens.
func TestInboundFromNumberUnknownToLibphonenumber(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{})
	body := []byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"1","phone_number_id":"100200300"},"messages":[{"from":"972987654321","id":"wamid.in-1","timestamp":"1700000000","type":"text","text":{"body":"hi"}}]}}]}]}`)
	req, _ := http.NewRequest(http.MethodPost, h.APIURL+"/webhooks/whatsapp", bytes.NewReader(body))
	req.Header.Set("X-Hub-Signature-256", webhook.Sign(harness.AppSecret, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if n, _ := h.RDB.Exists(context.Background(), status.WindowKey(harness.PhoneNumberID, "+972987654321")).Result(); n != 1 {
		t.Fatal("window not opened for a wa_id libphonenumber does not know")
	}
}
