package smsnats_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/phone"
	"github.com/herald-notify/herald/internal/provider"
	"github.com/herald-notify/herald/internal/sms"
	"github.com/herald-notify/herald/internal/smsnats"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/testutil"
)

// setup starts a server with a stream on subject (none when subject is empty).
func setup(t *testing.T, subject string) jetstream.JetStream {
	t.Helper()
	_, js := testutil.StartNATS(t).Connect(t)
	if subject != "" {
		if _, err := smsnats.EnsureStream(t.Context(), js, subject); err != nil {
			t.Fatal(err)
		}
	}
	return js
}

func msgCount(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	ctx := context.Background() // also called from Cleanup, after t.Context() ends
	s, err := js.Stream(ctx, smsnats.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestSendPublishes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     smsnats.Config
		msg     sms.Message
		subject string
		want    smsnats.Outbound
	}{
		{
			name:    "GSM-7 on the default subject",
			msg:     sms.Message{JobID: "order-1", To: "+79001234567", Text: "Order 1 is ready"},
			subject: "herald.sms.outbound",
			want:    smsnats.Outbound{JobID: "order-1", To: "+79001234567", Text: "Order 1 is ready", Encoding: "gsm7", Segments: 1},
		},
		{
			name:    "UCS-2, two parts, custom subject and sender",
			cfg:     smsnats.Config{Subject: "acme.sms.out", From: "Shop"},
			msg:     sms.Message{JobID: "order-2", To: "79001234567", Text: strings.Repeat("Заказ ждёт вас. ", 5)},
			subject: "acme.sms.out",
			want: smsnats.Outbound{JobID: "order-2", To: "+79001234567", Text: strings.Repeat("Заказ ждёт вас. ", 5),
				Encoding: "ucs2", Segments: 2, From: "Shop"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			js := setup(t, tt.subject)
			res, err := smsnats.New(js, tt.cfg).Send(t.Context(), tt.msg)
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if want := (provider.Result{MessageID: "nats:" + tt.msg.JobID, Segments: tt.want.Segments}); res != want {
				t.Errorf("result = %+v, want %+v", res, want)
			}
			s, err := js.Stream(t.Context(), smsnats.DefaultStream)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := s.GetLastMsgForSubject(t.Context(), tt.subject)
			if err != nil {
				t.Fatalf("no message on %s: %v", tt.subject, err)
			}
			if got := raw.Header.Get(jetstream.MsgIDHeader); got != tt.msg.JobID {
				t.Errorf("Nats-Msg-Id = %q, want %q", got, tt.msg.JobID)
			}
			var got smsnats.Outbound
			dec := json.NewDecoder(bytes.NewReader(raw.Data))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("decode %s: %v", raw.Data, err)
			}
			if got != tt.want {
				t.Errorf("published %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSendDeduplicatesByJobID(t *testing.T) {
	t.Parallel()
	js := setup(t, smsnats.DefaultSubject)
	d := smsnats.New(js, smsnats.Config{})
	for i, id := range []string{"job-a", "job-a", "job-b", "job-a"} {
		res, err := d.Send(t.Context(), sms.Message{JobID: id, To: "+79001234567", Text: "hello"})
		if err != nil {
			t.Fatalf("send %d (%s): %v", i, id, err)
		}
		if res.MessageID != "nats:"+id {
			t.Errorf("send %d: MessageID = %q", i, res.MessageID)
		}
	}
	if n := msgCount(t, js); n != 2 {
		t.Errorf("stream holds %d messages, want 2 (job-a once, job-b once)", n)
	}
}

func TestSendWithoutStream(t *testing.T) {
	t.Parallel()
	js := setup(t, "")
	_, err := smsnats.New(js, smsnats.Config{}).Send(t.Context(), sms.Message{JobID: "j", To: "+79001234567", Text: "hi"})
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Kind != provider.Sender || !errors.Is(err, smsnats.ErrNoStream) {
		t.Fatalf("err = %v, want a Sender error wrapping ErrNoStream", err)
	}
	if !strings.Contains(pe.Reason, smsnats.DefaultSubject) {
		t.Errorf("reason %q does not name the subject", pe.Reason)
	}
}

func TestSendCanceled(t *testing.T) {
	t.Parallel()
	js := setup(t, smsnats.DefaultSubject)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := smsnats.New(js, smsnats.Config{}).Send(ctx, sms.Message{JobID: "j", To: "+79001234567", Text: "hi"})
	var pe *provider.Error
	if !errors.Is(err, context.Canceled) || errors.As(err, &pe) {
		t.Fatalf("err = %v, want a plain wrapped context.Canceled", err)
	}
}

func TestSendRejectsInvalidMessages(t *testing.T) {
	t.Parallel()
	js := setup(t, smsnats.DefaultSubject)
	d := smsnats.New(js, smsnats.Config{MaxSegments: 2})
	tests := []struct {
		name     string
		msg      sms.Message
		code     string
		sentinel error
	}{
		{"empty text", sms.Message{JobID: "j1", To: "+79001234567"}, "invalid_message", nil},
		{"invalid UTF-8", sms.Message{JobID: "j2", To: "+79001234567", Text: "a\xffb"}, "invalid_message", nil},
		{"bad recipient", sms.Message{JobID: "j3", To: "call me", Text: "hi"}, "invalid_message", nil},
		{"no job id", sms.Message{To: "+79001234567", Text: "hi"}, "invalid_message", nil},
		{"three GSM-7 parts over a cap of two", sms.Message{JobID: "j4", To: "+79001234567", Text: strings.Repeat("a", 307)}, "too_many_segments", sms.ErrTooManySegments},
		{"three UCS-2 parts over a cap of two", sms.Message{JobID: "j5", To: "+79001234567", Text: strings.Repeat("ж", 135)}, "too_many_segments", sms.ErrTooManySegments},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := d.Send(t.Context(), tt.msg)
			var pe *provider.Error
			if !errors.As(err, &pe) || pe.Kind != provider.Job || pe.Code != tt.code {
				t.Fatalf("err = %v, want a Job error %s", err, tt.code)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("err = %v, want it to wrap %v", err, tt.sentinel)
			}
		})
	}
	t.Cleanup(func() {
		if n := msgCount(t, js); n != 0 {
			t.Errorf("%d invalid messages were published", n)
		}
	})
}

func TestEnsureStreamKeepsTheIntegrationsStream(t *testing.T) {
	t.Parallel()
	js := setup(t, "")
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "SMSGW", Subjects: []string{"gw.sms.>"}}); err != nil {
		t.Fatal(err)
	}
	name, err := smsnats.EnsureStream(t.Context(), js, "gw.sms.out")
	if err != nil || name != "SMSGW" {
		t.Fatalf("EnsureStream = %q, %v; want SMSGW", name, err)
	}
	if _, err := js.Stream(t.Context(), smsnats.DefaultStream); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("%s was created beside the integration's stream (err %v)", smsnats.DefaultStream, err)
	}
	if _, err := smsnats.New(js, smsnats.Config{Subject: "gw.sms.out"}).Send(t.Context(),
		sms.Message{JobID: "j", To: "+79001234567", Text: "hi"}); err != nil {
		t.Errorf("send into the integration's stream: %v", err)
	}
}

