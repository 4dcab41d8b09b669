package smpp

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/linxGnu/gosmpp/data"

	"github.com/herald-notify/herald/internal/provider"
	"github.com/herald-notify/herald/internal/sms"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/testutil"
)

const (
	testTo     = "+79001234567"
	testDigits = "79001234567"
)

func TestSendEncodesAndSplits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		text   string
		coding byte
		parts  int
	}{
		{"short GSM-7 with extension characters", "Your code is 1234 [Herald] €5 @home ~ok", data.GSM7BITCoding, 1},
		{"160 GSM-7 septets is one SMS", strings.Repeat("x", 160), data.GSM7BITCoding, 1},
		{"Cyrillic is UCS-2", "Привет! Ваш код 1234, действует 5 минут.", data.UCS2Coding, 1},
		{"long GSM-7 never splits an escape", strings.Repeat("a", 152) + "€" + strings.Repeat("b", 200), data.GSM7BITCoding, 3},
		{"long Cyrillic UCS-2", strings.Repeat("Съешь же ещё этих мягких французских булок. ", 4), data.UCS2Coding, 3},
		{"long UCS-2 never splits a surrogate pair", strings.Repeat("Ж", 66) + "😀" + strings.Repeat("я", 100), data.UCS2Coding, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, _, seg := sms.Analyze(tt.text); seg != tt.parts {
				t.Fatalf("test text is %d segments by sms.Analyze, want %d", seg, tt.parts)
			}
			s := startSMSC(t, nil)
			var rep reports
			c, logs := dial(t, s, Config{OnReport: rep.add})

			res, err := c.Send(context.Background(), sms.Message{JobID: "job-1", To: testTo, Text: tt.text})
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			subs := s.submitted()
			if len(subs) != tt.parts {
				t.Fatalf("server saw %d submit_sm, want %d", len(subs), tt.parts)
			}
			want := provider.Result{MessageID: "smpp:" + subs[len(subs)-1].id, Segments: tt.parts}
			if res != want {
				t.Errorf("Result = %+v, want %+v", res, want)
			}

			var text strings.Builder
			ref := -1
			for i, sub := range subs {
				if sub.src != "Herald" || sub.srcTON != tonAlphanumeric || sub.srcNPI != npiUnknown {
					t.Errorf("part %d source = %q TON %d NPI %d, want alphanumeric Herald", i+1, sub.src, sub.srcTON, sub.srcNPI)
				}
				if sub.dst != testDigits || sub.dstTON != tonInternational || sub.dstNPI != npiISDN {
					t.Errorf("part %d destination = %q TON %d NPI %d, want %s international ISDN", i+1, sub.dst, sub.dstTON, sub.dstNPI, testDigits)
				}
				if sub.coding != tt.coding {
					t.Errorf("part %d data_coding = %d, want %d", i+1, sub.coding, tt.coding)
				}
				wantReg := byte(0)
				if i == len(subs)-1 {
					wantReg = 1 // a receipt for the last part only: it names Result.MessageID
				}
				if sub.reg != wantReg {
					t.Errorf("part %d registered_delivery = %d, want %d", i+1, sub.reg, wantReg)
				}
				payload := sub.sm
				if tt.parts > 1 {
					if sub.esm&0x40 == 0 {
						t.Fatalf("part %d esm_class = %#x, want the UDHI bit", i+1, sub.esm)
					}
					if len(payload) < 6 || !bytes.Equal(payload[:3], []byte{5, 0, 3}) {
						t.Fatalf("part %d UDH = % x, want 05 00 03 (8-bit concatenation)", i+1, payload[:min(6, len(payload))])
					}
					if ref == -1 {
						ref = int(payload[3])
					}
					if int(payload[3]) != ref || int(payload[4]) != tt.parts || int(payload[5]) != i+1 {
						t.Errorf("part %d UDH ref/total/seq = %d/%d/%d, want %d/%d/%d", i+1, payload[3], payload[4], payload[5], ref, tt.parts, i+1)
					}
					payload = payload[6:]
				} else if sub.esm != 0 {
					t.Errorf("single SMS esm_class = %#x, want 0", sub.esm)
				}
				limit := 160 // octets: unpacked GSM-7 septets, or UCS-2 code units times 2
				switch {
				case tt.coding == data.UCS2Coding && tt.parts > 1:
					limit = 134
				case tt.coding == data.UCS2Coding:
					limit = 140
				case tt.parts > 1:
					limit = 153
				}
				if len(payload) > limit {
					t.Errorf("part %d carries %d octets, more than %d", i+1, len(payload), limit)
				}
				enc := data.GSM7BIT
				if tt.coding == data.UCS2Coding {
					enc = data.UCS2
				}
				s, err := enc.Decode(payload)
				if err != nil {
					t.Fatalf("part %d does not decode: %v", i+1, err)
				}
				text.WriteString(s)
			}
			if text.String() != tt.text {
				t.Errorf("reassembled text = %q, want %q", text.String(), tt.text)
			}
			if strings.Contains(logs.String(), testDigits) {
				t.Errorf("logs carry the full number:\n%s", logs)
			}
		})
	}
}

