package sim_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/fleet"
	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/testutil"
)

// recorder keeps every request a simulator posts: body, signature and Authorization.
type recorder struct {
	mu   sync.Mutex
	reqs []recorded
	url  string
}

type recorded struct {
	body      []byte
	sig, auth string
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	rc := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, recorded{body: body, sig: r.Header.Get("X-Hub-Signature-256"), auth: r.Header.Get("Authorization")})
		rc.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	rc.url = srv.URL
	return rc
}

func (rc *recorder) all() []recorded {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.reqs)
}

// Two business numbers: A with the defaults, B with its own token, secret, WABA and display
// number; C is not served.
const (
	numA, numB, numC = "1000000000001", "1000000000002", "1000000000003"
	tokA, tokB       = "token-a", "token-b"
	secA, secB       = "secret-a", "secret-b"
	wabaA, wabaB     = "2000000000001", "2000000000002"
	dispA, dispB     = "74950000001", "74950000002"
)

func twoNumbers(webhook string) sim.Config {
	return sim.Config{
		PhoneNumberID: numA, PhoneNumberIDs: []string{numB},
		Token: tokA, Tokens: map[string]string{numB: tokB},
		AppSecret: secA, AppSecrets: map[string]string{numB: secB},
		WABAID: wabaA, WABAIDs: map[string]string{numB: wabaB},
		DisplayPhoneNumber: dispA, DisplayPhoneNumbers: map[string]string{numB: dispB},
		WebhookURL: webhook, Statuses: []string{"sent", "delivered"},
	}
}

// statusPost is a decoded status webhook.
type statusPost struct {
	Entry []struct {
		ID      string `json:"id"`
		Changes []struct {
			Field string `json:"field"`
			Value struct {
				Metadata struct {
					DisplayPhoneNumber string `json:"display_phone_number"`
					PhoneNumberID      string `json:"phone_number_id"`
				} `json:"metadata"`
				Statuses []struct {
					ID     string `json:"id"`
					Status string `json:"status"`
				} `json:"statuses"`
			} `json:"value"`
		} `json:"changes"`
	} `json:"entry"`
}

