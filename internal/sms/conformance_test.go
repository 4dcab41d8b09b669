package sms_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/kanneltest"
	"github.com/herald-notify/herald/internal/sms"
	"github.com/herald-notify/herald/internal/smstest"
)

// TestConformance runs the shared SMS driver suite against the Kannel driver and a real
// Kannel (bearerbox and smsbox, see kanneltest), reached through a smstest.Proxy so that the
// gateway can be stalled or taken away; what arrives is what Kannel's SMSC got.
func TestConformance(t *testing.T) {
	t.Parallel()
	smstest.Exercise(t, func(t *testing.T) smstest.Harness {
		k := kanneltest.Start(t, kanneltest.Options{})
		u, err := url.Parse(k.SendSMSURL)
		if err != nil {
			t.Fatal(err)
		}
		p := smstest.StartProxy(t, u.Host)
		u.Host = p.Addr()
		cfg := sms.KannelConfig{URL: u.String(), User: k.User, Password: k.Password, From: smstest.Sender, Timeout: 3 * time.Second}
		return smstest.Harness{
			Driver:   sms.NewKannel(cfg, nil),
			Timeout:  cfg.Timeout,
			Received: func() []smstest.Delivery { return smstest.Reassemble(kannelParts(k.Submits())) },
			Down:     p.Close,
			Stall:    p.Stall,
		}
	})
}

// kannelParts turns what Kannel's SMSC recorded (already split from its UDH and decoded
// per part) into smstest parts.
func kannelParts(subs []kanneltest.Submit) []smstest.Part {
	parts := make([]smstest.Part, 0, len(subs))
	for _, s := range subs {
		p := smstest.Part{To: s.To, From: s.From, Encoding: smstest.BadEncoding, UDH: s.UDH, Text: s.Text}
		if s.ToTON == 1 {
			p.To = "+" + s.To
		}
		switch s.DataCoding {
		case 0:
			p.Encoding = sms.GSM7
		case 8:
			p.Encoding = sms.UCS2
		}
		parts = append(parts, p)
	}
	return parts
}