func TestSendConsecutiveLongMessagesUseNewReferences(t *testing.T) {
	t.Parallel()
	s := startSMSC(t, nil)
	c, _ := dial(t, s, Config{})
	text := strings.Repeat("z", 200)
	for range 2 {
		if _, err := c.Send(context.Background(), sms.Message{To: testTo, Text: text}); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	subs := s.submitted()
	if len(subs) != 4 {
		t.Fatalf("server saw %d parts, want 4", len(subs))
	}
	if subs[0].sm[3] != subs[1].sm[3] || subs[0].sm[3] == subs[2].sm[3] || subs[2].sm[3] != subs[3].sm[3] {
		t.Errorf("references = %d %d %d %d, want one per message and different messages apart", subs[0].sm[3], subs[1].sm[3], subs[2].sm[3], subs[3].sm[3])
	}
	if subs[1].reg != 0 || subs[3].reg != 0 {
		t.Errorf("registered_delivery set without OnReport: %d %d", subs[1].reg, subs[3].reg)
	}
}

func TestSendSubmitErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		set    func(s *smsc)
		kind   provider.Kind
		code   string
		after  time.Duration
		target error
	}{
		{"throttled", func(s *smsc) { s.status[testDigits] = 0x58 }, provider.Retry, "ESME_RTHROTTLED", throttleDelay, nil},
		{"queue full", func(s *smsc) { s.status[testDigits] = 0x14 }, provider.Retry, "ESME_RMSGQFUL", queueFullDelay, nil},
		{"system error", func(s *smsc) { s.status[testDigits] = 0x08 }, provider.Retry, "ESME_RSYSERR", 0, nil},
		{"invalid destination", func(s *smsc) { s.status[testDigits] = 0x0B }, provider.Channel, "ESME_RINVDSTADR", 0, nil},
		{"invalid source", func(s *smsc) { s.status[testDigits] = 0x0A }, provider.Sender, "ESME_RINVSRCADR", 0, nil},
		{"invalid message length", func(s *smsc) { s.status[testDigits] = 0x01 }, provider.Job, "ESME_RINVMSGLEN", 0, nil},
		{"vendor-specific status", func(s *smsc) { s.status[testDigits] = 0x401 }, provider.Retry, "ESME_0x00000401", 0, nil},
		{"generic_nack", func(s *smsc) { s.nack[testDigits] = 0x03 }, provider.Retry, "ESME_RINVCMDID", 0, nil},
		{"no answer", func(s *smsc) { s.silent[testDigits] = true }, provider.Retry, "timeout", 0, nil},
		{"link dropped while waiting", func(s *smsc) { s.drop[testDigits] = true }, provider.Retry, "connection", 0, ErrLinkLost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startSMSC(t, tt.set)
			// Only "no answer" waits out the timeout: a slow answer on a loaded machine must not
			// turn into a timeout in the other rows.
			rt := 5 * time.Second
			if tt.name == "no answer" {
				rt = 300 * time.Millisecond
			}
			c, _ := dial(t, s, Config{ResponseTimeout: rt})
			_, err := c.Send(context.Background(), sms.Message{To: testTo, Text: "hello"})
			var pe *provider.Error
			if !errors.As(err, &pe) {
				t.Fatalf("Send error = %v, want a *provider.Error", err)
			}
			if pe.Kind != tt.kind || pe.Code != tt.code || pe.After != tt.after {
				t.Errorf("got %s %q after %s, want %s %q after %s (%v)", pe.Kind, pe.Code, pe.After, tt.kind, tt.code, tt.after, pe)
			}
			if tt.target != nil && !errors.Is(err, tt.target) {
				t.Errorf("error %v does not wrap %v", err, tt.target)
			}
			if strings.Contains(pe.Reason, testDigits) || strings.Contains(pe.Reason, testPassword) {
				t.Errorf("reason leaks the number or the password: %q", pe.Reason)
			}
		})
	}
}