func TestNumbers(t *testing.T) {
	t.Parallel()
	rc := newRecorder(t)
	s, srv := start(t, twoNumbers(rc.url))
	sendFrom := func(number, tok, to string) response {
		return do(t, "POST", srv.URL+"/v21.0/"+number+"/messages", tok, textBody(to, "job-"+to))
	}
	tests := []struct {
		name, number, tok string
		status            int
	}{
		{"A with the default token", numA, tokA, 200},
		{"B with its own token", numB, tokB, 200},
		{"B with A's token", numB, tokA, 401},
		{"A with B's token", numA, tokB, 401},
		{"a number not served", numC, tokA, 400},
	}
	for i, tt := range tests { // sequential: the counts below add them up
		if r := sendFrom(tt.number, tt.tok, fmt.Sprintf("7900000000%d", i)); r.status != tt.status {
			t.Errorf("%s: %d %s, want %d", tt.name, r.status, r.body, tt.status)
		}
	}
	for i := range 4 {
		sendFrom(numB, tokB, fmt.Sprintf("7900000010%d", i))
	}

	msgs := s.Messages()
	if len(msgs) != 6 {
		t.Fatalf("%d messages recorded, want 6", len(msgs))
	}
	from := map[string]string{} // message id → number
	for _, m := range msgs {
		from[m.MessageID] = m.PhoneNumberID
	}
	var onlyB []sim.Message
	r := do(t, "GET", srv.URL+"/sim/messages?phone_number_id="+numB, "", "")
	if err := json.Unmarshal(r.body, &onlyB); err != nil || len(onlyB) != 5 {
		t.Fatalf("GET /sim/messages?phone_number_id=B: %s (%v), want B's 5", r.body, err)
	}
	for _, m := range onlyB {
		if m.PhoneNumberID != numB || m.Channel != "white" {
			t.Errorf("filtered message %+v", m)
		}
	}

	st := s.Stats()
	want := map[string]sim.ChannelStats{numA: {Accepted: 1, Rejected: 1}, numB: {Accepted: 5, Rejected: 1}}
	if !mapsEqual(st.Numbers, want) {
		t.Errorf("stats per number %+v, want %+v (nothing for the number not served)", st.Numbers, want)
	}
	if w := st.Channels["white"]; w.Accepted != 6 || w.Rejected != 3 {
		t.Errorf("white stats %+v", w)
	}

	// Every status reaches its number's app, signed with its secret, under its WABA and
	// display number; a POST never mixes the two apps.
	testutil.Eventually(t, 5*time.Second, func() bool { return s.Stats().Webhooks.Statuses == 12 }, "12 statuses, got %d", s.Stats().Webhooks.Statuses)
	secretOf := map[string]string{numA: secA, numB: secB}
	wabaOf := map[string]string{numA: wabaA, numB: wabaB}
	dispOf := map[string]string{numA: dispA, numB: dispB}
	seen := 0
	for _, req := range rc.all() {
		var p statusPost
		if err := json.Unmarshal(req.body, &p); err != nil {
			t.Fatal(err)
		}
		var numbers []string
		for _, e := range p.Entry {
			for _, c := range e.Changes {
				n := c.Value.Metadata.PhoneNumberID
				numbers = append(numbers, n)
				if e.ID != wabaOf[n] || c.Value.Metadata.DisplayPhoneNumber != dispOf[n] || c.Field != "messages" {
					t.Errorf("change of %s under entry %s with display %s", n, e.ID, c.Value.Metadata.DisplayPhoneNumber)
				}
				for _, st := range c.Value.Statuses {
					seen++
					if from[st.ID] != n {
						t.Errorf("status of %s (sent from %s) reported for %s", st.ID, from[st.ID], n)
					}
				}
			}
		}
		if len(numbers) == 0 || req.sig != sim.Sign(secretOf[numbers[0]], req.body) {
			t.Errorf("POST for %v not signed with its number's secret", numbers)
		}
		for _, n := range numbers {
			if secretOf[n] != secretOf[numbers[0]] {
				t.Errorf("one POST holds numbers of two apps: %v", numbers)
			}
		}
	}
	if seen != 12 {
		t.Errorf("%d statuses received, want 12", seen)
	}

	s.Reset()
	if st := s.Stats(); len(st.Numbers) != 0 {
		t.Errorf("Reset kept the per-number stats: %+v", st.Numbers)
	}
}

func mapsEqual(a, b map[string]sim.ChannelStats) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestRulesPerSender(t *testing.T) {
	t.Parallel()
	cfg := twoNumbers("")
	cfg.GreyInstanceIDs = []string{"1101", "1102"}
	s, srv := start(t, cfg)
	rules := []string{
		`{"phone_number_id":"` + numB + `","code":131026}`,
		`{"instance":"1102","http_status":466}`, // no channel: a grey rule
	}
	for _, body := range rules {
		if r := do(t, "POST", srv.URL+"/sim/rules", "", body); r.status != http.StatusCreated {
			t.Fatalf("POST rule %s: %d %s", body, r.status, r.body)
		}
	}
	if got := s.Rules(); len(got) != 2 || got[1].Channel != "grey" || got[1].Instance != "1102" {
		t.Errorf("rules %+v", got)
	}
	tests := []struct {
		name, path, auth, body string
		status                 int
	}{
		{"white from A", "/v21.0/" + numA + "/messages", tokA, textBody("79001112233", ""), 200},
		{"white from B", "/v21.0/" + numB + "/messages", tokB, textBody("79001112233", ""), 400},
		{"grey from 1101", "/waInstance1101/sendMessage/t", "", `{"chatId":"79001112233@c.us","message":"x"}`, 200},
		{"grey from 1102", "/waInstance1102/sendMessage/t", "", `{"chatId":"79001112233@c.us","message":"x"}`, 466},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if r := do(t, "POST", srv.URL+tt.path, tt.auth, tt.body); r.status != tt.status {
				t.Errorf("%d %s, want %d", r.status, r.body, tt.status)
			}
		})
	}
	bad := []string{
		`{"channel":"sms","phone_number_id":"1"}`,
		`{"channel":"white","instance":"1101"}`,
		`{"channel":"grey","phone_number_id":"1"}`,
	}
	for _, body := range bad {
		if r := do(t, "POST", srv.URL+"/sim/rules", "", body); r.status != http.StatusBadRequest {
			t.Errorf("POST rule %s: %d, want 400", body, r.status)
		}
	}
}

