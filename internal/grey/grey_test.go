package grey_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/grey"
	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/provider"
	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/testutil"
)

const (
	instance = "1101000001"
	token    = "c0ffee5ecret7ok3n"
	to       = "+79001234567"
)

// env is a simulator behind a loopback listener that also counts the send requests reaching
// it, rejected or not.
type env struct {
	sim   *sim.Sim
	url   string
	sends atomic.Int64
}

func startSim(t *testing.T, cfg sim.Config) *env {
	t.Helper()
	if cfg.GreyInstanceID == "" {
		cfg.GreyInstanceID = instance
	}
	if cfg.GreyToken == "" {
		cfg.GreyToken = token
	}
	e := &env{sim: sim.New(cfg)}
	h := e.sim.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/sendMessage/") || strings.Contains(r.URL.Path, "/sendFileByUrl/") {
			e.sends.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	e.sim.Start(t.Context())
	e.url = srv.URL
	return e
}

func (e *env) client(mod func(*grey.Config)) *grey.Client {
	cfg := grey.Config{BaseURL: e.url, InstanceID: instance, Token: token}
	if mod != nil {
		mod(&cfg)
	}
	return grey.New(cfg, nil)
}

func classified(t *testing.T, err error) *provider.Error {
	t.Helper()
	var pe *provider.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v is not a *provider.Error", err)
	}
	if strings.Contains(err.Error(), token) || strings.Contains(pe.Reason, token) {
		t.Fatalf("error leaks the token: %v", err)
	}
	if strings.Contains(pe.Reason, "79001234567") {
		t.Fatalf("reason carries a full phone number: %q", pe.Reason)
	}
	return pe
}

func TestSendText(t *testing.T) {
	t.Parallel()
	e := startSim(t, sim.Config{})
	c := e.client(nil)
	res, err := c.Send(t.Context(), grey.Message{JobID: "order-1", To: to, Text: "Заказ 123456 готов"})
	if err != nil {
		t.Fatal(err)
	}
	msgs := e.sim.Messages()
	if len(msgs) != 1 {
		t.Fatalf("sim saw %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if res.MessageID == "" || m.MessageID != res.MessageID {
		t.Errorf("MessageID %q, sim recorded %q", res.MessageID, m.MessageID)
	}
	if m.Channel != "grey" || m.To != "79001234567" || m.Type != "text" || m.Text != "Заказ 123456 готов" {
		t.Errorf("sim recorded %+v", m)
	}
	var body map[string]string
	if err := json.Unmarshal(m.Body, &body); err != nil || body["chatId"] != "79001234567@c.us" {
		t.Errorf("body %s: chatId must be 79001234567@c.us", m.Body)
	}
	if c.Breaker() != grey.BreakerClosed {
		t.Errorf("breaker %v after a success", c.Breaker())
	}
}

func TestSendMedia(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name               string
		text               string
		media              job.Media
		wantType, wantName string
		wantCaption        string
	}{
		{"document with a name", "Ваш чек", job.Media{Type: job.MediaDocument, URL: "https://shop.example/r/123.pdf?sig=1", Filename: "receipt.pdf"}, "document", "receipt.pdf", "Ваш чек"},
		{"image named by its URL", "", job.Media{Type: job.MediaImage, URL: "https://shop.example/img/banner.png", Caption: "Скидки"}, "image", "banner.png", "Скидки"},
		{"video without a name anywhere", "Смотрите", job.Media{Type: job.MediaVideo, URL: "https://shop.example/v/"}, "video", "video.mp4", "Смотрите"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := startSim(t, sim.Config{})
			res, err := e.client(nil).Send(t.Context(), grey.Message{JobID: "j", To: to, Text: tt.text, Media: &tt.media})
			if err != nil {
				t.Fatal(err)
			}
			m := e.sim.Messages()[0]
			if m.MessageID != res.MessageID || m.Type != tt.wantType || m.Text != tt.wantCaption {
				t.Errorf("sim recorded %+v, result %+v", m, res)
			}
			var body map[string]string
			if err := json.Unmarshal(m.Body, &body); err != nil {
				t.Fatal(err)
			}
			if body["urlFile"] != tt.media.URL || body["fileName"] != tt.wantName || body["chatId"] != "79001234567@c.us" {
				t.Errorf("sendFileByUrl body %s", m.Body)
			}
		})
	}
}