func TestSendRejectsBadJobsWithoutSubmitting(t *testing.T) {
	t.Parallel()
	s := startSMSC(t, nil)
	c, _ := dial(t, s, Config{MaxSegments: 2})
	tests := []struct {
		name   string
		m      sms.Message
		code   string
		target error
	}{
		{"empty text", sms.Message{To: testTo}, "invalid_message", nil},
		{"invalid UTF-8", sms.Message{To: testTo, Text: "bad \xff"}, "invalid_message", nil},
		{"not a number", sms.Message{To: "+7900abc", Text: "hi"}, "invalid_message", nil},
		{"too long for MaxSegments", sms.Message{To: testTo, Text: strings.Repeat("a", 307)}, "too_many_segments", sms.ErrTooManySegments},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Send(context.Background(), tt.m)
			var pe *provider.Error
			if !errors.As(err, &pe) || pe.Kind != provider.Job || pe.Code != tt.code {
				t.Fatalf("Send error = %v, want Job %q", err, tt.code)
			}
			if tt.target != nil && !errors.Is(err, tt.target) {
				t.Errorf("error %v does not wrap %v", err, tt.target)
			}
		})
	}
	// Two full parts still go.
	if res, err := c.Send(context.Background(), sms.Message{To: testTo, Text: strings.Repeat("a", 306)}); err != nil || res.Segments != 2 {
		t.Fatalf("Send of 2 parts = %+v, %v", res, err)
	}
	if n := len(s.submitted()); n != 2 {
		t.Errorf("server saw %d submit_sm, want only the 2 parts of the valid message", n)
	}
}

func TestDeliveryReceipts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		receipts []receipt
		state    string
		code     string
	}{
		{"delivered", []receipt{{stat: "DELIVRD"}}, status.Delivered, ""},
		{"undeliverable", []receipt{{stat: "UNDELIV"}}, status.Failed, "smpp_UNDELIV"},
		{"expired, id in the TLV", []receipt{{stat: "EXPIRED", tlv: true}}, status.Failed, "smpp_EXPIRED"},
		{"rejected", []receipt{{stat: "REJECTD"}}, status.Failed, "smpp_REJECTD"},
		{"intermediate states are dropped", []receipt{{stat: "ENROUTE"}, {stat: "ACCEPTD"}, {stat: "DELIVRD", tlv: true}}, status.Delivered, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startSMSC(t, func(s *smsc) { s.receipts[testDigits] = tt.receipts })
			var rep reports
			c, _ := dial(t, s, Config{OnReport: rep.add})
			res, err := c.Send(context.Background(), sms.Message{JobID: "job-7", To: testTo, Text: "hello"})
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			// OnReport runs before the deliver_sm is answered, so once every answer is in,
			// every report is too.
			testutil.Eventually(t, 5*time.Second, func() bool { return len(s.deliverResponses()) == len(tt.receipts) },
				"server got %d deliver_sm_resp, want %d", len(s.deliverResponses()), len(tt.receipts))
			for i, h := range s.deliverResponses() {
				if h.Seq != uint32(1000+i) || h.Status != 0 {
					t.Errorf("deliver_sm_resp %d: seq %d status %#x, want seq %d status 0", i, h.Seq, h.Status, 1000+i)
				}
			}
			got := rep.list()
			if len(got) != 1 {
				t.Fatalf("OnReport got %+v, want exactly one report", got)
			}
			r := got[0]
			if r.MessageID != res.MessageID || r.State != tt.state || r.Code != tt.code {
				t.Errorf("report = %+v, want MessageID %q State %q Code %q", r, res.MessageID, tt.state, tt.code)
			}
			if tt.state == status.Failed && !strings.Contains(r.Reason, "stat:") {
				t.Errorf("failure reason %q does not name the receipt stat", r.Reason)
			}
		})
	}
}