func TestGreyInstances(t *testing.T) {
	t.Parallel()
	recv := newRecorder(t)
	s, srv := start(t, sim.Config{
		GreyInstanceID: "1101000001", GreyToken: "gt1", GreyWebhookToken: "hook-token-1",
		GreyInstanceIDs: []string{"1101000002"}, GreyTokens: map[string]string{"1101000002": "gt2"},
		GreyWebhookTokens: map[string]string{"1101000002": "hook-token-2"},
		GreyWids:          map[string]string{"1101000001": "79001110001", "1101000002": "79001110002"},
		GreyWebhookURL:    recv.url, Statuses: []string{"sent"},
	})
	sendVia := func(instance, token string) response {
		return do(t, "POST", srv.URL+"/waInstance"+instance+"/sendMessage/"+token, "", `{"chatId":"79001234567@c.us","message":"x"}`)
	}
	tests := []struct {
		name, instance, token string
		status                int
	}{
		{"first with its token", "1101000001", "gt1", 200},
		{"second with its token", "1101000002", "gt2", 200},
		{"second with the first's token", "1101000002", "gt1", 401},
		{"an instance not served", "1101000003", "gt1", 401},
	}
	for _, tt := range tests { // sequential: the counts below add them up
		if r := sendVia(tt.instance, tt.token); r.status != tt.status {
			t.Errorf("%s: %d %s, want %d", tt.name, r.status, r.body, tt.status)
		}
	}

	// Each instance has its own state.
	if err := s.SetGreyState("1101000002", sim.GreyNotAuthorized); err != nil {
		t.Fatal(err)
	}
	if r := sendVia("1101000002", "gt2"); r.status != 400 {
		t.Errorf("send through a notAuthorized instance: %d", r.status)
	}
	if r := sendVia("1101000001", "gt1"); r.status != 200 {
		t.Errorf("the other instance stopped sending: %d", r.status)
	}
	states := []struct{ instance, state string }{{"1101000001", "authorized"}, {"1101000002", "notAuthorized"}}
	for _, st := range states {
		r := do(t, "GET", srv.URL+"/sim/grey/state?instance="+st.instance, "", "")
		if r.status != 200 || !strings.Contains(string(r.body), `"state":"`+st.state+`"`) {
			t.Errorf("state of %s: %d %s, want %s", st.instance, r.status, r.body, st.state)
		}
	}
	if r := do(t, "GET", srv.URL+"/sim/grey/state?instance=1101000003", "", ""); r.status != http.StatusNotFound {
		t.Errorf("state of an instance not served: %d", r.status)
	}
	if err := s.SetGreyState("1101000003", sim.GreyBlocked); !errors.Is(err, sim.ErrInvalidGrey) {
		t.Errorf("SetGreyState of an instance not served: %v", err)
	}
	if _, err := s.GreyIncoming(sim.GreyInbound{Instance: "1101000003", From: "79001234567", Text: "hi"}); !errors.Is(err, sim.ErrInvalidGrey) {
		t.Errorf("GreyIncoming to an instance not served: %v", err)
	}
	if _, err := s.GreyIncoming(sim.GreyInbound{Instance: "1101000002", From: "79001234567", Text: "СТОП"}); err != nil {
		t.Fatal(err)
	}

	var onlySecond []sim.Message
	r := do(t, "GET", srv.URL+"/sim/messages?channel=grey&instance=1101000002", "", "")
	if err := json.Unmarshal(r.body, &onlySecond); err != nil || len(onlySecond) != 2 || onlySecond[0].Instance != "1101000002" {
		t.Errorf("messages of the second instance: %s", r.body)
	}
	st := s.Stats().Instances
	if st["1101000001"] != (sim.ChannelStats{Accepted: 2}) || st["1101000002"] != (sim.ChannelStats{Accepted: 1, Failed: 1, Rejected: 1}) || len(st) != 2 {
		t.Errorf("stats per instance %+v", st)
	}

	// Notifications: sent ×3, the state change, the inbound message; each names its instance
	// and number and carries that instance's webhook token.
	testutil.Eventually(t, 5*time.Second, func() bool { return len(recv.all()) == 5 }, "%d notifications of 5", len(recv.all()))
	byType := map[string]int{}
	for _, req := range recv.all() {
		var n struct {
			TypeWebhook  string `json:"typeWebhook"`
			InstanceData struct {
				IDInstance int64  `json:"idInstance"`
				Wid        string `json:"wid"`
			} `json:"instanceData"`
		}
		if err := json.Unmarshal(req.body, &n); err != nil {
			t.Fatal(err)
		}
		byType[n.TypeWebhook]++
		inst := fmt.Sprint(n.InstanceData.IDInstance)
		wantWid := map[string]string{"1101000001": "79001110001@c.us", "1101000002": "79001110002@c.us"}[inst]
		wantAuth := map[string]string{"1101000001": "Bearer hook-token-1", "1101000002": "Bearer hook-token-2"}[inst]
		if n.InstanceData.Wid != wantWid || req.auth != wantAuth {
			t.Errorf("%s of %s: wid %s, Authorization %q", n.TypeWebhook, inst, n.InstanceData.Wid, req.auth)
		}
	}
	if byType["outgoingMessageStatus"] != 3 || byType["stateInstanceChanged"] != 1 || byType["incomingMessageReceived"] != 1 {
		t.Errorf("notifications %v", byType)
	}
}