func TestSendInvalid(t *testing.T) {
	t.Parallel()
	e := startSim(t, sim.Config{})
	c := e.client(nil)
	tests := []struct {
		name string
		m    grey.Message
		kind provider.Kind
	}{
		{"no text", grey.Message{To: to}, provider.Job},
		{"not E.164", grey.Message{To: "+7 900 abc", Text: "x"}, provider.Job},
		{"media without URL", grey.Message{To: to, Media: &job.Media{Type: job.MediaImage}}, provider.Job},
		{"too long for the gateway", grey.Message{To: to, Text: strings.Repeat("я", 20001)}, provider.Channel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Send(t.Context(), tt.m)
			if pe := classified(t, err); pe.Kind != tt.kind {
				t.Errorf("kind %v, want %v (%v)", pe.Kind, tt.kind, err)
			}
		})
	}
	if n := e.sends.Load(); n != 0 {
		t.Errorf("%d invalid messages reached the gateway", n)
	}
}

// TestClassification runs every row of the answer table through the simulator.
func TestClassification(t *testing.T) {
	t.Parallel()
	closedSrv := httptest.NewServer(http.NotFoundHandler())
	closedURL := closedSrv.URL
	closedSrv.Close()
	noID := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"saved":true}`)
	}))
	t.Cleanup(noID.Close)

	tests := []struct {
		name    string
		sim     sim.Config
		rule    *sim.Rule
		state   string
		to      string
		client  func(*grey.Config)
		kind    provider.Kind
		code    string
		after   time.Duration
		breaker grey.BreakerState
	}{
		{name: "429 with Retry-After", rule: &sim.Rule{Channel: "grey", HTTPStatus: 429, RetryAfter: 7},
			kind: provider.Retry, code: "http_429", after: 7 * time.Second},
		{name: "500", rule: &sim.Rule{Channel: "grey", HTTPStatus: 500}, kind: provider.Retry, code: "http_500"},
		{name: "503", rule: &sim.Rule{Channel: "grey", HTTPStatus: 503}, kind: provider.Retry, code: "http_503"},
		{name: "timeout", sim: sim.Config{Latency: 2 * time.Second},
			client: func(c *grey.Config) { c.Timeout = 50 * time.Millisecond }, kind: provider.Retry, code: "timeout"},
		{name: "unreachable", client: func(c *grey.Config) { c.BaseURL = closedURL }, kind: provider.Retry, code: "connection"},
		{name: "200 without idMessage", client: func(c *grey.Config) { c.BaseURL = noID.URL }, kind: provider.Retry, code: "bad_response"},
		{name: "401 wrong token", client: func(c *grey.Config) { c.Token = "wrong-" + token }, kind: provider.Sender, code: "http_401", breaker: grey.BreakerOpen},
		{name: "403", rule: &sim.Rule{Channel: "grey", HTTPStatus: 403}, kind: provider.Sender, code: "http_403", breaker: grey.BreakerOpen},
		{name: "466 quota", rule: &sim.Rule{Channel: "grey", Code: 466}, kind: provider.Sender, code: "grey_quota", breaker: grey.BreakerOpen},
		{name: "400 bad chatId", to: "+1234", kind: provider.Channel, code: "grey_bad_chat"},
		{name: "400 other", rule: &sim.Rule{Channel: "grey", HTTPStatus: 400}, kind: provider.Channel, code: "http_400"},
		{name: "400 not authorized", state: sim.GreyNotAuthorized, kind: provider.Sender, code: "grey_notAuthorized", breaker: grey.BreakerOpen},
		{name: "400 blocked", state: sim.GreyBlocked, kind: provider.Sender, code: "grey_notAuthorized", breaker: grey.BreakerOpen},
		{name: "400 starting", state: sim.GreyStarting, kind: provider.Retry, code: "grey_starting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := startSim(t, tt.sim)
			if tt.rule != nil {
				e.sim.AddRule(*tt.rule)
			}
			if tt.state != "" {
				if err := e.sim.SetGreyState("", tt.state); err != nil {
					t.Fatal(err)
				}
			}
			recipient := to
			if tt.to != "" {
				recipient = tt.to
			}
			c := e.client(tt.client)
			_, err := c.Send(t.Context(), grey.Message{JobID: "j", To: recipient, Text: "hello"})
			pe := classified(t, err)
			if pe.Kind != tt.kind || pe.Code != tt.code || pe.After != tt.after {
				t.Errorf("got %v/%s after %v (%v), want %v/%s after %v", pe.Kind, pe.Code, pe.After, err, tt.kind, tt.code, tt.after)
			}
			if got := c.Breaker(); got != tt.breaker {
				t.Errorf("breaker %v, want %v", got, tt.breaker)
			}
		})
	}
}

// TestBreakerNotAuthorizedMidRun: the instance is logged out between sends; once the probe
// sees it, sends fail fast with a Channel error and reach the gateway no more, and a healthy
// probe closes the breaker again.
func TestBreakerNotAuthorizedMidRun(t *testing.T) {
	t.Parallel()
	e := startSim(t, sim.Config{})
	var mu sync.Mutex
	var changes []string
	c := e.client(func(cfg *grey.Config) {
		cfg.OnStateChange = func(from, to grey.BreakerState) {
			mu.Lock()
			changes = append(changes, from.String()+">"+to.String())
			mu.Unlock()
		}
	})
	ctx := t.Context()
	for range 3 {
		if _, err := c.Send(ctx, grey.Message{To: to, Text: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.sim.SetGreyState(instance, sim.GreyNotAuthorized); err != nil {
		t.Fatal(err)
	}
	if st, err := c.State(ctx); err != nil || st != grey.StateNotAuthorized {
		t.Fatalf("State = %q, %v", st, err)
	}
	if c.Breaker() != grey.BreakerOpen {
		t.Fatalf("breaker %v after notAuthorized", c.Breaker())
	}
	sendsBefore, msgsBefore := e.sends.Load(), len(e.sim.Messages())
	for range 10 {
		_, err := c.Send(ctx, grey.Message{To: to, Text: "falls back"})
		pe := classified(t, err)
		if pe.Kind != provider.Channel || pe.Code != "breaker_open" || !errors.Is(err, grey.ErrBreakerOpen) {
			t.Fatalf("got %v/%s (%v), want channel/breaker_open", pe.Kind, pe.Code, err)
		}
	}
	if n, m := e.sends.Load(), len(e.sim.Messages()); n != sendsBefore || m != msgsBefore {
		t.Fatalf("%d requests and %d messages reached the gateway while the breaker was open", n-sendsBefore, m-msgsBefore)
	}

	if err := e.sim.SetGreyState(instance, sim.GreyAuthorized); err != nil {
		t.Fatal(err)
	}
	if st, err := c.State(ctx); err != nil || st != grey.StateAuthorized {
		t.Fatalf("State = %q, %v", st, err)
	}
	if c.Breaker() != grey.BreakerClosed {
		t.Fatalf("breaker %v after a healthy probe", c.Breaker())
	}
	if _, err := c.Send(ctx, grey.Message{To: to, Text: "back"}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(changes, ",") != "closed>open,open>closed" {
		t.Errorf("OnStateChange saw %v", changes)
	}
}

// TestBreakerFromWebhookAndWatch: stateInstanceChanged webhooks from the simulator, parsed and
// observed, and the Watch loop both move the breaker.
func TestBreakerFromWebhookAndWatch(t *testing.T) {
	t.Parallel()
	var client atomic.Pointer[grey.Client]
	var states sync.Map
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ev, err := grey.ParseWebhook(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if ev.Type == grey.TypeStateInstanceChanged {
			states.Store(ev.State, true)
			if c := client.Load(); c != nil {
				c.ObserveState(r.Context(), ev.State)
			}
		}
	}))
	t.Cleanup(recv.Close)
	e := startSim(t, sim.Config{GreyWebhookURL: recv.URL})

	t.Run("webhook", func(t *testing.T) {
		c := e.client(nil)
		client.Store(c)
		if err := e.sim.SetGreyState("", sim.GreySleepMode); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 5*time.Second, func() bool { return c.Breaker() == grey.BreakerOpen }, "breaker opens on a sleepMode webhook")
		if err := e.sim.SetGreyState("", sim.GreyAuthorized); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 5*time.Second, func() bool { return c.Breaker() == grey.BreakerClosed }, "breaker closes on an authorized webhook")
		client.Store(nil)
	})
	t.Run("watch", func(t *testing.T) {
		c := e.client(nil)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { c.Watch(ctx, 5*time.Millisecond); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		if err := e.sim.SetGreyState("", sim.GreyYellowCard); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 5*time.Second, func() bool { return c.Breaker() == grey.BreakerOpen }, "Watch opens on yellowCard")
		if err := e.sim.SetGreyState("", sim.GreyAuthorized); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 5*time.Second, func() bool { return c.Breaker() == grey.BreakerClosed }, "Watch closes on authorized")
	})
	for _, st := range []string{sim.GreySleepMode, sim.GreyYellowCard, sim.GreyAuthorized} {
		testutil.Eventually(t, 5*time.Second, func() bool { _, ok := states.Load(st); return ok }, "stateInstanceChanged %s delivered", st)
	}
}

// clock is a settable clock for the cooldown.
type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func send(ctx context.Context, c *grey.Client) error {
	_, err := c.Send(ctx, grey.Message{To: to, Text: "x"})
	return err
}

func TestBreakerFailuresAndCooldown(t *testing.T) {
	t.Parallel()
	e := startSim(t, sim.Config{})
	clk := newClock()
	c := e.client(func(cfg *grey.Config) {
		cfg.Breaker = grey.BreakerConfig{Failures: 3, Cooldown: time.Minute}
		cfg.Now = clk.Now
	})
	ctx := t.Context()

	// 429s say nothing about the instance's health; a success resets the count.
	e.sim.AddRule(sim.Rule{Channel: "grey", HTTPStatus: 429, Times: 5})
	for range 5 {
		if pe := classified(t, send(ctx, c)); pe.Code != "http_429" {
			t.Fatalf("got %s, want http_429", pe.Code)
		}
	}
	e.sim.ClearRules()
	e.sim.AddRule(sim.Rule{Channel: "grey", HTTPStatus: 502, Times: 2})
	for range 2 {
		classified(t, send(ctx, c))
	}
	if err := send(ctx, c); err != nil {
		t.Fatal(err)
	}
	if c.Breaker() != grey.BreakerClosed {
		t.Fatalf("breaker %v after 2 failures and a success", c.Breaker())
	}

	e.sim.ClearRules()
	e.sim.AddRule(sim.Rule{Channel: "grey", HTTPStatus: 502})
	for i := range 3 {
		if pe := classified(t, send(ctx, c)); pe.Code != "http_502" {
			t.Fatalf("send %d: got %s, want http_502", i, pe.Code)
		}
	}
	if c.Breaker() != grey.BreakerOpen {
		t.Fatalf("breaker %v after 3 consecutive failures", c.Breaker())
	}
	before := e.sends.Load()
	if pe := classified(t, send(ctx, c)); pe.Code != "breaker_open" || pe.Kind != provider.Channel {
		t.Fatalf("got %v/%s, want channel/breaker_open", pe.Kind, pe.Code)
	}
	// An authorized probe does not vouch for a breaker opened by failures: half-open only.
	if _, err := c.State(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Breaker() != grey.BreakerHalfOpen {
		t.Fatalf("breaker %v after an authorized probe, want half-open", c.Breaker())
	}
	// The trial fails: open again, for a whole new cooldown.
	if pe := classified(t, send(ctx, c)); pe.Code != "http_502" {
		t.Fatalf("trial: got %s, want http_502", pe.Code)
	}
	if c.Breaker() != grey.BreakerOpen {
		t.Fatalf("breaker %v after a failed trial", c.Breaker())
	}
	clk.Add(59 * time.Second)
	if c.Breaker() != grey.BreakerOpen {
		t.Fatal("breaker left open state before the cooldown ended")
	}
	clk.Add(time.Second)
	if c.Breaker() != grey.BreakerHalfOpen {
		t.Fatalf("breaker %v after the cooldown, want half-open", c.Breaker())
	}
	e.sim.ClearRules()
	if err := send(ctx, c); err != nil {
		t.Fatalf("trial: %v", err)
	}
	if c.Breaker() != grey.BreakerClosed {
		t.Fatalf("breaker %v after a successful trial", c.Breaker())
	}
	if n := e.sends.Load() - before; n != 2 {
		t.Errorf("%d sends reached the gateway after opening, want the 2 trials", n)
	}
}

// TestHalfOpenOneTrial: while a trial is in flight, other sends still fall back.
func TestHalfOpenOneTrial(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var inFlight atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inFlight.Add(1)
		<-release
		_, _ = io.WriteString(w, `{"idMessage":"TRIAL"}`)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	ctx := t.Context()
	// A sleepMode that outlives a (tiny) cooldown: half-open, and the next send is the trial.
	c2 := grey.New(grey.Config{BaseURL: srv.URL, InstanceID: instance, Token: token,
		Breaker: grey.BreakerConfig{Cooldown: time.Nanosecond}}, nil)
	c2.ObserveState(ctx, grey.StateSleepMode)
	testutil.Eventually(t, time.Second, func() bool { return c2.Breaker() == grey.BreakerHalfOpen }, "cooldown")
	errc := make(chan error, 1)
	go func() { errc <- send(ctx, c2) }()
	testutil.Eventually(t, 5*time.Second, func() bool { return inFlight.Load() == 1 }, "trial in flight")
	if pe := classified(t, send(ctx, c2)); pe.Code != "breaker_open" {
		t.Fatalf("second send during the trial: %s", pe.Code)
	}
	close(release)
	if err := <-errc; err != nil {
		t.Fatalf("trial: %v", err)
	}
	if c2.Breaker() != grey.BreakerClosed {
		t.Fatalf("breaker %v after the trial", c2.Breaker())
	}
}

func TestOnBlocked(t *testing.T) {
	t.Parallel()
	e := startSim(t, sim.Config{})
	var blocked atomic.Int64
	type key struct{}
	c := e.client(func(cfg *grey.Config) {
		cfg.OnBlocked = func(ctx context.Context) {
			if ctx.Value(key{}) != "probe" && ctx.Value(key{}) != "webhook" {
				t.Errorf("OnBlocked got a context without the caller's value")
			}
			blocked.Add(1)
		}
	})
	ctx := context.WithValue(t.Context(), key{}, "probe")
	if err := e.sim.SetGreyState("", sim.GreyBlocked); err != nil {
		t.Fatal(err)
	}
	for range 3 { // repeated probes of the same ban raise it once
		if st, err := c.State(ctx); err != nil || st != grey.StateBlocked {
			t.Fatalf("State = %q, %v", st, err)
		}
	}
	if n := blocked.Load(); n != 1 {
		t.Fatalf("OnBlocked called %d times, want 1", n)
	}
	if c.Breaker() != grey.BreakerOpen {
		t.Fatalf("breaker %v on blocked", c.Breaker())
	}
	if pe := classified(t, send(ctx, c)); pe.Code != "breaker_open" || !strings.Contains(pe.Reason, "blocked") {
		t.Fatalf("got %s: %s", pe.Code, pe.Reason)
	}
	// Unbanned, then banned again: a new event.
	c.ObserveState(ctx, grey.StateAuthorized)
	c.ObserveState(context.WithValue(t.Context(), key{}, "webhook"), grey.StateBlocked)
	if n := blocked.Load(); n != 2 {
		t.Fatalf("OnBlocked called %d times, want 2", n)
	}
}

func TestBreakerStateString(t *testing.T) {
	t.Parallel()
	for st, want := range map[grey.BreakerState]string{
		grey.BreakerClosed: "closed", grey.BreakerOpen: "open", grey.BreakerHalfOpen: "half-open", 9: "unknown",
	} {
		if st.String() != want {
			t.Errorf("%d.String() = %q, want %q", st, st.String(), want)
		}
	}
}
