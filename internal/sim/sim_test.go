package sim_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/testutil"
)

const (
	phoneID = "107878721936019"
	wabaID  = "114503234599312"
	token   = "EAAG-test-token"
	secret  = "app-secret"
)

// templateBody is the request of send_template_with_success_response_by_passing_components_json.yml
// (ruby_whatsapp_sdk), "to" as a JSON number.
const templateBody = `{"messaging_product":"whatsapp","recipient_type":"individual","to":13437772910,"type":"template","template":{"name":"sample_shipping_confirmation","language":{"code":"en_US"},"components":[{"type":"body","parameters":[{"type":"TEXT","text":"2 hours"}]}]}}`

// start runs a simulator behind a real loopback listener, with its delivery goroutines
// stopped when the test ends.
func start(t *testing.T, cfg sim.Config) (*sim.Sim, *httptest.Server) {
	t.Helper()
	s := sim.New(cfg)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	s.Start(t.Context())
	return s, srv
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, method, u, auth, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func send(t *testing.T, srv *httptest.Server, body string) response {
	t.Helper()
	return do(t, http.MethodPost, srv.URL+"/v21.0/"+phoneID+"/messages", token, body)
}

func textBody(to, jobID string) string {
	return fmt.Sprintf(`{"messaging_product":"whatsapp","to":%q,"type":"text","text":{"body":"hello"},"biz_opaque_callback_data":%q}`, to, jobID)
}

// graphErr is a decoded Graph API error body.
type graphErr struct {
	Error struct {
		Message      string `json:"message"`
		Type         string `json:"type"`
		Code         int    `json:"code"`
		ErrorSubcode int    `json:"error_subcode"`
		ErrorData    struct {
			MessagingProduct string `json:"messaging_product"`
			Details          string `json:"details"`
		} `json:"error_data"`
		FBTraceID string `json:"fbtrace_id"`
	} `json:"error"`
}

func decodeErr(t *testing.T, r response) graphErr {
	t.Helper()
	var e graphErr
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", r.body, err)
	}
	if e.Error.Code == 0 || e.Error.Message == "" || e.Error.Type == "" || e.Error.FBTraceID == "" {
		t.Fatalf("error body %s lacks code, message, type or fbtrace_id", r.body)
	}
	return e
}