func TestQualityAndAccountUpdates(t *testing.T) {
	t.Parallel()
	rc := newRecorder(t)
	s, srv := start(t, twoNumbers(rc.url))
	posts := []struct {
		name, path, body string
		field, secret    string
		entry            string
		value            map[string]any
	}{
		{"flagged", "/sim/quality", `{"phone_number_id":"` + numB + `","event":"FLAGGED","current_limit":"TIER_10K"}`,
			"phone_number_quality_update", secB, wabaB,
			map[string]any{"display_phone_number": dispB, "event": "FLAGGED", "current_limit": "TIER_10K"}},
		{"downgrade with the old limit", "/sim/quality", `{"phone_number_id":"` + numA + `","event":"DOWNGRADE","current_limit":"TIER_1K","old_limit":"TIER_10K"}`,
			"phone_number_quality_update", secA, wabaA,
			map[string]any{"display_phone_number": dispA, "event": "DOWNGRADE", "current_limit": "TIER_1K", "old_limit": "TIER_10K"}},
		{"limit defaults to TIER_1K", "/sim/quality", `{"phone_number_id":"` + numA + `","event":"UNFLAGGED"}`,
			"phone_number_quality_update", secA, wabaA,
			map[string]any{"display_phone_number": dispA, "event": "UNFLAGGED", "current_limit": "TIER_1K"}},
		{"restriction", "/sim/account", `{"phone_number_id":"` + numB + `","event":"ACCOUNT_RESTRICTION","restriction_info":[{"restriction_type":"RESTRICTED_CUSTOMER_INITIATED_MESSAGING","expiration":1700000000}]}`,
			"account_update", secB, wabaB,
			map[string]any{"phone_number": dispB, "event": "ACCOUNT_RESTRICTION",
				"restriction_info": []any{map[string]any{"restriction_type": "RESTRICTED_CUSTOMER_INITIATED_MESSAGING", "expiration": float64(1700000000)}}}},
		{"violation", "/sim/account", `{"phone_number_id":"` + numA + `","event":"ACCOUNT_VIOLATION","violation_info":{"violation_type":"SCAM"}}`,
			"account_update", secA, wabaA,
			map[string]any{"phone_number": dispA, "event": "ACCOUNT_VIOLATION", "violation_info": map[string]any{"violation_type": "SCAM"}}},
		{"WABA-wide ban reinstated", "/sim/account", `{"event":"DISABLED_UPDATE","ban_info":{"waba_ban_state":"REINSTATE","waba_ban_date":"April 17, 2025"}}`,
			"account_update", secA, wabaA,
			map[string]any{"event": "DISABLED_UPDATE", "ban_info": map[string]any{"waba_ban_state": "REINSTATE", "waba_ban_date": "April 17, 2025"}}},
	}
	for _, p := range posts { // sequential: one delivery queue keeps their order
		if r := do(t, "POST", srv.URL+p.path, "", p.body); r.status != http.StatusAccepted {
			t.Fatalf("%s: %d %s", p.name, r.status, r.body)
		}
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return len(rc.all()) == len(posts) }, "%d webhooks of %d", len(rc.all()), len(posts))
	for i, req := range rc.all() {
		p := posts[i]
		var env struct {
			Object string `json:"object"`
			Entry  []struct {
				ID      string `json:"id"`
				Time    int64  `json:"time"`
				Changes []struct {
					Field string         `json:"field"`
					Value map[string]any `json:"value"`
				} `json:"changes"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(req.body, &env); err != nil {
			t.Fatal(err)
		}
		if env.Object != "whatsapp_business_account" || len(env.Entry) != 1 || len(env.Entry[0].Changes) != 1 {
			t.Fatalf("%s: shape %s", p.name, req.body)
		}
		e, c := env.Entry[0], env.Entry[0].Changes[0]
		if e.ID != p.entry || time.Since(time.Unix(e.Time, 0)) > time.Minute || c.Field != p.field {
			t.Errorf("%s: entry %s time %d field %s", p.name, e.ID, e.Time, c.Field)
		}
		if got, _ := json.Marshal(c.Value); !jsonEqual(t, got, p.value) {
			t.Errorf("%s: value %s, want %v", p.name, got, p.value)
		}
		if req.sig != sim.Sign(p.secret, req.body) {
			t.Errorf("%s: not signed with the number's app secret", p.name)
		}
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return s.Stats().Webhooks.Events == int64(len(posts)) }, "events counted")

	// Defaults of the account events that need details.
	restricted := sim.AccountUpdate{PhoneNumberID: numA, Event: "ACCOUNT_RESTRICTION"}
	disabled := sim.AccountUpdate{PhoneNumberID: numA, Event: "DISABLED_UPDATE"}
	for _, a := range []sim.AccountUpdate{restricted, disabled} {
		if err := s.AccountUpdate(a); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return len(rc.all()) == len(posts)+2 }, "defaulted events")
	last := rc.all()[len(posts):]
	if b := string(last[0].body); !strings.Contains(b, `"restriction_type":"RESTRICTED_BIZ_INITIATED_MESSAGING","expiration":`) {
		t.Errorf("default restriction: %s", b)
	}
	if b := string(last[1].body); !strings.Contains(b, `"ban_info":{"waba_ban_state":"DISABLE","waba_ban_date":"`) {
		t.Errorf("default ban: %s", b)
	}

	bad := []struct{ name, path, body string }{
		{"number not served", "/sim/quality", `{"phone_number_id":"` + numC + `","event":"FLAGGED"}`},
		{"quality without a number", "/sim/quality", `{"event":"FLAGGED"}`},
		{"event not upper case", "/sim/quality", `{"phone_number_id":"` + numA + `","event":"flagged"}`},
		{"no event", "/sim/account", `{"phone_number_id":"` + numA + `"}`},
		{"unknown tier", "/sim/quality", `{"phone_number_id":"` + numA + `","event":"UPGRADE","current_limit":"TIER_3K"}`},
		{"unknown field", "/sim/account", `{"event":"ACCOUNT_DELETED","phone":"1"}`},
	}
	for _, b := range bad {
		if r := do(t, "POST", srv.URL+b.path, "", b.body); r.status != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", b.name, r.status, r.body)
		}
	}
	if r := do(t, "GET", srv.URL+"/sim/quality", "", ""); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET /sim/quality: %d", r.status)
	}
	noHook := sim.New(sim.Config{})
	if err := noHook.QualityUpdate(sim.QualityUpdate{PhoneNumberID: "1", Event: "FLAGGED"}); !errors.Is(err, sim.ErrInvalidEvent) {
		t.Errorf("without a webhook URL: %v", err)
	}
}

