package sms

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/provider"
)

const (
	testDLRSecret = "0123456789abcdef0123456789abcdef"
	testUser      = "herald"
	testPassword  = "s3cret-Pa55word"
	testDLRURL    = "https://herald.example/webhooks/sms"
)

// fakeKannel is an httptest sendsms endpoint that records each request's query.
func fakeKannel(t *testing.T, handler http.HandlerFunc) (*httptest.Server, func() []*http.Request) {
	t.Helper()
	var mu sync.Mutex
	var got []*http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Clone(context.Background()))
		mu.Unlock()
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []*http.Request {
		mu.Lock()
		defer mu.Unlock()
		return append([]*http.Request(nil), got...)
	}
}

func reply(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func newTestKannel(srv *httptest.Server, mod func(*KannelConfig)) *Kannel {
	cfg := KannelConfig{URL: srv.URL + "/cgi-bin/sendsms", User: testUser, Password: testPassword, From: "Shop", DLRURL: testDLRURL,
		DLRSecret: []byte(testDLRSecret)}
	if mod != nil {
		mod(&cfg)
	}
	return NewKannel(cfg, srv.Client())
}

func TestKannelSendQuery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		text   string
		coding string
		segs   int
	}{
		{"gsm", "Your order 123456 is ready: {pickup} €5", "0", 1},
		{"ucs2", "Заказ 123456 ждёт вас до 21.02.2021", "2", 1},
		{"long gsm", strings.Repeat("x", 200), "0", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, reqs := fakeKannel(t, reply(202, "0: Accepted for delivery"))
			res, err := newTestKannel(srv, nil).Send(context.Background(), Message{JobID: "order-1:ready", To: "+79001234567", Text: tt.text})
			if err != nil {
				t.Fatal(err)
			}
			if res.MessageID != "kannel:order-1:ready" || res.Segments != tt.segs {
				t.Errorf("Result = %+v", res)
			}
			r := reqs()[0]
			if r.Method != http.MethodGet || r.URL.Path != "/cgi-bin/sendsms" {
				t.Errorf("%s %s", r.Method, r.URL.Path)
			}
			q := r.URL.Query()
			want := map[string]string{
				"username": testUser,
				"password": testPassword,
				"from":     "Shop",
				"to":       "+79001234567",
				"text":     tt.text,
				"coding":   tt.coding,
				"charset":  "UTF-8",
				"dlr-mask": "31",
				"dlr-url":  testDLRURL + "?id=order-1%%3Aready&type=%d&to=%p&ts=%T&reply=%A&token=" + DLRToken([]byte(testDLRSecret), "order-1:ready"),
			}
			for k, v := range want {
				if got := q.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if len(q) != len(want) {
				t.Errorf("query has %d parameters, want %d: %v", len(q), len(want), q)
			}
			// The + must arrive as a plus, not decoded to a space.
			if !strings.Contains(r.URL.RawQuery, "to=%2B79001234567") {
				t.Errorf("raw query %s", r.URL.RawQuery)
			}
		})
	}
}

