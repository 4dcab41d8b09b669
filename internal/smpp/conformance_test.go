package smpp

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/linxGnu/gosmpp/data"

	"github.com/herald-notify/herald/internal/sms"
	"github.com/herald-notify/herald/internal/smstest"
)

// TestConformance runs the shared SMS driver suite against a Client bound to the in-process
// SMSC of smsc_test.go, through a smstest.Proxy so that the link can be stalled.
func TestConformance(t *testing.T) {
	t.Parallel()
	smstest.Exercise(t, func(t *testing.T) smstest.Harness {
		s := startSMSC(t, nil)
		p := smstest.StartProxy(t, s.srv.Addr())
		// dial would bind to the SMSC directly, past the proxy; this is its configuration
		// with the proxy's address.
		logs := &logBuffer{}
		cfg := Config{Addr: p.Addr(), SystemID: testUser, Password: testPassword, From: smstest.Sender,
			ResponseTimeout: 3 * time.Second, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := Dial(ctx, cfg)
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		t.Cleanup(func() {
			_ = c.Close() // the peer may be down or stalled: Close has nothing to prove here
			if t.Failed() {
				t.Logf("client log:\n%s", logs)
			}
		})
		return smstest.Harness{
			Driver:   c,
			Timeout:  cfg.ResponseTimeout,
			Received: func() []smstest.Delivery { return smstest.Reassemble(smppParts(t, s.submitted())) },
			Down: func() {
				s.srv.Close() // no new connections...
				s.dropConnections()
			},
			Stall: p.Stall,
		}
	})
}

// smppParts decodes what the SMSC recorded as the handset would: UDH split off, each part
// decoded on its own.
func smppParts(t *testing.T, subs []submitted) []smstest.Part {
	t.Helper()
	parts := make([]smstest.Part, 0, len(subs))
	for _, sub := range subs {
		p := smstest.Part{To: sub.dst, From: sub.src, Encoding: smstest.BadEncoding}
		if sub.dstTON == tonInternational {
			p.To = "+" + sub.dst
		}
		payload := sub.sm
		if sub.esm&data.SM_UDH_GSM != 0 && len(payload) > 0 && int(payload[0]) < len(payload) {
			p.UDH = payload[1 : 1+int(payload[0])]
			payload = payload[1+int(payload[0]):]
		}
		var enc data.Encoding
		switch sub.coding {
		case data.GSM7BITCoding:
			p.Encoding, enc = sms.GSM7, data.GSM7BIT
		case data.UCS2Coding:
			p.Encoding, enc = sms.UCS2, data.UCS2
		default:
			p.Text = string(payload)
			parts = append(parts, p)
			continue
		}
		text, err := enc.Decode(payload)
		if err != nil {
			t.Errorf("submit_sm to %s does not decode with data_coding %d: %v", sub.dst, sub.coding, err)
		}
		p.Text = text
		parts = append(parts, p)
	}
	return parts
}