type syncBuffer = testutil.LogBuffer

func TestSubscribeDeliversReports(t *testing.T) {
	t.Parallel()
	nc, _ := testutil.StartNATS(t).Connect(t)
	var logs syncBuffer
	var (
		mu  sync.Mutex
		got []status.Report
	)
	handle := func(_ context.Context, r status.Report) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, r)
		if r.JobRef == "default/refuse" {
			return errors.New("redis down")
		}
		return nil
	}
	received := func() []status.Report {
		mu.Lock()
		defer mu.Unlock()
		return append([]status.Report(nil), got...)
	}
	_, err := smsnats.Subscribe(t.Context(), nc, smsnats.SubscribeConfig{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, handle)
	if err != nil {
		t.Fatal(err)
	}

	publish := []string{
		`not json`,
		`{"message_id":"m0","state":"delivered"}`,
		`{"job_id":"j0","state":"teleported"}`,
		`{"job_id":"j1","message_id":"gw-1","state":"delivered"}`,
		`{"job_id":"j2","message_id":"gw-2","state":"failed","code":"err_001","reason":"absent subscriber +79001234567"}`,
		`{"job_id":"j3","state":"ACCEPTED"}`,
	}
	for _, p := range publish {
		if err := nc.Publish(smsnats.DefaultStatusSubject, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	want := []status.Report{
		{Channel: "sms", JobRef: "default/j1", MessageID: "nats:default/j1", State: status.Delivered},
		{Channel: "sms", JobRef: "default/j2", MessageID: "nats:default/j2", State: status.Failed, Code: "err_001", Reason: "SMS not delivered: absent subscriber " + phone.Mask("+79001234567")},
		{Channel: "sms", JobRef: "default/j3", MessageID: "nats:default/j3", State: status.Sent},
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return len(received()) >= len(want) }, "reports not handled")
	handled := received()
	if len(handled) != len(want) {
		t.Fatalf("handled %+v, want %+v", handled, want)
	}
	for i := range want {
		if handled[i] != want[i] {
			t.Errorf("report %d = %+v, want %+v", i, handled[i], want[i])
		}
	}
	if n := strings.Count(logs.String(), "malformed SMS status report"); n != 3 {
		t.Errorf("%d malformed reports logged, want 3; log:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), "79001234567") {
		t.Errorf("a full phone number reached the log:\n%s", logs.String())
	}

	// A report sent as a request is answered, so the integration knows to re-send.
	for _, tt := range []struct{ body, want string }{
		{`{"job_id":"j4","state":"delivered"}`, "+OK"},
		{`{"job_id":"refuse","state":"delivered"}`, "-ERR"},
		{`{"state":"delivered"}`, "-ERR"},
	} {
		resp, err := nc.Request(smsnats.DefaultStatusSubject, []byte(tt.body), 5*time.Second)
		if err != nil || string(resp.Data) != tt.want {
			t.Errorf("request %s: answer %v, %v; want %s", tt.body, resp, err, tt.want)
		} else if resp != nil && string(resp.Data) != tt.want {
			t.Errorf("request %s: answer %q, want %s", tt.body, resp.Data, tt.want)
		}
	}
	if !strings.Contains(logs.String(), "not applied") {
		t.Errorf("handler error not logged:\n%s", logs.String())
	}
}

func TestSubscribeStopsWithContext(t *testing.T) {
	t.Parallel()
	nc, _ := testutil.StartNATS(t).Connect(t)
	ctx, cancel := context.WithCancel(t.Context())
	sub, err := smsnats.Subscribe(ctx, nc, smsnats.SubscribeConfig{Subject: "gw.status", Queue: "q"},
		func(context.Context, status.Report) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !sub.IsValid() || sub.Subject != "gw.status" || sub.Queue != "q" {
		t.Fatalf("subscription %q/%q valid=%v", sub.Subject, sub.Queue, sub.IsValid())
	}
	cancel()
	testutil.Eventually(t, 5*time.Second, func() bool { return !sub.IsValid() }, "subscription still active after ctx end")
}

func TestParseReport(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in    string
		state string
		code  string
		bad   bool
		ref   string // "": the bare id a, in the default tenant
	}{
		{in: `{"job_id":"a","state":"delivered"}`, state: status.Delivered},
		{in: `{"job_id":"a","state":"undelivered","code":"x"}`, state: status.Failed, code: "x"},
		{in: `{"job_id":"a","state":"rejected"}`, state: status.Failed},
		{in: `{"job_id":"a","state":"expired"}`, state: status.Failed},
		{in: `{"job_id":"a","state":"buffered","code":"ignored for non-failures"}`, state: status.Sent},
		{in: `{"job_id":"  ","state":"delivered"}`, bad: true},
		{in: `{"job_id":"` + strings.Repeat("x", 193) + `","state":"delivered"}`, bad: true},
		{in: `{"job_id":"shop/a","state":"delivered"}`, state: status.Delivered, ref: "shop/a"},
		{in: `{"job_id":"a"}`, bad: true},
		{in: `[]`, bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in[:min(len(tt.in), 40)], func(t *testing.T) {
			t.Parallel()
			r, err := smsnats.ParseReport([]byte(tt.in))
			if tt.bad {
				if !errors.Is(err, smsnats.ErrInvalidReport) {
					t.Fatalf("err = %v, want ErrInvalidReport", err)
				}
				return
			}
			ref := tt.ref
			if ref == "" {
				ref = "default/a"
			}
			if err != nil || r.State != tt.state || r.Code != tt.code || r.JobRef != ref || r.MessageID != "nats:"+ref {
				t.Fatalf("ParseReport = %+v, %v; want state %s code %q", r, err, tt.state, tt.code)
			}
		})
	}
}