func TestSendSuccess(t *testing.T) {
	t.Parallel()
	s, srv := start(t, sim.Config{PhoneNumberID: phoneID, Token: token})

	tests := []struct {
		name  string
		body  string
		input string
		want  sim.Message
	}{
		{
			name: "fixture template, to as a number", body: templateBody, input: "13437772910",
			want: sim.Message{To: "13437772910", Type: "template", Template: "sample_shipping_confirmation", Language: "en_US"},
		},
		{
			name:  "text with tracker, to with plus",
			body:  `{"messaging_product":"whatsapp","recipient_type":"individual","to":"+79001234567","type":"text","text":{"body":"Заказ готов"},"biz_opaque_callback_data":"job-1"}`,
			input: "+79001234567",
			want:  sim.Message{To: "79001234567", Type: "text", Text: "Заказ готов", JobID: "job-1"},
		},
		{
			name:  "type defaults to text",
			body:  `{"messaging_product":"whatsapp","to":"79001234568","text":{"body":"hi"}}`,
			input: "79001234568",
			want:  sim.Message{To: "79001234568", Type: "text", Text: "hi"},
		},
		{
			name:  "image by link",
			body:  `{"messaging_product":"whatsapp","to":"79001234569","type":"image","image":{"link":"https://shop.example/a.png","caption":"look"}}`,
			input: "79001234569",
			want:  sim.Message{To: "79001234569", Type: "image", Text: "look"},
		},
		{
			name:  "document with filename",
			body:  `{"messaging_product":"whatsapp","to":"79001234570","type":"document","document":{"link":"https://shop.example/r.pdf","filename":"receipt.pdf"}}`,
			input: "79001234570",
			want:  sim.Message{To: "79001234570", Type: "document"},
		},
		{
			name:  "video by id",
			body:  `{"messaging_product":"whatsapp","to":"79001234571","type":"video","video":{"id":"1234"}}`,
			input: "79001234571",
			want:  sim.Message{To: "79001234571", Type: "video"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := send(t, srv, tt.body)
			if r.status != http.StatusOK {
				t.Fatalf("status %d, body %s", r.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			var resp struct {
				Messages []struct {
					ID string `json:"id"`
				} `json:"messages"`
			}
			if err := json.Unmarshal(r.body, &resp); err != nil || len(resp.Messages) != 1 {
				t.Fatalf("response %s: %v", r.body, err)
			}
			id := resp.Messages[0].ID
			if !strings.HasPrefix(id, "wamid.") || len(id) < 20 {
				t.Errorf("message id %q is not a wamid", id)
			}
			// Exactly the fixture's shape, field order included.
			want := `{"messaging_product":"whatsapp","contacts":[{"input":"` + tt.input + `","wa_id":"` + tt.want.To +
				`"}],"messages":[{"id":"` + id + `","message_status":"accepted"}]}`
			if string(r.body) != want {
				t.Errorf("body\n got %s\nwant %s", r.body, want)
			}
			i := slices.IndexFunc(s.Messages(), func(m sim.Message) bool { return m.MessageID == id })
			if i < 0 {
				t.Fatalf("message %s not recorded", id)
			}
			got := s.Messages()[i]
			if got.Channel != "white" || got.To != tt.want.To || got.Type != tt.want.Type ||
				got.Template != tt.want.Template || got.Language != tt.want.Language ||
				got.Text != tt.want.Text || got.JobID != tt.want.JobID || got.ErrorCode != 0 ||
				got.HTTPStatus != http.StatusOK || string(got.Body) != tt.body || got.At.IsZero() || got.Seq == 0 {
				t.Errorf("recorded %+v, want %+v", got, tt.want)
			}
		})
	}
	t.Cleanup(func() {
		if s.Count() != len(tests) {
			t.Errorf("Count() = %d, want %d", s.Count(), len(tests))
		}
	})
}

func TestSendIDsUnique(t *testing.T) {
	t.Parallel()
	s1, srv1 := start(t, sim.Config{})
	_, srv2 := start(t, sim.Config{})
	seen := map[string]bool{}
	for i := range 20 {
		srv := srv1
		if i%2 == 1 {
			srv = srv2
		}
		r := send(t, srv, textBody("79001234567", ""))
		var resp struct {
			Messages []struct{ ID string } `json:"messages"`
		}
		if err := json.Unmarshal(r.body, &resp); err != nil {
			t.Fatal(err)
		}
		if seen[resp.Messages[0].ID] {
			t.Fatalf("id %s repeated", resp.Messages[0].ID)
		}
		seen[resp.Messages[0].ID] = true
	}
	msgs := s1.Messages()
	for i, m := range msgs {
		if m.Seq != int64(i+1) {
			t.Fatalf("message %d has Seq %d: not in arrival order", i, m.Seq)
		}
	}
}

func TestSendMalformed(t *testing.T) {
	t.Parallel()
	s, srv := start(t, sim.Config{Token: token})

	tests := []struct {
		name, body, problem string
	}{
		{"not JSON", `{"messaging_product":`, "Invalid JSON"},
		{"no messaging_product", `{"to":"79001234567","type":"text","text":{"body":"x"}}`, "messaging_product is required"},
		{"wrong messaging_product", `{"messaging_product":"sms","to":"79001234567","type":"text","text":{"body":"x"}}`, "messaging_product must be 'whatsapp'"},
		{"group recipient", `{"messaging_product":"whatsapp","recipient_type":"group","to":"79001234567","text":{"body":"x"}}`, "recipient_type"},
		{"no to", `{"messaging_product":"whatsapp","type":"text","text":{"body":"x"}}`, "to is required"},
		{"letters in to", `{"messaging_product":"whatsapp","to":"call me","type":"text","text":{"body":"x"}}`, "Param to"},
		{"to as an object", `{"messaging_product":"whatsapp","to":{"n":1},"type":"text","text":{"body":"x"}}`, "Param to"},
		{"unknown type", `{"messaging_product":"whatsapp","to":"79001234567","type":"sticker","sticker":{"id":"1"}}`, "Param type"},
		{"template missing", `{"messaging_product":"whatsapp","to":"79001234567","type":"template"}`, "template is required"},
		{"template not an object", `{"messaging_product":"whatsapp","to":"79001234567","type":"template","template":"order_ready"}`, "template must be an object"},
		{"template without name", `{"messaging_product":"whatsapp","to":"79001234567","type":"template","template":{"language":{"code":"ru"}}}`, "template['name'] is required"},
		{"template without language", `{"messaging_product":"whatsapp","to":"79001234567","type":"template","template":{"name":"x"}}`, "template['language'] is required"},
		{"template without language code", `{"messaging_product":"whatsapp","to":"79001234567","type":"template","template":{"name":"x","language":{}}}`, "template['language']['code'] is required"},
		{"components not an array", `{"messaging_product":"whatsapp","to":"79001234567","type":"template","template":{"name":"x","language":{"code":"ru"},"components":{"type":"body"}}}`, "components'] must be an array"},
		{"text without body", `{"messaging_product":"whatsapp","to":"79001234567","type":"text","text":{}}`, "text['body'] is required"},
		{"text too long", `{"messaging_product":"whatsapp","to":"79001234567","type":"text","text":{"body":"` + strings.Repeat("я", 4097) + `"}}`, "at most 4096"},
		{"image without link or id", `{"messaging_product":"whatsapp","to":"79001234567","type":"image","image":{"caption":"x"}}`, "either 'id' or 'link'"},
		{"image with a bad link", `{"messaging_product":"whatsapp","to":"79001234567","type":"image","image":{"link":"ftp://x/y.png"}}`, "valid http or https URL"},
		{"document missing", `{"messaging_product":"whatsapp","to":"79001234567","type":"document"}`, "document is required"},
		{"opaque data too long", `{"messaging_product":"whatsapp","to":"79001234567","text":{"body":"x"},"biz_opaque_callback_data":"` + strings.Repeat("a", 513) + `"}`, "biz_opaque_callback_data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := send(t, srv, tt.body)
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d, body %s", r.status, r.body)
			}
			e := decodeErr(t, r)
			if e.Error.Code != 100 || e.Error.Type != "OAuthException" {
				t.Errorf("code %d type %q, want 100 OAuthException", e.Error.Code, e.Error.Type)
			}
			if !strings.Contains(e.Error.Message, tt.problem) || !strings.Contains(e.Error.ErrorData.Details, tt.problem) {
				t.Errorf("message %q / details %q do not name %q", e.Error.Message, e.Error.ErrorData.Details, tt.problem)
			}
		})
	}
	t.Cleanup(func() {
		if s.Count() != 0 || len(s.Messages()) != 0 {
			t.Errorf("malformed sends were recorded: count %d, messages %d", s.Count(), len(s.Messages()))
		}
		if got := s.Stats().Channels["white"].Rejected; got != int64(len(tests)) {
			t.Errorf("rejected = %d, want %d", got, len(tests))
		}
	})
}

