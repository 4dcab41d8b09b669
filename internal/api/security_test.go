package api_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/herald-notify/herald/internal/api"
	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/harness"
	"github.com/herald-notify/herald/internal/telemetry"
	"github.com/herald-notify/herald/internal/webhook"
)

// postGrey posts body to /webhooks/grey with Authorization: Bearer token ("" sends none).
func postGrey(t *testing.T, url, token, body string) (int, []byte) {
	t.Helper()
	var hdr map[string]string
	if token != "" {
		hdr = map[string]string{"Authorization": "Bearer " + token}
	}
	return call(t, http.MethodPost, url+"/webhooks/grey", "", []byte(body), hdr)
}

const greyState = `{"typeWebhook":"stateInstanceChanged","instanceData":{"idInstance":1101000001,"wid":"15550000000@c.us","typeInstance":"whatsapp"},"timestamp":1700000000,"stateInstance":"authorized"}`

// TestGreyWebhookAuth: the grey gateway's webhooks are read only with its token; one Herald
// cannot parse is answered 200 (GREEN-API resends anything else for a day).
func TestGreyWebhookAuth(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{NoWorker: true})
	tests := []struct {
		name, token, body string
		code              int
	}{
		{"no token", "", greyState, http.StatusUnauthorized},
		{"wrong token", "not-" + harness.GreyWebhookToken, greyState, http.StatusUnauthorized},
		{"the gateway's token", harness.GreyWebhookToken, greyState, http.StatusOK},
		{"unparsable, authenticated", harness.GreyWebhookToken, `{"typeWebhook":"outgoingMessageStatus"}`, http.StatusOK},
		{"not JSON, authenticated", harness.GreyWebhookToken, `<html>`, http.StatusOK},
		{"unparsable, unauthenticated", "", `<html>`, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if code, out := postGrey(t, h.APIURL, tt.token, tt.body); code != tt.code {
				t.Fatalf("got %d %s, want %d", code, out, tt.code)
			}
		})
	}
}

// newUnit is an API server with no backing services, for the routes that need none, and
// the metrics it records.
func newUnit(t *testing.T, cfg api.Config) (*api.Server, *sdkmetric.ManualReader) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	m, err := telemetry.NewMetrics(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Metrics = m
	cfg.Logger = slog.New(slog.DiscardHandler)
	return api.New(cfg), reader
}

// webhookCount is herald_webhooks for source and result.
func webhookCount(t *testing.T, reader *sdkmetric.ManualReader, source, result string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if m.Name != "herald_webhooks" || !ok {
				continue
			}
			for _, dp := range sum.DataPoints {
				s, _ := dp.Attributes.Value("source")
				r, _ := dp.Attributes.Value("result")
				if s.AsString() == source && r.AsString() == result {
					n += dp.Value
				}
			}
		}
	}
	return n
}

func TestGreyWebhookWithoutTokenRefused(t *testing.T) {
	t.Parallel()
	srv, reader := newUnit(t, api.Config{}) // HERALD_GREY_WEBHOOK_TOKEN unset
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	for _, token := range []string{"", "anything", " "} {
		if code, out := postGrey(t, ts.URL, token, greyState); code != http.StatusUnauthorized {
			t.Fatalf("token %q with none configured: %d %s, want 401", token, code, out)
		}
	}
	if n := webhookCount(t, reader, "grey", "unauthorized"); n != 3 {
		t.Errorf("herald_webhooks{grey,unauthorized} = %d, want 3", n)
	}
}

func TestGreyWebhookUnparsableCounted(t *testing.T) {
	t.Parallel()
	srv, reader := newUnit(t, api.Config{GreyWebhookToken: "grey-token-0123456789"})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	if code, out := postGrey(t, ts.URL, "grey-token-0123456789", `{"typeWebhook":"incomingMessageReceived","senderData":{"chatId":"79001234567@c.us"}}`); code != http.StatusOK {
		t.Fatalf("got %d %s, want 200", code, out)
	}
	if n := webhookCount(t, reader, "grey", "malformed"); n != 1 {
		t.Errorf("herald_webhooks{grey,malformed} = %d, want 1", n)
	}
}