func TestRebindsAfterTheLinkDrops(t *testing.T) {
	t.Parallel()
	s := startSMSC(t, nil)
	c, logs := dial(t, s, Config{})
	ctx := context.Background()
	if _, err := c.Send(ctx, sms.Message{To: testTo, Text: "before"}); err != nil {
		t.Fatalf("Send before the drop: %v", err)
	}
	s.dropConnections()

	var lastErr atomic.Value
	// The rebind backs off (0, 250 ms, 500 ms, 1 s, 2 s...): leave room for several tries.
	testutil.Eventually(t, 15*time.Second, func() bool {
		_, err := c.Send(ctx, sms.Message{To: testTo, Text: "after"})
		if err != nil {
			var pe *provider.Error
			if !errors.As(err, &pe) || pe.Kind != provider.Retry {
				t.Fatalf("Send during the drop = %v, want a Retry", err)
			}
			lastErr.Store(err.Error())
		}
		return err == nil
	}, "client did not bind again (last error %v)", lastErr.Load())

	subs := s.submitted()
	if last := subs[len(subs)-1]; last.conn == 0 {
		t.Errorf("the message after the drop went over connection %d, want a new one", last.conn)
	}
	if !strings.Contains(logs.String(), "link lost") {
		t.Errorf("the drop was not logged:\n%s", logs)
	}
	if out := logs.String(); strings.Contains(out, testPassword) || strings.Contains(out, testDigits) {
		t.Errorf("logs leak the password or the full number:\n%s", out)
	}
}

func TestRebindsAfterALinkLostMidSendOrAnUnbind(t *testing.T) {
	t.Parallel()
	const other = "+447700900123"
	tests := []struct {
		name   string
		set    func(s *smsc)
		target error // of the first Send; nil: it succeeds
	}{
		{"connection closed before the answer", func(s *smsc) { s.drop[testDigits] = true }, ErrLinkLost},
		{"unbind from the SMSC after the answer", func(s *smsc) { s.unbind[testDigits] = true }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startSMSC(t, tt.set)
			c, logs := dial(t, s, Config{})
			defer func() {
				if t.Failed() {
					t.Log(logs)
				}
			}()
			_, err := c.Send(context.Background(), sms.Message{To: testTo, Text: "first"})
			if (tt.target == nil && err != nil) || (tt.target != nil && !errors.Is(err, tt.target)) {
				t.Fatalf("first Send = %v, want %v", err, tt.target)
			}
			if tt.target == nil { // the client must have seen the unbind before sending again
				testutil.Eventually(t, 5*time.Second, func() bool { return s.unbindResponses() == 1 }, "unbind not answered")
			}
			testutil.Eventually(t, 15*time.Second, func() bool {
				_, err := c.Send(context.Background(), sms.Message{To: other, Text: "after"})
				return err == nil
			}, "client did not bind again")
			subs := s.submitted()
			if last := subs[len(subs)-1]; last.conn == 0 {
				t.Errorf("the message after the drop went over the first connection")
			}
		})
	}
}