func jsonEqual(t *testing.T, got []byte, want map[string]any) bool {
	t.Helper()
	var g map[string]any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	w, _ := json.Marshal(want)
	g2, _ := json.Marshal(g)
	return string(w) == string(g2)
}

func TestWithFleet(t *testing.T) {
	t.Parallel()
	const doc = `
senders:
  - {id: a, kind: white, phone_number_id: "` + numA + `", waba_id: "` + wabaA + `", display_phone_number: "` + dispA + `", token: ta, app_secret: sa}
  - {id: b, kind: white, phone_number_id: "` + numB + `", token: tb, app_secret: sb}
  - {id: g, kind: grey, base_url: "http://x", instance_id: "1101", token: gt, webhook_token: 0123456789abcdef}
  - {id: s, kind: sms, driver: nats}
tenants:
  t: {channels: [white, grey, sms], senders: [a, b, g, s]}
`
	f, err := fleet.Parse([]byte(doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	base := sim.Config{Token: "default-token", Tokens: map[string]string{"9": "nine"}}
	cfg := base.WithFleet(f)
	if len(base.Tokens) != 1 {
		t.Error("WithFleet changed its receiver's maps")
	}
	if !slices.Equal(cfg.PhoneNumberIDs, []string{numA, numB}) || !slices.Equal(cfg.GreyInstanceIDs, []string{"1101"}) {
		t.Errorf("ids %v %v", cfg.PhoneNumberIDs, cfg.GreyInstanceIDs)
	}
	if cfg.Tokens[numA] != "ta" || cfg.Tokens[numB] != "tb" || cfg.Tokens["9"] != "nine" || cfg.AppSecrets[numB] != "sb" ||
		cfg.WABAIDs[numA] != wabaA || cfg.DisplayPhoneNumbers[numA] != dispA || cfg.GreyTokens["1101"] != "gt" ||
		cfg.GreyWebhookTokens["1101"] != "0123456789abcdef" {
		t.Errorf("per-sender maps %+v", cfg)
	}
	_, srv := start(t, cfg)
	for _, c := range []struct{ number, tok string }{{numA, "ta"}, {numB, "tb"}} {
		if r := do(t, "POST", srv.URL+"/v21.0/"+c.number+"/messages", c.tok, textBody("79001234567", "")); r.status != 200 {
			t.Errorf("send from %s: %d %s", c.number, r.status, r.body)
		}
	}
	if r := do(t, "POST", srv.URL+"/waInstance1101/sendMessage/gt", "", `{"chatId":"79001234567@c.us","message":"x"}`); r.status != 200 {
		t.Errorf("grey send: %d %s", r.status, r.body)
	}
}