func TestKannelSendOptionalParameters(t *testing.T) {
	t.Parallel()
	srv, reqs := fakeKannel(t, reply(202, "3: Queued for later delivery"))
	k := NewKannel(KannelConfig{URL: srv.URL + "/cgi-bin/sendsms?smsc=mts", User: testUser, Password: testPassword,
		DLRURL: testDLRURL + "?tenant=shop", DLRMask: 3}, srv.Client())
	if _, err := k.Send(context.Background(), Message{JobID: "j1", To: "79001234567", Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	q := reqs()[0].URL.Query()
	if q.Has("from") || q.Get("smsc") != "mts" || q.Get("dlr-mask") != "3" || q.Get("to") != "+79001234567" ||
		q.Get("dlr-url") != testDLRURL+"?tenant=shop&id=j1&type=%d&to=%p&ts=%T&reply=%A" {
		t.Errorf("query %v", q)
	}

	srv2, reqs2 := fakeKannel(t, reply(202, "Sent."))
	k2 := newTestKannel(srv2, func(c *KannelConfig) { c.DLRURL = "" })
	if _, err := k2.Send(context.Background(), Message{JobID: "j2", To: "+79001234567", Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	if q := reqs2()[0].URL.Query(); q.Has("dlr-url") || q.Has("dlr-mask") {
		t.Errorf("no DLR URL configured but asked for reports: %v", q)
	}
}

// kannelFill does what Kannel's urltrans_fill_escape_codes does with a dlr-url when a report
// comes: replace its escapes, "%%" becoming "%" and unknown ones kept.
func kannelFill(pattern string, typ int, to string, ts int64, smscReply string) string {
	var b strings.Builder
	for i := 0; i < len(pattern); i++ {
		if pattern[i] != '%' || i+1 == len(pattern) {
			b.WriteByte(pattern[i])
			continue
		}
		i++
		switch pattern[i] {
		case 'd':
			b.WriteString(strconv.Itoa(typ))
		case 'p':
			b.WriteString(url.QueryEscape(to))
		case 'T':
			b.WriteString(strconv.FormatInt(ts, 10))
		case 'A':
			b.WriteString(url.QueryEscape(smscReply))
		case '%':
			b.WriteByte('%')
		case 'a', 'b', 'B', 'c', 'C', 'D', 'f', 'F', 'i', 'I', 'k', 'm', 'M', 'n', 'o', 'O', 'P', 'q', 'Q', 'r', 'R', 's', 'S', 't', 'u':
			// Kannel's other escapes; their values do not matter here, only that they are eaten.
		default:
			b.WriteByte('%')
			b.WriteByte(pattern[i])
		}
	}
	return b.String()
}

func TestKannelDLRRoundTrip(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"order-123456-ready", "shop:order.1_2", "weird id/ж%D0"} {
		t.Run(id, func(t *testing.T) {
			t.Parallel()
			srv, reqs := fakeKannel(t, reply(202, "0: Accepted for delivery"))
			if _, err := newTestKannel(srv, nil).Send(context.Background(), Message{JobID: id, To: "+79001234567", Text: "hi"}); err != nil {
				t.Fatal(err)
			}
			cb := kannelFill(reqs()[0].URL.Query().Get("dlr-url"), 1, "+79001234567", 1700000000, "id:42 stat:DELIVRD err:000")
			u, err := url.Parse(cb)
			if err != nil || u.Host != "herald.example" || u.Path != "/webhooks/sms" {
				t.Fatalf("callback %q: %v", cb, err)
			}
			d, err := ParseKannelDLR(u.Query())
			if err != nil {
				t.Fatal(err)
			}
			want := DLR{JobID: id, State: StateDelivered, Type: 1, To: "+79001234567", At: time.Unix(1700000000, 0).UTC(), Reply: "id:42 stat:DELIVRD err:000",
				Token: DLRToken([]byte(testDLRSecret), id)}
			if d != want {
				t.Errorf("DLR = %+v, want %+v", d, want)
			}
			// The report Kannel makes of the dlr-url proves itself; nobody else's does.
			if !VerifyDLRToken([]byte(testDLRSecret), d.JobID, d.Token) {
				t.Error("the dlr-url's token does not verify")
			}
			if VerifyDLRToken([]byte(testDLRSecret), d.JobID+"x", d.Token) {
				t.Error("the token verifies for another job")
			}
		})
	}
}

func TestKannelAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
		header map[string]string
		kind   provider.Kind // 0: success
		after  time.Duration
	}{
		{"accepted", 202, "0: Accepted for delivery", nil, 0, 0},
		{"queued", 202, "3: Queued for later delivery", nil, 0, 0},
		{"immediate reply", 202, "Sent.", nil, 0, 0},
		{"compatible gateway 200", 200, "0: Accepted for delivery", nil, 0, 0},
		{"auth failed", 403, "Authorization failed for sendsms", nil, provider.Sender, 0},
		{"unauthorized", 401, "", nil, provider.Sender, 0},
		{"not routable", 403, "Not routable. Do not try again.", nil, provider.Channel, 0},
		{"black list", 400, "Number(s) has/have been denied by white- and/or black-lists.", nil, provider.Channel, 0},
		{"missing receiver", 400, "Missing receiver number, rejected", nil, provider.Job, 0},
		{"empty receiver not allowed", 400, "Empty receiver number not allowed, rejected", nil, provider.Job, 0},
		{"charset", 400, "Charset or body misformed, rejected", nil, provider.Job, 0},
		{"sender missing", 400, "Sender missing and no global set, rejected", nil, provider.Sender, 0},
		{"dlr url", 400, "DLR-URL field misformed, rejected", nil, provider.Sender, 0},
		{"wrong endpoint", 404, "Unknown request.", nil, provider.Sender, 0},
		{"temporal failure", 503, "Temporal failure, try again later.", nil, provider.Retry, 0},
		{"sending failed", 500, "Sending failed.", nil, provider.Retry, 0},
		{"overloaded with Retry-After", 503, "", map[string]string{"Retry-After": "12"}, provider.Retry, 12 * time.Second},
		{"429", 429, "slow down", map[string]string{"Retry-After": "3"}, provider.Retry, 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := fakeKannel(t, func(w http.ResponseWriter, _ *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			res, err := newTestKannel(srv, nil).Send(context.Background(), Message{JobID: "j", To: "+79001234567", Text: "hi"})
			if tt.kind == 0 {
				if err != nil || res.MessageID != "kannel:j" || res.Segments != 1 {
					t.Fatalf("Send = %+v, %v", res, err)
				}
				return
			}
			var pe *provider.Error
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want *provider.Error", err)
			}
			if pe.Kind != tt.kind || pe.Code != "http_"+strconv.Itoa(tt.status) || pe.After != tt.after {
				t.Errorf("got %v %q after %v, want %v http_%d %v", pe.Kind, pe.Code, pe.After, tt.kind, tt.status, tt.after)
			}
			if tt.body != "" && !strings.Contains(pe.Reason, tt.body) {
				t.Errorf("Reason %q lacks Kannel's answer", pe.Reason)
			}
		})
	}
}

func TestKannelTooManySegments(t *testing.T) {
	t.Parallel()
	srv, reqs := fakeKannel(t, reply(202, "0: Accepted for delivery"))
	k := newTestKannel(srv, nil)
	_, err := k.Send(context.Background(), Message{JobID: "j", To: "+79001234567", Text: strings.Repeat("ж", 67*7+1)})
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Kind != provider.Job || !errors.Is(err, ErrTooManySegments) {
		t.Fatalf("err = %v, want a Job error wrapping ErrTooManySegments", err)
	}
	if pe.Reason != "SMS text needs 8 segments, HERALD_SMS_MAX_SEGMENTS is 6" {
		t.Errorf("Reason = %q", pe.Reason)
	}
	// Exactly the maximum goes out.
	res, err := k.Send(context.Background(), Message{JobID: "j", To: "+79001234567", Text: strings.Repeat("a", 153*6)})
	if err != nil || res.Segments != 6 {
		t.Errorf("6 segments: %+v, %v", res, err)
	}
	if n := len(reqs()); n != 1 {
		t.Errorf("%d requests, want only the 6-segment one", n)
	}
}

func TestKannelInvalidMessage(t *testing.T) {
	t.Parallel()
	tests := map[string]Message{
		"empty text":   {JobID: "j", To: "+79001234567"},
		"bad utf8":     {JobID: "j", To: "+79001234567", Text: "a\xffb"},
		"no recipient": {JobID: "j", Text: "hi"},
		"letters":      {JobID: "j", To: "+7900abc", Text: "hi"},
		"too long":     {JobID: "j", To: "+1234567890123456", Text: "hi"},
	}
	for name, m := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv, reqs := fakeKannel(t, reply(202, "0: Accepted for delivery"))
			_, err := newTestKannel(srv, nil).Send(context.Background(), m)
			if pe := provider.Classify(err); err == nil || pe.Kind != provider.Job || pe.Code != "invalid_message" {
				t.Fatalf("err = %v", err)
			}
			if len(reqs()) != 0 {
				t.Error("an invalid message reached Kannel")
			}
		})
	}
}