func TestSendAfterAndDuringClose(t *testing.T) {
	t.Parallel()
	s := startSMSC(t, func(s *smsc) { s.silent[testDigits] = true })
	c, _ := dial(t, s, Config{ResponseTimeout: 30 * time.Second})

	errc := make(chan error, 1)
	go func() {
		_, err := c.Send(context.Background(), sms.Message{To: testTo, Text: "waiting"})
		errc <- err
	}()
	testutil.Eventually(t, 5*time.Second, func() bool { return len(s.submitted()) == 1 }, "submit_sm not seen")
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return len(errc) == 1 }, "the waiting Send did not end at Close")
	for _, err := range []error{<-errc, sendErr(c)} {
		var pe *provider.Error
		if !errors.As(err, &pe) || pe.Kind != provider.Retry || !errors.Is(err, ErrClosed) {
			t.Errorf("Send = %v, want a Retry wrapping ErrClosed", err)
		}
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func sendErr(c *Client) error {
	_, err := c.Send(context.Background(), sms.Message{To: testTo, Text: "closed"})
	return err
}

func TestSendHonoursTheCallersContext(t *testing.T) {
	t.Parallel()
	s := startSMSC(t, func(s *smsc) { s.silent[testDigits] = true })
	c, _ := dial(t, s, Config{ResponseTimeout: 30 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Send(ctx, sms.Message{To: testTo, Text: "hi"})
	var pe *provider.Error
	if !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &pe) {
		t.Fatalf("Send = %v, want the caller's deadline, unclassified", err)
	}
}

func TestDialErrors(t *testing.T) {
	t.Parallel()
	s := startSMSC(t, nil)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		cfg  Config
	}{
		{"wrong password", context.Background(), Config{Addr: s.srv.Addr(), SystemID: testUser, Password: "wrong-pw-123"}},
		{"nothing listening", context.Background(), Config{Addr: "127.0.0.1:1", SystemID: testUser, Password: testPassword}},
		{"context ended", canceled, Config{Addr: s.srv.Addr(), SystemID: testUser, Password: testPassword}},
		{"no address", context.Background(), Config{SystemID: testUser}},
		{"ReadTimeout not above EnquireLink", context.Background(), Config{Addr: s.srv.Addr(), EnquireLink: time.Minute, ReadTimeout: time.Minute}},
		{"sender too long", context.Background(), Config{Addr: s.srv.Addr(), From: "HeraldNotifier"}},
		{"MaxSegments over 255", context.Background(), Config{Addr: s.srv.Addr(), MaxSegments: 256}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.cfg.ResponseTimeout = 2 * time.Second
			c, err := Dial(tt.ctx, tt.cfg)
			if err == nil {
				_ = c.Close()
				t.Fatal("Dial succeeded")
			}
			if tt.cfg.Password != "" && strings.Contains(err.Error(), tt.cfg.Password) {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

// TestKeepaliveHoldsAnIdleLink idles through several read timeouts: only the enquire_link
// exchange keeps the link from counting as dropped.
func TestKeepaliveHoldsAnIdleLink(t *testing.T) {
	t.Parallel()
	s := startSMSC(t, nil)
	c, logs := dial(t, s, Config{EnquireLink: 100 * time.Millisecond, ReadTimeout: time.Second})
	if _, err := c.Send(context.Background(), sms.Message{To: testTo, Text: "first"}); err != nil {
		t.Fatal(err)
	}
	// 15 keepalives 100ms apart span more than one read timeout.
	testutil.Eventually(t, 10*time.Second, func() bool { return s.enquireLinkCount() >= 15 }, "only %d enquire_link seen", s.enquireLinkCount())
	if _, err := c.Send(context.Background(), sms.Message{To: testTo, Text: "second"}); err != nil {
		t.Fatal(err)
	}
	if subs := s.submitted(); subs[1].conn != 0 {
		t.Errorf("idle link was not kept: second message on connection %d", subs[1].conn)
	}
	if strings.Contains(logs.String(), "link lost") {
		t.Errorf("link dropped while idle:\n%s", logs)
	}
}
