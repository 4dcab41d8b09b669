package kanneltest_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/kanneltest"
	"github.com/herald-notify/herald/internal/provider"
	"github.com/herald-notify/herald/internal/sms"
	"github.com/herald-notify/herald/internal/testutil"
)

// dlrSink stands in for Herald's GET /webhooks/sms: it keeps every callback's query.
type dlrSink struct {
	mu      sync.Mutex
	queries []url.Values
	paths   []string
}

func newDLRSink(t *testing.T) (*dlrSink, string) {
	t.Helper()
	s := &dlrSink{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.queries = append(s.queries, r.URL.Query())
		s.paths = append(s.paths, r.Method+" "+r.URL.Path)
		s.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return s, srv.URL + "/webhooks/sms"
}

// reports parses every callback so far for jobID.
func (s *dlrSink) reports(t *testing.T, jobID string) []sms.DLR {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []sms.DLR
	for i, q := range s.queries {
		if s.paths[i] != "GET /webhooks/sms" {
			t.Errorf("delivery report came as %s", s.paths[i])
		}
		d, err := sms.ParseKannelDLR(q)
		if err != nil {
			t.Errorf("delivery report %v does not parse: %v", q, err)
			continue
		}
		if d.JobID == jobID {
			out = append(out, d)
		}
	}
	return out
}

func final(ds []sms.DLR) (sms.DLR, bool) {
	for _, d := range ds {
		if d.State == sms.StateDelivered || d.State == sms.StateFailed || d.State == sms.StateRejected {
			return d, true
		}
	}
	return sms.DLR{}, false
}

func TestKannelRoundTrip(t *testing.T) {
	t.Parallel()
	const unreachable = "+79009999999"
	k := kanneltest.Start(t, kanneltest.Options{Receipt: func(s kanneltest.Submit) string {
		if "+"+s.To == unreachable {
			return "UNDELIV"
		}
		return "DELIVRD"
	}})
	sink, dlrURL := newDLRSink(t)
	driver := sms.NewKannel(sms.KannelConfig{URL: k.SendSMSURL, User: k.User, Password: k.Password, DLRURL: dlrURL}, nil)

	tests := []struct {
		name   string
		jobID  string
		to     string
		text   string
		coding byte
		parts  int
		state  string
		stat   string
	}{
		{name: "GSM-7 with extension characters", jobID: "order-1:ready", to: "+79001234567",
			text: "Order 1 is ready @ pickup point 5, pay €12 {cash}", coding: 0, parts: 1, state: sms.StateDelivered, stat: "DELIVRD"},
		{name: "UCS-2 Cyrillic", jobID: "order-2.ready", to: "+79001234568",
			text: "Заказ 123456 ждёт вас до 21.02.2021", coding: 8, parts: 1, state: sms.StateDelivered, stat: "DELIVRD"},
		{name: "long UCS-2 in two parts", jobID: "order-3", to: "+79001234569",
			text: strings.Repeat("Ваш бонус сгорает. ", 5), coding: 8, parts: 2, state: sms.StateDelivered, stat: "DELIVRD"},
		{name: "undelivered", jobID: "order-4", to: unreachable,
			text: "Order 4 is ready", coding: 0, parts: 1, state: sms.StateFailed, stat: "UNDELIV"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := driver.Send(t.Context(), sms.Message{JobID: tt.jobID, To: tt.to, Text: tt.text})
			if err != nil {
				t.Fatalf("Send through Kannel: %v", err)
			}
			if want := (provider.Result{MessageID: "kannel:" + tt.jobID, Segments: tt.parts}); res != want {
				t.Errorf("result = %+v, want %+v", res, want)
			}

			var got []kanneltest.Submit
			testutil.Eventually(t, 10*time.Second, func() bool {
				got = got[:0]
				for _, s := range k.Submits() {
					if "+"+s.To == tt.to {
						got = append(got, s)
					}
				}
				return len(got) >= tt.parts
			}, "%d part(s) to %s did not reach the SMSC", tt.parts, tt.to)
			if len(got) != tt.parts {
				t.Fatalf("SMSC got %d parts, want %d: %+v", len(got), tt.parts, got)
			}
			var text strings.Builder
			receipts := 0
			for i, s := range got {
				if s.DataCoding != tt.coding || s.ToTON != 1 || s.From != kanneltest.DefaultSender {
					t.Errorf("part %d: coding %d TON %d from %q; want coding %d, TON 1, from %q",
						i, s.DataCoding, s.ToTON, s.From, tt.coding, kanneltest.DefaultSender)
				}
				if s.RegisteredDelivery&0x03 != 0 {
					receipts++
				}
				if multi := tt.parts > 1; multi != (s.UDH != nil) {
					t.Errorf("part %d: UDH %x, want one only for a long message", i, s.UDH)
				}
				text.WriteString(s.Text)
			}
			// Kannel asks for the receipt of a long message on one part only.
			if receipts != 1 {
				t.Errorf("%d parts asked for a delivery receipt, want 1", receipts)
			}
			if text.String() != tt.text {
				t.Errorf("SMSC got text %q, want %q", text.String(), tt.text)
			}

			var d sms.DLR
			testutil.Eventually(t, 10*time.Second, func() bool {
				var ok bool
				d, ok = final(sink.reports(t, tt.jobID))
				return ok
			}, "no final delivery report for %s", tt.jobID)
			if d.State != tt.state || d.To != tt.to || !strings.Contains(d.Reply, "stat:"+tt.stat) || d.At.IsZero() {
				t.Errorf("delivery report %+v, want state %s to %s with stat:%s in the reply", d, tt.state, tt.to, tt.stat)
			}
		})
	}
}

func TestStartWritesLoopbackConfig(t *testing.T) {
	t.Parallel()
	k := kanneltest.Start(t, kanneltest.Options{})
	for _, u := range []string{k.SendSMSURL, k.AdminURL} {
		pu, err := url.Parse(u)
		if err != nil || pu.Hostname() != "127.0.0.1" {
			t.Errorf("%s is not on loopback", u)
		}
	}
	// A wrong password is refused by the real smsbox: the credentials are the configured ones.
	driver := sms.NewKannel(sms.KannelConfig{URL: k.SendSMSURL, User: k.User, Password: "wrong"}, nil)
	_, err := driver.Send(t.Context(), sms.Message{JobID: "j", To: "+79001234567", Text: "hi"})
	if pe := provider.Classify(err); err == nil || pe.Kind != provider.Sender {
		t.Errorf("send with a wrong password: %v, want a Sender error", err)
	}
	if n := len(k.Submits()); n != 0 {
		t.Errorf("SMSC got %d submits from a refused request", n)
	}
}
