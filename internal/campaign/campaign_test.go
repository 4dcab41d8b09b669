package campaign_test

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/campaign"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/testutil"
)

func TestBuild(t *testing.T) {
	t.Parallel()
	p := campaign.Prices{Currency: "RUB", Marketing: 7.5, Utility: 3.5, Authentication: 3, SMS: 4.5, Grey: 0.5}
	first := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	c := status.CampaignCounters{
		States:    map[string]int64{"delivered": 80, "failed": 5, "queued": 15},
		Channels:  map[string]int64{"white": 70, "sms": 20, "grey": 10},
		FirstSent: first, LastSent: first.Add(10 * time.Second),
	}
	cases := []struct {
		name     string
		category string
		meta     *campaign.Meta
		total    float64
		pending  int64
	}{
		{"utility", "UTILITY", &campaign.Meta{Queued: 120, Template: "t"}, 70*3.5 + 20*4.5 + 10*0.5, 20},
		{"marketing", "MARKETING", &campaign.Meta{Queued: 100}, 70*7.5 + 20*4.5 + 10*0.5, 0},
		{"authentication", "AUTHENTICATION", nil, 70*3 + 20*4.5 + 10*0.5, 0},
	}
	for _, tc := range cases {
		v := campaign.Build("c", tc.meta, c, tc.category, p)
		if v.Total != tc.total || v.Pending != tc.pending || v.Seen != 100 || v.Rate != 10 || v.Currency != "RUB" {
			t.Errorf("%s: total %v pending %d seen %d rate %v; want %v %d 100 10", tc.name, v.Total, v.Pending, v.Seen, v.Rate, tc.total, tc.pending)
		}
	}
	// SMS is billed per segment: 20 messages in 35 parts. Fewer parts than messages (a
	// campaign begun before parts were counted) bills at least per message.
	for _, tc := range []struct {
		parts, billed int64
	}{{35, 35}, {12, 20}, {0, 20}} {
		c.Parts = map[string]int64{"sms": tc.parts}
		v := campaign.Build("c", nil, c, "UTILITY", p)
		if v.Cost["sms"] != float64(tc.billed)*4.5 || v.SMSSegments != tc.parts || v.Cost["white"] != 70*3.5 {
			t.Errorf("parts %d: sms cost %v, segments %d, white cost %v; want %v, %d, %v",
				tc.parts, v.Cost["sms"], v.SMSSegments, v.Cost["white"], float64(tc.billed)*4.5, tc.parts, 70*3.5)
		}
	}
}

func TestCancelAndWatch(t *testing.T) {
	t.Parallel()
	_, js := testutil.StartNATS(t).Connect(t)
	if err := streams.Ensure(t.Context(), js, streams.Options{}); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(t.Context(), streams.CampaignsKV)
	if err != nil {
		t.Fatal(err)
	}
	w, err := campaign.Watch(t.Context(), kv, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := campaign.Update(t.Context(), kv, "autumn", func(m *campaign.Meta) { m.Queued += 10 }); err != nil {
		t.Fatal(err)
	}
	if w.Canceled("autumn") {
		t.Fatal("canceled before Cancel")
	}
	m, err := campaign.Cancel(t.Context(), kv, "autumn", "cli")
	if err != nil || m.Canceled == nil || m.Queued != 10 {
		t.Fatalf("Cancel = %+v, %v", m, err)
	}
	again, _ := campaign.Cancel(t.Context(), kv, "autumn", "someone else")
	if !again.Canceled.Equal(*m.Canceled) || again.CanceledBy != "cli" {
		t.Fatalf("a second cancel changed the first: %+v", again)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return w.Canceled("autumn") }, "watcher sees the cancel")
	if w.Canceled("spring") || w.Canceled("") {
		t.Fatal("other campaigns canceled")
	}
	if _, err := campaign.Get(t.Context(), kv, "bad name!"); err == nil {
		t.Fatal("invalid name accepted")
	}
	if _, err := campaign.Get(t.Context(), kv, "spring"); !errors.Is(err, campaign.ErrNotFound) {
		t.Fatalf("missing campaign: %v", err)
	}
}