func TestSendAuthAndPath(t *testing.T) {
	t.Parallel()
	s, srv := start(t, sim.Config{PhoneNumberID: phoneID, Token: token})
	body := textBody("79001234567", "")

	tests := []struct {
		name, method, path, auth string
		status, code, subcode    int
		errType                  string
	}{
		{"wrong token", "POST", "/v21.0/" + phoneID + "/messages", "nope", 401, 190, 0, "OAuthException"},
		{"no token", "POST", "/v21.0/" + phoneID + "/messages", "", 401, 190, 0, "OAuthException"},
		{"unknown phone number id", "POST", "/v21.0/123123/messages", token, 400, 100, 33, "GraphMethodException"},
		{"GET on messages", "GET", "/v21.0/" + phoneID + "/messages", token, 400, 100, 33, "GraphMethodException"},
		{"unknown edge", "POST", "/v21.0/" + phoneID + "/contacts", token, 400, 2500, 0, "OAuthException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := do(t, tt.method, srv.URL+tt.path, tt.auth, body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d; body %s", r.status, tt.status, r.body)
			}
			e := decodeErr(t, r)
			if e.Error.Code != tt.code || e.Error.ErrorSubcode != tt.subcode || e.Error.Type != tt.errType {
				t.Errorf("error %+v, want code %d subcode %d type %s", e.Error, tt.code, tt.subcode, tt.errType)
			}
		})
	}

	t.Run("access_token query parameter", func(t *testing.T) {
		t.Parallel()
		r := do(t, "POST", srv.URL+"/v21.0/"+phoneID+"/messages?access_token="+token, "", body)
		if r.status != http.StatusOK {
			t.Fatalf("status %d, body %s", r.status, r.body)
		}
	})
	t.Run("not a Graph path", func(t *testing.T) {
		t.Parallel()
		if r := do(t, "GET", srv.URL+"/nothing", "", ""); r.status != http.StatusNotFound {
			t.Fatalf("status %d", r.status)
		}
	})
	t.Cleanup(func() {
		if got := s.Stats().Channels["white"].Rejected; got != 4 {
			t.Errorf("rejected = %d, want 4 (the unknown edge is no send)", got)
		}
	})
}

// whReceiver is a webhook endpoint that verifies Meta's signature and records statuses in
// arrival order.
type whReceiver struct {
	srv    *httptest.Server
	fail   atomic.Int32 // POSTs still to answer 500
	mu     sync.Mutex
	posts  int
	badSig int
	got    []recvStatus
	raw    [][]byte
}

type recvStatus struct {
	ID, Status, Recipient, Tracker, PhoneID, Timestamp string
	ErrCode                                            int
	ErrTitle                                           string
	HasConversation                                    bool
}