// TestOpsRoutes: metrics and profiles are never on the public handler; the ops handler has
// metrics, health, and profiles only when enabled.
func TestOpsRoutes(t *testing.T) {
	t.Parallel()
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "herald_jobs_total 0\n") })
	tests := []struct {
		name  string
		pprof bool
		ops   bool
		path  string
		want  int
	}{
		{"public: no metrics", false, false, "/metrics", http.StatusNotFound},
		{"public: no profiles, even enabled", true, false, "/debug/pprof/", http.StatusNotFound},
		{"public: health", false, false, "/healthz", http.StatusOK},
		{"ops: metrics", false, true, "/metrics", http.StatusOK},
		{"ops: health", false, true, "/healthz", http.StatusOK},
		{"ops: no profiles by default", false, true, "/debug/pprof/", http.StatusNotFound},
		{"ops: profiles with HERALD_PPROF", true, true, "/debug/pprof/", http.StatusOK},
		{"ops: no API", false, true, "/v1/templates", http.StatusNotFound},
		{"ops: no webhooks", false, true, "/webhooks/sms?id=x&type=1", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := newUnit(t, api.Config{MetricsHandler: metrics, Pprof: tt.pprof})
			h := http.Handler(srv)
			if tt.ops {
				h = srv.OpsHandler()
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if rec.Code != tt.want {
				t.Fatalf("GET %s = %d, want %d", tt.path, rec.Code, tt.want)
			}
		})
	}
}

// inboundAt is a signed-body inbound text from a customer at a given time.
func inboundAt(from, id, text string, at int64) []byte {
	return []byte(fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"WABA","changes":[{"field":"messages","value":{
"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550000000","phone_number_id":"100200300"},
"contacts":[{"profile":{"name":"Customer"},"wa_id":"%s"}],
"messages":[{"from":"%s","id":"%s","timestamp":"%d","type":"text","text":{"body":%q}}]}}]}]}`, from, from, id, at, text))
}

func userPreference(waID, value string, at int64) []byte {
	return []byte(fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"WABA","changes":[{"field":"user_preferences","value":{
"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550000000","phone_number_id":"100200300"},
"contacts":[{"profile":{"name":"Customer"},"wa_id":"%s"}],
"user_preferences":[{"wa_id":"%s","detail":"User requested to %s marketing messages","category":"marketing_messages","value":"%s","timestamp":%d}]}}]}]}`,
		waID, waID, value, value, at))
}

type suppressionState struct {
	Suppressed          bool  `json:"suppressed"`
	MarketingSuppressed *bool `json:"marketing_suppressed"`
}

func getSuppression(t *testing.T, h *harness.Herald, phone string) suppressionState {
	t.Helper()
	code, out := call(t, http.MethodGet, h.APIURL+"/v1/suppressions/"+phone, harness.APIKey, nil, nil)
	if code != http.StatusOK {
		t.Fatalf("GET suppression: %d %s", code, out)
	}
	return decode[suppressionState](t, out)
}

// TestConsentOrder: Meta redelivers webhooks, so an older START can arrive after a newer
// STOP; it must not lift the STOP (nor a late older STOP undo a START). Marketing
// preferences (user_preferences) are ordered the same way and suppress marketing only.
func TestConsentOrder(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{NoWorker: true})
	const t0 = 1767000000
	steps := []struct {
		name string
		body []byte
		// want after the step: suppressed (every message), marketing-suppressed
		sup, mkt bool
	}{
		{"STOP", inboundAt("79001237001", "wamid.stop", "СТОП", t0+20), true, false},
		{"an older START redelivered", inboundAt("79001237001", "wamid.start", "START", t0+10), true, false},
		{"a newer START", inboundAt("79001237001", "wamid.start2", "START", t0+30), false, false},
		{"the older STOP again", inboundAt("79001237001", "wamid.stop", "СТОП", t0+20), false, false},
		{"marketing stopped", userPreference("79001237001", "stop", t0+40), false, true},
		{"an older marketing resume", userPreference("79001237001", "resume", t0+35), false, true},
		{"marketing resumed", userPreference("79001237001", "resume", t0+50), false, false},
	}
	for _, s := range steps {
		if code, out := postSigned(t, h, s.body); code != http.StatusOK {
			t.Fatalf("%s: %d %s", s.name, code, out)
		}
		got := getSuppression(t, h, "+79001237001")
		if got.Suppressed != s.sup || got.MarketingSuppressed == nil || *got.MarketingSuppressed != s.mkt {
			t.Fatalf("after %s: suppressed %v, marketing %v; want %v, %v", s.name, got.Suppressed, show(got.MarketingSuppressed), s.sup, s.mkt)
		}
	}
	// The operator's controls: marketing only with ?category=marketing.
	for _, c := range []struct {
		method, query string
		sup, mkt      bool
	}{
		{http.MethodPost, "?category=marketing", false, true},
		{http.MethodDelete, "?category=marketing", false, false},
		{http.MethodPost, "", true, false},
	} {
		if code, out := call(t, c.method, h.APIURL+"/v1/suppressions/+79001237001"+c.query, harness.APIKey, nil, nil); code != http.StatusOK {
			t.Fatalf("%s %s: %d %s", c.method, c.query, code, out)
		}
		if got := getSuppression(t, h, "+79001237001"); got.Suppressed != c.sup || *got.MarketingSuppressed != c.mkt {
			t.Fatalf("after %s %s: %+v", c.method, c.query, got)
		}
	}
	if code, _ := call(t, http.MethodPost, h.APIURL+"/v1/suppressions/+79001237001?category=sms", harness.APIKey, nil, nil); code != http.StatusBadRequest {
		t.Fatalf("unknown category: %d, want 400", code)
	}
}

