package sim_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/testutil"
)

// greyReceiver collects the grey notifications a simulator posts.
type greyReceiver struct {
	mu    sync.Mutex
	notes []map[string]any
	url   string
}

func newGreyReceiver(t *testing.T) *greyReceiver {
	t.Helper()
	g := &greyReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n map[string]any
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		g.mu.Lock()
		g.notes = append(g.notes, n)
		g.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	g.url = srv.URL
	return g
}

// of returns the notifications of one typeWebhook, in arrival order.
func (g *greyReceiver) of(typ string) []map[string]any {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []map[string]any
	for _, n := range g.notes {
		if n["typeWebhook"] == typ {
			out = append(out, n)
		}
	}
	return out
}

func greyDescription(t *testing.T, r response) string {
	t.Helper()
	var e struct {
		Code        int    `json:"code"`
		Description string `json:"description"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %s: %v", r.body, err)
	}
	return e.Description
}

func TestGreyInstanceState(t *testing.T) {
	t.Parallel()
	recv := newGreyReceiver(t)
	s, srv := start(t, sim.Config{GreyInstanceID: "1101000001", GreyToken: "gt", GreyWebhookURL: recv.url})
	base := srv.URL + "/waInstance1101000001/"
	state := func() string {
		t.Helper()
		r := do(t, "GET", base+"getStateInstance/gt", "", "")
		var b struct {
			StateInstance string `json:"stateInstance"`
		}
		if r.status != 200 || json.Unmarshal(r.body, &b) != nil {
			t.Fatalf("getStateInstance: %d %s", r.status, r.body)
		}
		return b.StateInstance
	}
	sendText := func() response {
		return do(t, "POST", base+"sendMessage/gt", "", `{"chatId":"79001234567@c.us","message":"x"}`)
	}
	if st := state(); st != "authorized" {
		t.Fatalf("initial state %q", st)
	}

	tests := []struct {
		state       string
		sendStatus  int
		description string
	}{
		{"notAuthorized", 400, "instance is starting or not authorized"},
		{"notAuthorized", 400, "instance is starting or not authorized"}, // no change: no webhook
		{"blocked", 400, "instance is starting or not authorized"},
		{"sleepMode", 400, "instance is starting or not authorized"},
		{"starting", 400, "instance in starting process try later"},
		{"yellowCard", 200, ""},
		{"authorized", 200, ""},
	}
	for _, tt := range tests { // sequential: each step changes the one instance
		r := do(t, "POST", srv.URL+"/sim/grey/state", "", `{"instance":"1101000001","state":"`+tt.state+`"}`)
		if r.status != http.StatusNoContent {
			t.Fatalf("set %s: %d %s", tt.state, r.status, r.body)
		}
		if st := state(); st != tt.state {
			t.Fatalf("getStateInstance %q after setting %q", st, tt.state)
		}
		r = sendText()
		if r.status != tt.sendStatus {
			t.Fatalf("send in %s: %d %s, want %d", tt.state, r.status, r.body, tt.sendStatus)
		}
		if tt.description != "" {
			if d := greyDescription(t, r); d != tt.description {
				t.Errorf("send in %s: description %q, want %q", tt.state, d, tt.description)
			}
		}
	}
	want := []string{"notAuthorized", "blocked", "sleepMode", "starting", "yellowCard", "authorized"}
	testutil.Eventually(t, 5*time.Second, func() bool { return len(recv.of("stateInstanceChanged")) == len(want) }, "state webhooks")
	for i, n := range recv.of("stateInstanceChanged") {
		inst, _ := n["instanceData"].(map[string]any)
		if n["stateInstance"] != want[i] || inst["idInstance"] != float64(1101000001) || n["timestamp"] == nil {
			t.Errorf("state webhook %d: %v, want %s", i, n, want[i])
		}
	}
	// The yellowCard send was accepted and reported yellowCard, never sent or delivered.
	var yellowID string
	for _, m := range s.Messages() {
		if m.HTTPStatus == 200 && yellowID == "" {
			yellowID = m.MessageID
		}
	}
	testutil.Eventually(t, 5*time.Second, func() bool {
		for _, n := range recv.of("outgoingMessageStatus") {
			if n["idMessage"] == yellowID && n["status"] == "yellowCard" {
				return true
			}
		}
		return false
	}, "yellowCard status")
	for _, n := range recv.of("outgoingMessageStatus") {
		if n["idMessage"] == yellowID && n["status"] != "yellowCard" {
			t.Errorf("yellowCard send reported %v", n["status"])
		}
	}
	// Refused sends are recorded as failures.
	if st := s.Stats().Channels["grey"]; st.Failed != 5 || st.Accepted != 2 {
		t.Errorf("grey stats %+v, want 5 refused and 2 accepted", st)
	}
	r := do(t, "GET", srv.URL+"/sim/grey/state?instance=1101000001", "", "")
	if r.status != 200 || !strings.Contains(string(r.body), `"state":"authorized"`) {
		t.Errorf("GET /sim/grey/state: %d %s", r.status, r.body)
	}
}

func TestGreyControlErrors(t *testing.T) {
	t.Parallel()
	_, srv := start(t, sim.Config{})
	tests := []struct {
		name, method, path, body string
		status                   int
	}{
		{"unknown state", "POST", "/sim/grey/state", `{"instance":"1","state":"asleep"}`, 400},
		{"no instance anywhere", "POST", "/sim/grey/state", `{"state":"blocked"}`, 400},
		{"unknown field", "POST", "/sim/grey/state", `{"instance":"1","state":"blocked","x":1}`, 400},
		{"state method", "DELETE", "/sim/grey/state", "", 405},
		{"incoming without a webhook URL", "POST", "/sim/grey/incoming", `{"instance":"1","from":"+79001234567","text":"hi"}`, 400},
		{"incoming method", "GET", "/sim/grey/incoming", "", 405},
		{"getStateInstance by POST", "POST", "/waInstance1/getStateInstance/t", "", 405},
		{"bad rule retry_after", "POST", "/sim/rules", `{"channel":"grey","http_status":429,"retry_after":-1}`, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if r := do(t, tt.method, srv.URL+tt.path, "", tt.body); r.status != tt.status {
				t.Errorf("%d %s, want %d", r.status, r.body, tt.status)
			}
		})
	}
	s := sim.New(sim.Config{GreyWebhookURL: "http://127.0.0.1:1"})
	for _, in := range []sim.GreyInbound{
		{From: "+79001234567", Text: "hi"},                // no instance
		{Instance: "1", From: "12", Text: "hi"},           // not a number
		{Instance: "1", From: "+79001234567"},             // no text
		{Instance: "1", From: "+7 (900) abc", Text: "hi"}, // not a number
	} {
		if _, err := s.GreyIncoming(in); !errors.Is(err, sim.ErrInvalidGrey) {
			t.Errorf("GreyIncoming(%+v) = %v, want ErrInvalidGrey", in, err)
		}
	}
}

func TestGreyNoAccount(t *testing.T) {
	t.Parallel()
	recv := newGreyReceiver(t)
	_, srv := start(t, sim.Config{GreyWebhookURL: recv.url, GreyNoAccount: []string{"+7 900 555-00-00"}})
	r := do(t, "POST", srv.URL+"/waInstance1/sendMessage/t", "", `{"chatId":"79005550000@c.us","message":"x"}`)
	if r.status != 200 {
		t.Fatalf("%d %s: GREEN-API accepts a number without WhatsApp and reports it later", r.status, r.body)
	}
	var resp struct {
		IDMessage string `json:"idMessage"`
	}
	_ = json.Unmarshal(r.body, &resp)
	testutil.Eventually(t, 5*time.Second, func() bool { return len(recv.of("outgoingMessageStatus")) >= 1 }, "status")
	n := recv.of("outgoingMessageStatus")
	if len(n) != 1 || n[0]["status"] != "noAccount" || n[0]["idMessage"] != resp.IDMessage ||
		n[0]["chatId"] != "79005550000@c.us" || n[0]["description"] == "" {
		t.Errorf("statuses %v, want one noAccount", n)
	}
}

func TestGreyIncoming(t *testing.T) {
	t.Parallel()
	recv := newGreyReceiver(t)
	_, srv := start(t, sim.Config{GreyInstanceID: "1101000001", GreyWebhookURL: recv.url})
	tests := []struct {
		name, body, typeMessage string
	}{
		{"text", `{"from":"+79001112233","text":"СТОП","sender_name":"Иван"}`, "textMessage"},
		{"extended", `{"instance":"1101000001","from":"79001112233","text":"see https://x.example","extended":true}`, "extendedTextMessage"},
	}
	for _, tt := range tests { // sequential: notifications are checked in order
		r := do(t, "POST", srv.URL+"/sim/grey/incoming", "", tt.body)
		var ans struct {
			IDMessage string `json:"idMessage"`
		}
		if r.status != http.StatusAccepted || json.Unmarshal(r.body, &ans) != nil || ans.IDMessage == "" {
			t.Fatalf("%s: %d %s", tt.name, r.status, r.body)
		}
		testutil.Eventually(t, 5*time.Second, func() bool {
			for _, n := range recv.of("incomingMessageReceived") {
				if n["idMessage"] == ans.IDMessage {
					return true
				}
			}
			return false
		}, "%s inbound", tt.name)
	}
	n := recv.of("incomingMessageReceived")
	first, second := n[0], n[1]
	sd, _ := first["senderData"].(map[string]any)
	md, _ := first["messageData"].(map[string]any)
	td, _ := md["textMessageData"].(map[string]any)
	if sd["sender"] != "79001112233@c.us" || sd["chatId"] != "79001112233@c.us" || sd["senderName"] != "Иван" ||
		md["typeMessage"] != "textMessage" || td["textMessage"] != "СТОП" {
		t.Errorf("text inbound %v", first)
	}
	md, _ = second["messageData"].(map[string]any)
	ed, _ := md["extendedTextMessageData"].(map[string]any)
	if md["typeMessage"] != "extendedTextMessage" || ed["text"] != "see https://x.example" {
		t.Errorf("extended inbound %v", second)
	}
}

func TestGreyRetryAfter(t *testing.T) {
	t.Parallel()
	_, srv := start(t, sim.Config{})
	if r := do(t, "POST", srv.URL+"/sim/rules", "", `{"channel":"grey","http_status":429,"retry_after":7,"times":1}`); r.status != 201 {
		t.Fatalf("rule: %d %s", r.status, r.body)
	}
	r := do(t, "POST", srv.URL+"/waInstance1/sendMessage/t", "", `{"chatId":"79001234567@c.us","message":"x"}`)
	if r.status != 429 || r.header.Get("Retry-After") != "7" {
		t.Errorf("%d Retry-After %q, want 429 and 7", r.status, r.header.Get("Retry-After"))
	}
	if r := do(t, "POST", srv.URL+"/waInstance1/sendMessage/t", "", `{"chatId":"79001234567@c.us","message":"x"}`); r.status != 200 {
		t.Errorf("after the rule's one failure: %d", r.status)
	}
}