func newReceiver(t *testing.T, appSecret string) *whReceiver {
	rc := &whReceiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte(appSecret))
		mac.Write(body)
		want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		if !hmac.Equal([]byte(r.Header.Get("X-Hub-Signature-256")), []byte(want)) {
			rc.mu.Lock()
			rc.badSig++
			rc.mu.Unlock()
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if rc.fail.Add(-1) >= 0 {
			http.Error(w, "try later", http.StatusInternalServerError)
			return
		}
		var env struct {
			Object string `json:"object"`
			Entry  []struct {
				ID      string `json:"id"`
				Changes []struct {
					Field string `json:"field"`
					Value struct {
						MessagingProduct string `json:"messaging_product"`
						Metadata         struct {
							DisplayPhoneNumber string `json:"display_phone_number"`
							PhoneNumberID      string `json:"phone_number_id"`
						} `json:"metadata"`
						Statuses []struct {
							ID           string          `json:"id"`
							Status       string          `json:"status"`
							Timestamp    string          `json:"timestamp"`
							RecipientID  string          `json:"recipient_id"`
							Tracker      string          `json:"biz_opaque_callback_data"`
							Conversation json.RawMessage `json:"conversation"`
							Errors       []struct {
								Code  int    `json:"code"`
								Title string `json:"title"`
							} `json:"errors"`
						} `json:"statuses"`
					} `json:"value"`
				} `json:"changes"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(body, &env); err != nil || env.Object != "whatsapp_business_account" {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		defer rc.mu.Unlock()
		rc.posts++
		rc.raw = append(rc.raw, body)
		for _, e := range env.Entry {
			for _, c := range e.Changes {
				if c.Field != "messages" || c.Value.MessagingProduct != "whatsapp" || c.Value.Metadata.DisplayPhoneNumber == "" {
					continue
				}
				for _, st := range c.Value.Statuses {
					r := recvStatus{ID: st.ID, Status: st.Status, Recipient: st.RecipientID, Tracker: st.Tracker,
						PhoneID: c.Value.Metadata.PhoneNumberID, Timestamp: st.Timestamp, HasConversation: st.Conversation != nil}
					if len(st.Errors) > 0 {
						r.ErrCode, r.ErrTitle = st.Errors[0].Code, st.Errors[0].Title
					}
					rc.got = append(rc.got, r)
				}
			}
		}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *whReceiver) statuses() []recvStatus {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

func (rc *whReceiver) counts() (posts, badSig int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.posts, rc.badSig
}

// byMessage groups received statuses per message id, keeping arrival order.
func byMessage(sts []recvStatus) map[string][]string {
	out := map[string][]string{}
	for _, st := range sts {
		out[st.ID] = append(out[st.ID], st.Status)
	}
	return out
}

func sentIDs(t *testing.T, s *sim.Sim) []string {
	t.Helper()
	var ids []string
	for _, m := range s.Messages() {
		if m.MessageID != "" {
			ids = append(ids, m.MessageID)
		}
	}
	return ids
}

func TestWebhooksSignedAndOrdered(t *testing.T) {
	t.Parallel()
	for _, delay := range []time.Duration{0, 3 * time.Millisecond} {
		t.Run("delay "+delay.String(), func(t *testing.T) {
			t.Parallel()
			rc := newReceiver(t, secret)
			s, srv := start(t, sim.Config{
				PhoneNumberID: phoneID, WABAID: wabaID, Token: token, AppSecret: secret,
				WebhookURL: rc.srv.URL, StatusDelay: delay,
			})
			const n = 60
			for i := range n {
				if r := send(t, srv, textBody(fmt.Sprintf("7900123%04d", i), fmt.Sprintf("job-%d", i))); r.status != 200 {
					t.Fatalf("send %d: %d %s", i, r.status, r.body)
				}
			}
			testutil.Eventually(t, 5*time.Second, func() bool { return len(rc.statuses()) >= 3*n },
				"%d statuses of %d", len(rc.statuses()), 3*n)

			posts, badSig := rc.counts()
			if badSig != 0 {
				t.Fatalf("%d webhooks with a bad signature", badSig)
			}
			if posts >= 3*n {
				t.Errorf("%d POSTs for %d statuses: no batching", posts, 3*n)
			}
			sts := rc.statuses()
			if len(sts) != 3*n {
				t.Fatalf("%d statuses, want %d", len(sts), 3*n)
			}
			byID := byMessage(sts)
			jobs := map[string]sim.Message{}
			for _, m := range s.Messages() {
				jobs[m.MessageID] = m
			}
			for _, id := range sentIDs(t, s) {
				if got := byID[id]; !slices.Equal(got, []string{"sent", "delivered", "read"}) {
					t.Errorf("message %s: statuses %v, want sent, delivered, read in order", id, got)
				}
			}
			for _, st := range sts {
				m := jobs[st.ID]
				if st.Recipient != m.To || st.Tracker != m.JobID || st.PhoneID != phoneID || !st.HasConversation {
					t.Fatalf("status %+v does not match message %+v", st, m)
				}
				if ts, err := strconv.ParseInt(st.Timestamp, 10, 64); err != nil || time.Since(time.Unix(ts, 0)) > time.Minute {
					t.Fatalf("timestamp %q", st.Timestamp)
				}
			}
			// The receiver records a POST before the simulator sees the answer and counts it.
			testutil.Eventually(t, 5*time.Second, func() bool { return s.Stats().Webhooks.Statuses == 3*n },
				"stats count %d statuses", s.Stats().Webhooks.Statuses)
			if got := s.Stats().Webhooks; got.Statuses != 3*n || got.Dropped != 0 || got.Posts != int64(posts) {
				t.Errorf("webhook stats %+v, want %d statuses, %d posts, none dropped", got, 3*n, posts)
			}
		})
	}
}

// keys returns the object keys of v at each path, for comparing shapes.
func keys(v any, prefix string, out map[string][]string) {
	switch x := v.(type) {
	case map[string]any:
		var ks []string
		for k, c := range x {
			ks = append(ks, k)
			keys(c, prefix+"."+k, out)
		}
		slices.Sort(ks)
		out[prefix] = ks
	case []any:
		if len(x) > 0 {
			keys(x[0], prefix+"[]", out)
		}
	}
}

func TestWebhookShapeMatchesFixture(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(testutil.WhatsAppFixtures(), "webhooks", "message_status.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fixtures map[string]any
	if err := json.Unmarshal(raw, &fixtures); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		fixture string
		rule    *sim.Rule
		status  string
	}{
		{"sent with tracker", "with_tracker", nil, "sent"},
		{"delivered", "delivered", nil, "delivered"},
		{"read", "read", nil, "read"},
		{"failed", "failed", &sim.Rule{Code: 131026, Async: true}, "failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rc := newReceiver(t, secret)
			s, srv := start(t, sim.Config{AppSecret: secret, WebhookURL: rc.srv.URL, Statuses: []string{tt.status}})
			if tt.rule != nil {
				s.AddRule(*tt.rule)
			}
			body := textBody("79001234567", "")
			if tt.fixture == "with_tracker" {
				body = textBody("79001234567", "some data")
			}
			if r := send(t, srv, body); r.status != 200 {
				t.Fatalf("send: %d %s", r.status, r.body)
			}
			testutil.Eventually(t, 5*time.Second, func() bool { return len(rc.statuses()) > 0 }, "no webhook")
			rc.mu.Lock()
			gotRaw := rc.raw[0]
			rc.mu.Unlock()
			var got any
			if err := json.Unmarshal(gotRaw, &got); err != nil {
				t.Fatal(err)
			}
			want, have := map[string][]string{}, map[string][]string{}
			keys(fixtures[tt.fixture], "", want)
			keys(got, "", have)
			for path, wk := range want {
				if strings.Contains(path, "contacts") {
					continue // status webhooks need no contacts; the simulator sends none
				}
				wk = slices.DeleteFunc(slices.Clone(wk), func(k string) bool { return k == "contacts" })
				if !slices.Equal(have[path], wk) {
					t.Errorf("keys at %q: got %v, want %v (fixture %s)", path, have[path], wk, tt.fixture)
				}
			}
			if tt.status == "failed" {
				st := rc.statuses()[0]
				if st.ErrCode != 131026 || st.ErrTitle != "Message undeliverable" {
					t.Errorf("failed status error %d %q", st.ErrCode, st.ErrTitle)
				}
			}
		})
	}
}

func TestWebhookRetry(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, secret)
	rc.fail.Store(2)
	s, srv := start(t, sim.Config{AppSecret: secret, WebhookURL: rc.srv.URL, Statuses: []string{"sent"}})
	if r := send(t, srv, textBody("79001234567", "job-r")); r.status != 200 {
		t.Fatalf("send: %d", r.status)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return s.Stats().Webhooks.Posts == 1 }, "status not delivered after retries")
	if got := rc.statuses(); len(got) != 1 || got[0].Tracker != "job-r" {
		t.Errorf("received %+v, want the one sent status", got)
	}
	st := s.Stats().Webhooks
	if st.Retries != 2 || st.Dropped != 0 || st.Posts != 1 {
		t.Errorf("stats %+v, want 2 retries, 1 post, 0 dropped", st)
	}
}

func TestWebhookDropCounted(t *testing.T) {
	t.Parallel()
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(dead.Close)
	s, srv := start(t, sim.Config{WebhookURL: dead.URL})
	if r := send(t, srv, textBody("79001234567", "")); r.status != 200 {
		t.Fatalf("send: %d", r.status)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return s.Stats().Webhooks.Dropped == 3 },
		"dropped = %d, want 3", s.Stats().Webhooks.Dropped)
	if st := s.Stats().Webhooks; st.Posts != 0 || st.Retries < 4 {
		t.Errorf("stats %+v, want no post and the retries counted", st)
	}
}

func TestRules(t *testing.T) {
	t.Parallel()
	const target, other = "79001110000", "79002220000"

	tests := []struct {
		name       string
		rule       sim.Rule
		to         string
		wantStatus int
		wantCode   int
		wantTitle  string
	}{
		{"undeliverable for one recipient", sim.Rule{To: "+" + target, Code: 131026}, target, 400, 131026, "Message undeliverable"},
		{"other recipient passes", sim.Rule{To: target, Code: 131026}, other, 200, 0, ""},
		{"throughput limit answers 400 like Meta", sim.Rule{Code: 130429}, target, 400, 130429, "Rate limit hit"},
		{"pair rate limit", sim.Rule{Code: 131056}, target, 400, 131056, "(Business Account, Consumer Account) pair rate limit hit"},
		{"re-engagement", sim.Rule{Code: 131047}, target, 400, 131047, "Re-engagement message"},
		{"invalid parameter", sim.Rule{Code: 100}, target, 400, 100, "Invalid parameter"},
		{"expired token answers 401", sim.Rule{Code: 190}, target, 401, 190, "Access token has expired"},
		{"explicit status", sim.Rule{Code: 130429, HTTPStatus: 429}, target, 429, 130429, "Rate limit hit"},
		{"bare 503", sim.Rule{HTTPStatus: 503}, target, 503, 0, ""},
		{"sms rule leaves white alone", sim.Rule{Channel: "sms", Code: 131026}, target, 200, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, srv := start(t, sim.Config{})
			s.AddRule(tt.rule)
			r := send(t, srv, textBody(tt.to, "job"))
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", r.status, tt.wantStatus, r.body)
			}
			m := s.Messages()
			if len(m) != 1 || m[0].HTTPStatus != tt.wantStatus || m[0].ErrorCode != tt.wantCode {
				t.Fatalf("recorded %+v", m)
			}
			switch {
			case tt.wantCode != 0:
				e := decodeErr(t, r)
				wantMsg := "(#" + strconv.Itoa(tt.wantCode) + ") " + tt.wantTitle
				if e.Error.Code != tt.wantCode || e.Error.Message != wantMsg || e.Error.Type != "OAuthException" ||
					e.Error.ErrorData.MessagingProduct != "whatsapp" || e.Error.ErrorData.Details == "" {
					t.Errorf("error %+v, want code %d message %q with error_data", e.Error, tt.wantCode, wantMsg)
				}
				if m[0].MessageID != "" || s.Count() != 0 {
					t.Errorf("a failed send was counted or given an id")
				}
			case tt.wantStatus >= 500:
				if json.Valid(r.body) && bytes.Contains(r.body, []byte(`"error"`)) {
					t.Errorf("a bare HTTP error answered a Graph body: %s", r.body)
				}
			default:
				if s.Count() != 1 {
					t.Errorf("Count() = %d, want 1", s.Count())
				}
			}
		})
	}
}

func TestRuleTimesAndRate(t *testing.T) {
	t.Parallel()
	t.Run("times", func(t *testing.T) {
		t.Parallel()
		s, srv := start(t, sim.Config{})
		s.AddRule(sim.Rule{Code: 130429, Times: 2})
		var got []int
		for range 4 {
			got = append(got, send(t, srv, textBody("79001234567", "")).status)
		}
		if !slices.Equal(got, []int{400, 400, 200, 200}) {
			t.Errorf("statuses %v, want two failures then passes", got)
		}
	})
	t.Run("rate", func(t *testing.T) {
		t.Parallel()
		s, srv := start(t, sim.Config{})
		s.AddRule(sim.Rule{Code: 131000, Rate: 0.5})
		const n = 400
		failed := 0
		for range n {
			if send(t, srv, textBody("79001234567", "")).status != 200 {
				failed++
			}
		}
		// Binomial(400, 0.5): a standard deviation of 10, so 120..280 is eight of them.
		if failed < 120 || failed > 280 {
			t.Errorf("%d of %d failed at rate 0.5", failed, n)
		}
		if st := s.Stats().Channels["white"]; st.Failed != int64(failed) || st.Accepted != int64(n-failed) {
			t.Errorf("stats %+v, want %d failed", st, failed)
		}
	})
	t.Run("first matching rule wins, clear removes", func(t *testing.T) {
		t.Parallel()
		s, srv := start(t, sim.Config{})
		s.AddRule(sim.Rule{To: "79001234567", Code: 131047})
		s.AddRule(sim.Rule{Code: 131026})
		if e := decodeErr(t, send(t, srv, textBody("79001234567", ""))); e.Error.Code != 131047 {
			t.Errorf("code %d, want the first rule's 131047", e.Error.Code)
		}
		if e := decodeErr(t, send(t, srv, textBody("79009999999", ""))); e.Error.Code != 131026 {
			t.Errorf("code %d, want the catch-all's 131026", e.Error.Code)
		}
		s.ClearRules()
		if r := send(t, srv, textBody("79001234567", "")); r.status != 200 {
			t.Errorf("status %d after ClearRules", r.status)
		}
	})
}

func TestRuleAsync(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, secret)
	s, srv := start(t, sim.Config{AppSecret: secret, WebhookURL: rc.srv.URL})
	s.AddRule(sim.Rule{To: "79001110000", Code: 131047, Async: true})
	if r := send(t, srv, textBody("79001110000", "job-a")); r.status != 200 {
		t.Fatalf("async rule must accept the send: %d %s", r.status, r.body)
	}
	if r := send(t, srv, textBody("79002220000", "job-b")); r.status != 200 {
		t.Fatalf("send: %d", r.status)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return len(rc.statuses()) == 5 }, "%d statuses", len(rc.statuses()))
	byID := map[string][]recvStatus{}
	for _, st := range rc.statuses() {
		byID[st.Tracker] = append(byID[st.Tracker], st)
	}
	a := byID["job-a"]
	if len(a) != 2 || a[0].Status != "sent" || a[1].Status != "failed" || a[1].ErrCode != 131047 || a[1].ErrTitle != "Re-engagement message" {
		t.Errorf("async failure statuses %+v, want sent then failed 131047", a)
	}
	if b := byID["job-b"]; len(b) != 3 || b[2].Status != "read" {
		t.Errorf("unaffected message statuses %+v", b)
	}
	if st := s.Stats().Channels["white"]; st.Accepted != 2 || st.AsyncFailed != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestTemplatesPagination(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(testutil.WhatsAppFixtures(), "templates", "definitions-examples.json"))
	if err != nil {
		t.Fatal(err)
	}
	var defs map[string]json.RawMessage
	if err := json.Unmarshal(raw, &defs); err != nil {
		t.Fatal(err)
	}
	var templates []json.RawMessage
	var names []string
	for _, k := range slices.Sorted(maps.Keys(defs)) {
		templates = append(templates, defs[k])
		names = append(names, k)
	}
	_, srv := start(t, sim.Config{WABAID: wabaID, Token: token, Templates: templates})
	base := srv.URL + "/v21.0/" + wabaID + "/message_templates"

	type page struct {
		Data []struct {
			Name string `json:"name"`
		} `json:"data"`
		Paging *struct {
			Cursors struct {
				Before string `json:"before"`
				After  string `json:"after"`
			} `json:"cursors"`
			Next     string `json:"next"`
			Previous string `json:"previous"`
		} `json:"paging"`
	}
	get := func(t *testing.T, u string) page {
		t.Helper()
		r := do(t, "GET", u, token, "")
		if r.status != 200 {
			t.Fatalf("GET %s: %d %s", u, r.status, r.body)
		}
		var p page
		if err := json.Unmarshal(r.body, &p); err != nil {
			t.Fatal(err)
		}
		return p
	}

	tests := []struct {
		name  string
		limit string
		sizes []int
	}{
		{"limit 3", "?limit=3", []int{3, 3, 1}},
		{"limit 7", "?limit=7", []int{7}},
		{"default limit 25", "", []int{7}},
		{"limit 1", "?limit=1", []int{1, 1, 1, 1, 1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			var sizes []int
			u := base + tt.limit
			for u != "" {
				p := get(t, u)
				if p.Paging == nil || p.Paging.Cursors.Before == "" || p.Paging.Cursors.After == "" {
					t.Fatalf("page without cursors")
				}
				sizes = append(sizes, len(p.Data))
				for _, d := range p.Data {
					got = append(got, d.Name)
				}
				if p.Paging.Next != "" && !strings.HasPrefix(p.Paging.Next, srv.URL+"/v21.0/"+wabaID+"/message_templates?") {
					t.Fatalf("next %q is not an absolute URL of the listing", p.Paging.Next)
				}
				if len(sizes) > 1 && p.Paging.Previous == "" {
					t.Errorf("page %d has no previous link", len(sizes))
				}
				u = p.Paging.Next
				if len(sizes) > 10 {
					t.Fatal("pagination does not end")
				}
			}
			if !slices.Equal(sizes, tt.sizes) || !slices.Equal(got, names) {
				t.Errorf("pages %v with %v, want %v with %v", sizes, got, tt.sizes, names)
			}
		})
	}

	t.Run("previous walks back", func(t *testing.T) {
		t.Parallel()
		p1 := get(t, base+"?limit=3")
		p2 := get(t, p1.Paging.Next)
		back := get(t, p2.Paging.Previous)
		if len(back.Data) != 3 || back.Data[0].Name != p1.Data[0].Name {
			t.Errorf("previous page %+v, want the first page", back.Data)
		}
	})
	t.Run("past the end is empty", func(t *testing.T) {
		t.Parallel()
		p := get(t, base+"?limit=7")
		last := get(t, base+"?limit=7&after="+url.QueryEscape(p.Paging.Cursors.After))
		if len(last.Data) != 0 || last.Paging != nil {
			t.Errorf("page past the end: %+v", last)
		}
	})
	errs := []struct {
		name, url, auth string
		status, code    int
	}{
		{"bad cursor", base + "?after=!!", token, 400, 100},
		{"bad limit", base + "?limit=-1", token, 400, 100},
		{"wrong WABA", srv.URL + "/v21.0/999/message_templates", token, 400, 100},
		{"bad token", base, "x", 401, 190},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := do(t, "GET", tt.url, tt.auth, "")
			if r.status != tt.status || decodeErr(t, r).Error.Code != tt.code {
				t.Errorf("%d %s, want %d code %d", r.status, r.body, tt.status, tt.code)
			}
		})
	}
}

// dlrReceiver records the query of every DLR callback.
type dlrReceiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	hits []url.Values
}

func newDLRReceiver(t *testing.T) *dlrReceiver {
	d := &dlrReceiver{}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		d.hits = append(d.hits, r.URL.Query())
		d.mu.Unlock()
	}))
	t.Cleanup(d.srv.Close)
	return d
}

func (d *dlrReceiver) got() []url.Values {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.hits)
}

func TestKannel(t *testing.T) {
	t.Parallel()
	dlr := newDLRReceiver(t)
	s, srv := start(t, sim.Config{KannelUser: "herald", KannelPassword: "pw"})
	s.AddRule(sim.Rule{Channel: "sms", To: "79005550000", Code: 1, Async: true})
	s.AddRule(sim.Rule{Channel: "sms", To: "79006660000"})

	sendsms := func(t *testing.T, q url.Values) response {
		t.Helper()
		return do(t, "GET", srv.URL+"/cgi-bin/sendsms?"+q.Encode(), "", "")
	}
	params := func(to, jobID string) url.Values {
		return url.Values{
			"username": {"herald"}, "password": {"pw"}, "from": {"Herald"}, "to": {to},
			"text": {"Заказ 123 готов"}, "coding": {"2"}, "charset": {"UTF-8"}, "dlr-mask": {"27"},
			"dlr-url": {dlr.srv.URL + "/webhooks/sms?id=" + jobID + "&type=%d&to=%p&from=%P&ts=%T&reply=%A"},
		}
	}

	t.Run("accept and report delivery", func(t *testing.T) {
		t.Parallel()
		r := sendsms(t, params("+79001234567", "job-sms-1"))
		if r.status != http.StatusAccepted || string(r.body) != "0: Accepted for delivery" {
			t.Fatalf("%d %q", r.status, r.body)
		}
		hits := waitDLR(t, dlr, "job-sms-1", 2)
		if hits[0].Get("type") != "8" || hits[1].Get("type") != "1" {
			t.Fatalf("DLR types %s, %s; want 8 then 1", hits[0].Get("type"), hits[1].Get("type"))
		}
		h := hits[1]
		ts, err := strconv.ParseInt(h.Get("ts"), 10, 64)
		if h.Get("to") != "79001234567" || h.Get("from") != "Herald" || err != nil || time.Since(time.Unix(ts, 0)) > time.Minute ||
			!strings.Contains(h.Get("reply"), "stat:DELIVRD") || !strings.HasPrefix(h.Get("reply"), "id:") {
			t.Errorf("DLR %v", h)
		}
		m := findJob(t, s, "job-sms-1")
		if m.Channel != "sms" || m.To != "79001234567" || m.Type != "sms" || m.Text != "Заказ 123 готов" || m.HTTPStatus != 202 {
			t.Errorf("recorded %+v", m)
		}
		if !strings.Contains(h.Get("reply"), "id:"+m.MessageID) {
			t.Errorf("reply %q does not carry message id %s", h.Get("reply"), m.MessageID)
		}
	})
	t.Run("async failure reports undelivered", func(t *testing.T) {
		t.Parallel()
		if r := sendsms(t, params("79005550000", "job-sms-2")); r.status != http.StatusAccepted {
			t.Fatalf("%d %q", r.status, r.body)
		}
		hits := waitDLR(t, dlr, "job-sms-2", 2)
		if hits[0].Get("type") != "8" || hits[1].Get("type") != "2" || !strings.Contains(hits[1].Get("reply"), "stat:UNDELIV") {
			t.Errorf("DLRs %v, want 8 then 2 UNDELIV", hits)
		}
	})
	t.Run("only the masked reports", func(t *testing.T) {
		t.Parallel()
		q := params("79001234000", "job-sms-3")
		q.Set("dlr-mask", "1")
		if r := sendsms(t, q); r.status != http.StatusAccepted {
			t.Fatalf("%d", r.status)
		}
		hits := waitDLR(t, dlr, "job-sms-3", 1)
		if hits[0].Get("type") != "1" {
			t.Errorf("DLR %v, want only type 1", hits)
		}
	})
	t.Run("UCS-2 text", func(t *testing.T) {
		t.Parallel()
		q := params("79001234001", "job-sms-4")
		q.Set("charset", "UTF-16BE")
		q.Set("text", string([]byte{0x04, 0x1f, 0x04, 0x40, 0x04, 0x38})) // "При"
		q.Del("dlr-url")
		if r := sendsms(t, q); r.status != http.StatusAccepted {
			t.Fatalf("%d", r.status)
		}
		msgs := s.Messages()
		i := slices.IndexFunc(msgs, func(m sim.Message) bool { return m.To == "79001234001" })
		if i < 0 || msgs[i].Text != "При" {
			t.Errorf("UCS-2 text not recorded as При: %+v", msgs)
		}
	})

	errs := []struct {
		name   string
		edit   func(url.Values)
		status int
		body   string
	}{
		{"wrong password", func(q url.Values) { q.Set("password", "x") }, 403, "Authorization failed for sendsms"},
		{"no user", func(q url.Values) { q.Del("username") }, 403, "Authorization failed for sendsms"},
		{"no to", func(q url.Values) { q.Del("to") }, 400, "Wrong sendsms args, rejected"},
		{"no text", func(q url.Values) { q.Del("text") }, 400, "Wrong sendsms args, rejected"},
		{"empty to", func(q url.Values) { q.Set("to", " ") }, 400, "Empty receiver number not allowed, rejected"},
		{"injected failure", func(q url.Values) { q.Set("to", "79006660000") }, 503, "Sending failed."},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := params("79001234999", "job-err")
			q.Del("dlr-url")
			tt.edit(q)
			r := sendsms(t, q)
			if r.status != tt.status || string(r.body) != tt.body {
				t.Errorf("%d %q, want %d %q", r.status, r.body, tt.status, tt.body)
			}
		})
	}
}

func waitDLR(t *testing.T, d *dlrReceiver, jobID string, n int) []url.Values {
	t.Helper()
	var hits []url.Values
	testutil.Eventually(t, 5*time.Second, func() bool {
		hits = hits[:0]
		for _, h := range d.got() {
			if h.Get("id") == jobID {
				hits = append(hits, h)
			}
		}
		return len(hits) >= n
	}, "%d of %d DLRs for %s", len(hits), n, jobID)
	if len(hits) != n {
		t.Fatalf("%d DLRs for %s, want %d", len(hits), jobID, n)
	}
	return hits
}

func findJob(t *testing.T, s *sim.Sim, jobID string) sim.Message {
	t.Helper()
	for _, m := range s.Messages() {
		if m.JobID == jobID {
			return m
		}
	}
	t.Fatalf("no message for job %s", jobID)
	return sim.Message{}
}

func TestGrey(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var notes []map[string]any
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n map[string]any
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		mu.Lock()
		notes = append(notes, n)
		mu.Unlock()
	}))
	t.Cleanup(recv.Close)
	s, srv := start(t, sim.Config{GreyInstanceID: "1101000001", GreyToken: "gt", GreyWebhookURL: recv.URL})
	base := srv.URL + "/waInstance1101000001/"

	r := do(t, "POST", base+"sendMessage/gt", "", `{"chatId":"79001234567@c.us","message":"Привет"}`)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var resp struct {
		IDMessage string `json:"idMessage"`
	}
	if err := json.Unmarshal(r.body, &resp); err != nil || resp.IDMessage == "" {
		t.Fatalf("response %s", r.body)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(notes) == 3 }, "grey statuses")
	mu.Lock()
	for i, want := range []string{"sent", "delivered", "read"} {
		n := notes[i]
		if n["typeWebhook"] != "outgoingMessageStatus" || n["status"] != want || n["idMessage"] != resp.IDMessage || n["chatId"] != "79001234567@c.us" {
			t.Errorf("notification %d: %v", i, n)
		}
	}
	mu.Unlock()
	m := s.Messages()[0]
	if m.Channel != "grey" || m.To != "79001234567" || m.Type != "text" || m.Text != "Привет" || m.MessageID != resp.IDMessage {
		t.Errorf("recorded %+v", m)
	}

	tests := []struct {
		name, path, body string
		status           int
	}{
		{"file by URL", "sendFileByUrl/gt", `{"chatId":"79001234567@c.us","urlFile":"https://x/r.pdf","fileName":"r.pdf"}`, 200},
		{"wrong token", "sendMessage/bad", `{"chatId":"79001234567@c.us","message":"x"}`, 401},
		{"no chatId", "sendMessage/gt", `{"message":"x"}`, 400},
		{"group chat", "sendMessage/gt", `{"chatId":"120363@g.us","message":"x"}`, 400},
		{"no message", "sendMessage/gt", `{"chatId":"79001234567@c.us"}`, 400},
		{"file without name", "sendFileByUrl/gt", `{"chatId":"79001234567@c.us","urlFile":"https://x/r.pdf"}`, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if r := do(t, "POST", base+tt.path, "", tt.body); r.status != tt.status {
				t.Errorf("%d %s, want %d", r.status, r.body, tt.status)
			}
		})
	}
}

func TestControlAPI(t *testing.T) {
	t.Parallel()
	s, srv := start(t, sim.Config{})

	if r := do(t, "POST", srv.URL+"/sim/rules", "", `{"channel":"white","to":"79001110000","code":131026}`); r.status != http.StatusCreated {
		t.Fatalf("POST rule: %d %s", r.status, r.body)
	}
	for _, bad := range []string{`{"channel":"fax"}`, `{"rate":2}`, `{"code":"x"}`, `{"unknown":1}`} {
		if r := do(t, "POST", srv.URL+"/sim/rules", "", bad); r.status != http.StatusBadRequest {
			t.Errorf("POST rule %s: %d, want 400", bad, r.status)
		}
	}
	if r := send(t, srv, textBody("79001110000", "j1")); r.status != 400 {
		t.Fatalf("rule from the control API not applied: %d", r.status)
	}
	send(t, srv, textBody("79002220000", "j2"))
	do(t, "GET", srv.URL+"/cgi-bin/sendsms?to=79003330000&text=hi", "", "")

	var msgs []sim.Message
	r := do(t, "GET", srv.URL+"/sim/messages?channel=white", "", "")
	if err := json.Unmarshal(r.body, &msgs); err != nil || len(msgs) != 2 || msgs[0].ErrorCode != 131026 || msgs[1].JobID != "j2" {
		t.Fatalf("white messages %s (%v)", r.body, err)
	}
	r = do(t, "GET", srv.URL+"/sim/messages?channel=sms", "", "")
	if err := json.Unmarshal(r.body, &msgs); err != nil || len(msgs) != 1 || msgs[0].To != "79003330000" {
		t.Fatalf("sms messages %s", r.body)
	}
	var st sim.Stats
	r = do(t, "GET", srv.URL+"/sim/stats", "", "")
	if err := json.Unmarshal(r.body, &st); err != nil {
		t.Fatal(err)
	}
	if w := st.Channels["white"]; w.Accepted != 1 || w.Failed != 1 || st.Channels["sms"].Accepted != 1 {
		t.Errorf("stats %s", r.body)
	}

	if r := do(t, "DELETE", srv.URL+"/sim/rules", "", ""); r.status != http.StatusNoContent {
		t.Fatalf("DELETE rules: %d", r.status)
	}
	if r := send(t, srv, textBody("79001110000", "")); r.status != 200 {
		t.Errorf("rule survived DELETE: %d", r.status)
	}
	if r := do(t, "DELETE", srv.URL+"/sim/messages", "", ""); r.status != http.StatusNoContent {
		t.Fatalf("DELETE messages: %d", r.status)
	}
	r = do(t, "GET", srv.URL+"/sim/messages", "", "")
	if string(r.body) != "[]" || s.Count() != 0 {
		t.Errorf("after reset: %s, count %d", r.body, s.Count())
	}
	if r := do(t, "PUT", srv.URL+"/sim/stats", "", ""); r.status != http.StatusMethodNotAllowed {
		t.Errorf("PUT stats: %d", r.status)
	}
}

func TestReset(t *testing.T) {
	t.Parallel()
	s, srv := start(t, sim.Config{})
	s.AddRule(sim.Rule{To: "79000000000", Code: 131026})
	for i := range 3 {
		send(t, srv, textBody(fmt.Sprintf("7900123456%d", i), ""))
	}
	if s.Count() != 3 || len(s.Messages()) != 3 {
		t.Fatalf("count %d, messages %d", s.Count(), len(s.Messages()))
	}
	s.Reset()
	if s.Count() != 0 || len(s.Messages()) != 0 || s.Stats().Channels["white"].Accepted != 0 {
		t.Fatalf("Reset left count %d, messages %d", s.Count(), len(s.Messages()))
	}
	send(t, srv, textBody("79001234567", ""))
	if m := s.Messages(); len(m) != 1 || m[0].Seq != 1 {
		t.Errorf("after Reset: %+v, want one message with Seq 1", m)
	}
	if r := send(t, srv, textBody("79000000000", "")); r.status != 400 {
		t.Errorf("Reset removed a rule: %d", r.status)
	}
}

func TestMaxMessages(t *testing.T) {
	t.Parallel()
	s, srv := start(t, sim.Config{MaxMessages: 3})
	for i := range 5 {
		send(t, srv, textBody(fmt.Sprintf("7900123456%d", i), ""))
	}
	var seqs []int64
	for _, m := range s.Messages() {
		seqs = append(seqs, m.Seq)
	}
	if !slices.Equal(seqs, []int64{3, 4, 5}) || s.Count() != 5 {
		t.Errorf("kept %v (count %d), want the newest 3 in order and count 5", seqs, s.Count())
	}
}

func TestLatency(t *testing.T) {
	t.Parallel()
	_, srv := start(t, sim.Config{Latency: 40 * time.Millisecond, Jitter: 10 * time.Millisecond})
	begin := time.Now()
	if r := send(t, srv, textBody("79001234567", "")); r.status != 200 {
		t.Fatal(r.status)
	}
	if d := time.Since(begin); d < 40*time.Millisecond {
		t.Errorf("answered after %s, want at least the 40ms latency", d)
	}
}

func TestSign(t *testing.T) {
	t.Parallel()
	tests := []struct{ secret, body, want string }{
		// RFC 4231-style known answer (the Wikipedia HMAC-SHA256 example).
		{"key", "The quick brown fox jumps over the lazy dog", "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"},
		{"", "", "sha256=b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad"},
	}
	for _, tt := range tests {
		if got := sim.Sign(tt.secret, []byte(tt.body)); got != tt.want {
			t.Errorf("Sign(%q, %q) = %s, want %s", tt.secret, tt.body, got, tt.want)
		}
	}
}