func show(b *bool) string {
	if b == nil {
		return "absent"
	}
	return strconv.FormatBool(*b)
}

// TestAPIKeyRate: each key has its own request rate; past it, 429 with Retry-After, and
// another key is not affected.
func TestAPIKeyRate(t *testing.T) {
	t.Parallel()
	const other = "other-key-0002"
	h := harness.Start(t, harness.Options{NoWorker: true, Config: func(c *config.Config) {
		c.APIKeys = "test:" + harness.APIKey + ",other:" + other
		c.APIRate, c.APIBurst = 0.5, 2
	}})
	get := func(key string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, h.APIURL+"/v1/templates", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	for i := range 2 {
		if resp := get(harness.APIKey); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d within the burst: %d", i, resp.StatusCode)
		}
	}
	resp := get(harness.APIKey)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("past the burst: %d, want 429", resp.StatusCode)
	}
	if after, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || after < 1 || after > 2 {
		t.Fatalf("Retry-After %q, want 1-2 seconds at 0.5/s", resp.Header.Get("Retry-After"))
	}
	if resp := get(other); resp.StatusCode != http.StatusOK {
		t.Fatalf("another key: %d, want 200", resp.StatusCode)
	}
}

// blockingBody is a request body that signals its first read and then blocks until
// released: the handler is then known to be past everything it does before reading.
type blockingBody struct {
	r       io.Reader
	reading chan struct{}
	release chan struct{}
	once    bool
}

func newBlockingBody(b []byte) *blockingBody {
	return &blockingBody{r: bytes.NewReader(b), reading: make(chan struct{}), release: make(chan struct{})}
}

func (b *blockingBody) Read(p []byte) (int, error) {
	if !b.once {
		b.once = true
		close(b.reading)
		<-b.release
	}
	return b.r.Read(p)
}

// serve runs one request through h in the background and returns its recorder when done.
func serve(h http.Handler, r *http.Request) <-chan *httptest.ResponseRecorder {
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		done <- rec
	}()
	return done
}

