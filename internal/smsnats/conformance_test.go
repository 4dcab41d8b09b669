package smsnats_test

import (
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/sms"
	"github.com/herald-notify/herald/internal/smsnats"
	"github.com/herald-notify/herald/internal/smstest"
	"github.com/herald-notify/herald/internal/testutil"
)

// TestConformance runs the shared SMS driver suite against a Driver publishing to an
// in-process nats-server through a smstest.Proxy (so that the connection can be stalled);
// what the integration would consume is read from the stream over a direct connection.
func TestConformance(t *testing.T) {
	t.Parallel()
	smstest.Exercise(t, func(t *testing.T) smstest.Harness {
		n := testutil.StartNATS(t)
		u, err := url.Parse(n.URL)
		if err != nil {
			t.Fatal(err)
		}
		p := smstest.StartProxy(t, u.Host)
		viaProxy := *n
		viaProxy.URL = "nats://" + p.Addr()
		_, js := viaProxy.Connect(t)
		_, direct := n.Connect(t)
		if _, err := smsnats.EnsureStream(t.Context(), direct, smsnats.DefaultSubject); err != nil {
			t.Fatal(err)
		}
		cfg := smsnats.Config{From: smstest.Sender, Timeout: 3 * time.Second}
		return smstest.Harness{
			Driver:   smsnats.New(js, cfg),
			Timeout:  cfg.Timeout,
			Received: func() []smstest.Delivery { return published(t, direct) },
			Down:     n.Shutdown,
			Stall:    p.Stall,
		}
	})
}

// published is every SMS in the stream, in order, as the integration would read it.
func published(t *testing.T, js jetstream.JetStream) []smstest.Delivery {
	t.Helper()
	s, err := js.Stream(t.Context(), smsnats.DefaultStream)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	var out []smstest.Delivery
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		raw, err := s.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatalf("stream message %d: %v", seq, err)
		}
		var o smsnats.Outbound
		if err := json.Unmarshal(raw.Data, &o); err != nil {
			t.Fatalf("stream message %d is not an Outbound: %v: %s", seq, err, raw.Data)
		}
		d := smstest.Delivery{To: o.To, From: o.From, Text: o.Text, Encoding: smstest.BadEncoding, Segments: o.Segments}
		switch o.Encoding {
		case "gsm7":
			d.Encoding = sms.GSM7
		case "ucs2":
			d.Encoding = sms.UCS2
		}
		out = append(out, d)
	}
	return out
}