func TestKannelTimeoutCancelAndConnection(t *testing.T) {
	t.Parallel()
	m := Message{JobID: "j", To: "+79001234567", Text: "hi"}

	t.Run("own timeout is Retry", func(t *testing.T) {
		t.Parallel()
		srv, _ := fakeKannel(t, func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
		_, err := newTestKannel(srv, func(c *KannelConfig) { c.Timeout = 50 * time.Millisecond }).Send(context.Background(), m)
		var pe *provider.Error
		if !errors.As(err, &pe) || pe.Kind != provider.Retry || pe.Code != "timeout" || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want Retry timeout", err)
		}
	})
	t.Run("caller cancel is not a provider error", func(t *testing.T) {
		t.Parallel()
		arrived := make(chan struct{})
		srv, _ := fakeKannel(t, func(_ http.ResponseWriter, r *http.Request) {
			close(arrived)
			<-r.Context().Done()
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := newTestKannel(srv, nil).Send(ctx, m)
			done <- err
		}()
		<-arrived
		cancel()
		err := <-done
		var pe *provider.Error
		if !errors.Is(err, context.Canceled) || errors.As(err, &pe) {
			t.Fatalf("err = %v, want wrapped context.Canceled", err)
		}
	})
	t.Run("connection refused is Retry without the password", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		k := newTestKannel(srv, nil)
		srv.Close()
		_, err := k.Send(context.Background(), m)
		var pe *provider.Error
		if !errors.As(err, &pe) || pe.Kind != provider.Retry || pe.Code != "connection" {
			t.Fatalf("err = %v, want Retry connection", err)
		}
		token := DLRToken([]byte(testDLRSecret), "j")
		for e := error(pe); e != nil; e = errors.Unwrap(e) {
			if s := fmt.Sprintf("%v %+v", e, e); strings.Contains(s, testPassword) || strings.Contains(s, "79001234567") || strings.Contains(s, token) {
				t.Errorf("secret in error: %s", s)
			}
		}
	})
}

func TestKannelAnswerEchoingSecrets(t *testing.T) {
	t.Parallel()
	srv, _ := fakeKannel(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(400)
		io.WriteString(w, "bad request "+r.URL.RawQuery+" "+r.URL.Query().Get("password")+" "+r.URL.Query().Get("to"))
	})
	_, err := newTestKannel(srv, nil).Send(context.Background(), Message{JobID: "j", To: "+79001234567", Text: "hi"})
	if err == nil {
		t.Fatal("no error")
	}
	if s := err.Error(); strings.Contains(s, testPassword) || strings.Contains(s, "79001234567") || strings.Contains(s, DLRToken([]byte(testDLRSecret), "j")) {
		t.Errorf("secret in error: %s", s)
	}
}

func TestNewKannelDefaults(t *testing.T) {
	t.Parallel()
	k := NewKannel(KannelConfig{URL: "http://127.0.0.1:13013/cgi-bin/sendsms"}, nil)
	if k.cfg.DLRMask != 31 || k.cfg.MaxSegments != 6 || k.cfg.Timeout != 15*time.Second || k.hc == nil || k.hc.Timeout != 0 {
		t.Errorf("defaults: %+v", k.cfg)
	}
}