// TestAPIKeyBatchBytes: a key's batch bytes in flight are bounded: a batch larger than the
// whole budget is 413 before it is read; one that does not fit beside the key's other
// batches is 429 with Retry-After, and fits once they are done; another key's budget is
// its own.
func TestAPIKeyBatchBytes(t *testing.T) {
	t.Parallel()
	const budget = 1 << 20
	srv, _ := newUnit(t, api.Config{Keys: map[string]string{"key-a-000000": "a", "key-b-000000": "b"}, APIMaxInFlightBytes: budget})
	batch := func(key string, size int, chunked bool) (*http.Request, *blockingBody) {
		// The padding is inside the JSON value: the decoder must read all of it.
		b := append(append([]byte(`{"notifications":[`), bytes.Repeat([]byte(" "), size-len(`{"notifications":[]}`))...), "]}"...)
		body := newBlockingBody(b)
		r := httptest.NewRequest(http.MethodPost, "/v1/notifications/batch", body)
		r.ContentLength = int64(size)
		if chunked {
			r.ContentLength = -1
		}
		r.Header.Set("Authorization", "Bearer "+key)
		return r, body
	}
	// An empty batch that was read is 400 (no jobs); one refused unread is 413 or 429.
	tests := []struct {
		name    string
		size    int
		chunked bool
		key     string
		want    int
	}{
		{"larger than the whole budget", 2 * budget, false, "key-a-000000", http.StatusRequestEntityTooLarge},
		{"does not fit beside the held one", 700 << 10, false, "key-a-000000", http.StatusTooManyRequests},
		{"unknown length, does not fit", 700 << 10, true, "key-a-000000", http.StatusTooManyRequests},
		{"fits beside it", 200 << 10, false, "key-a-000000", http.StatusBadRequest},
		{"another key", 700 << 10, false, "key-b-000000", http.StatusBadRequest},
	}
	held, hb := batch("key-a-000000", 700<<10, false)
	heldDone := serve(srv, held)
	<-hb.reading // 700 KiB of key a's budget are reserved
	for _, tt := range tests {
		r, body := batch(tt.key, tt.size, tt.chunked)
		close(body.release) // these are not held
		rec := <-serve(srv, r)
		if rec.Code != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, rec.Code, rec.Body, tt.want)
		}
		if tt.want == http.StatusTooManyRequests && rec.Header().Get("Retry-After") == "" {
			t.Errorf("%s: 429 without Retry-After", tt.name)
		}
	}
	close(hb.release)
	if rec := <-heldDone; rec.Code != http.StatusBadRequest {
		t.Fatalf("the held batch: %d %s, want 400 (read, no jobs)", rec.Code, rec.Body)
	}
	r, body := batch("key-a-000000", 700<<10, false)
	close(body.release)
	if rec := <-serve(srv, r); rec.Code != http.StatusBadRequest {
		t.Fatalf("a batch once the budget is free: %d %s, want 400 (read, no jobs)", rec.Code, rec.Body)
	}
}

// TestWebhookLimits: webhooks are read before they can be authenticated, so each route has
// a bound on those in progress (503 with Retry-After beyond it, the body left unread) and
// on its body size.
func TestWebhookLimits(t *testing.T) {
	t.Parallel()
	srv, reader := newUnit(t, api.Config{WebhookMaxInFlight: 1, WhiteAppSecret: "app-secret", GreyWebhookToken: "grey-token-0123456789"})
	post := func(path string, body io.Reader) *http.Request {
		r := httptest.NewRequest(http.MethodPost, path, body)
		r.Header.Set("Authorization", "Bearer grey-token-0123456789")
		return r
	}
	hb := newBlockingBody([]byte(`{}`))
	heldDone := serve(srv, post("/webhooks/whatsapp", hb))
	<-hb.reading // the one WhatsApp slot is taken

	second := newBlockingBody([]byte(`{}`))
	close(second.release)
	rec := <-serve(srv, post("/webhooks/whatsapp", second))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("a second webhook while one is read: %d (Retry-After %q), want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	if second.once {
		t.Error("the refused webhook's body was read")
	}
	if n := webhookCount(t, reader, "whatsapp", "busy"); n != 1 {
		t.Errorf("herald_webhooks{whatsapp,busy} = %d, want 1", n)
	}
	// The other routes have their own bound.
	if rec := <-serve(srv, post("/webhooks/grey", strings.NewReader(greyState))); rec.Code != http.StatusOK {
		t.Errorf("grey webhook while the WhatsApp route is full: %d %s", rec.Code, rec.Body)
	}
	close(hb.release)
	if rec := <-heldDone; rec.Code != http.StatusUnauthorized { // unsigned: read, then refused
		t.Fatalf("the held webhook: %d %s, want 401", rec.Code, rec.Body)
	}
	body := []byte(`{"object":"whatsapp_business_account","entry":[]}`)
	r := post("/webhooks/whatsapp", bytes.NewReader(body))
	r.Header.Set("X-Hub-Signature-256", webhook.Sign("app-secret", body))
	if rec := <-serve(srv, r); rec.Code != http.StatusOK {
		t.Fatalf("a webhook once the slot is free: %d %s", rec.Code, rec.Body)
	}
	big := append(bytes.Clone(body), bytes.Repeat([]byte(" "), api.MaxWebhookBody)...)
	r = post("/webhooks/whatsapp", bytes.NewReader(big))
	r.Header.Set("X-Hub-Signature-256", webhook.Sign("app-secret", big))
	if rec := <-serve(srv, r); rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("a body above 1 MiB: %d, want 413", rec.Code)
	}
}
