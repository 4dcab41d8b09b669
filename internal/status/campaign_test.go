package status_test

import (
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/status"
)

func TestCampaignCounters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	mk := func(id string, n int) *status.Record {
		j := newJob(id, n)
		j.Campaign = "autumn"
		return status.NewRecord(j, status.Queued, cascade, time.Now())
	}
	// Three jobs: one through the API (Create), two first seen by a worker (Begin).
	if created, _, err := e.store.Create(ctx, mk("camp-api", 301)); err != nil || !created {
		t.Fatalf("Create: %v %v", created, err)
	}
	a, b := newJob("camp-a", 302), newJob("camp-b", 303)
	a.Campaign, b.Campaign = "autumn", "autumn"
	for _, j := range []string{"camp-a", "camp-b"} {
		jj := a
		if j == "camp-b" {
			jj = b
		}
		if adm, err := e.store.Begin(ctx, jj, "w1", time.Minute, cascade); err != nil || adm.Verdict != status.Claimed {
			t.Fatalf("Begin %s: %v %v", j, adm.Verdict, err)
		}
	}
	e.attempt(t, "camp-a", "w1", status.Outcome{Mode: status.ModeSent, Channel: "white", Attempts: 1, ProviderMessageID: "wamid.camp-a"})
	if _, _, _, err := e.store.Apply(ctx, status.Report{MessageID: "wamid.camp-a", State: status.Delivered}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.store.Settle(ctx, b, "w1", status.Canceled, "campaign canceled", cascade); err != nil {
		t.Fatal(err)
	}
	// An SMS sent as three segments counts once as a message and three times as parts.
	sj := newJob("camp-sms", 304)
	sj.Campaign = "autumn"
	if adm, err := e.store.Begin(ctx, sj, "w1", time.Minute, cascade); err != nil || adm.Verdict != status.Claimed {
		t.Fatalf("Begin camp-sms: %v %v", adm.Verdict, err)
	}
	e.attempt(t, "camp-sms", "w1", status.Outcome{Mode: status.ModeSent, Channel: "sms", ChannelIdx: 1, Attempts: 1,
		ProviderMessageID: "kannel:camp-sms", Segments: 3})
	// A repeated report changes nothing.
	if _, _, _, err := e.store.Apply(ctx, status.Report{MessageID: "wamid.camp-a", State: status.Delivered}); err != nil {
		t.Fatal(err)
	}
	c, err := e.store.Campaign(ctx, "shop", "autumn")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{status.Queued: 1, status.Delivered: 1, status.Canceled: 1, status.Sent: 1}
	if len(c.States) != len(want) {
		t.Fatalf("states = %v, want %v", c.States, want)
	}
	for k, v := range want {
		if c.States[k] != v {
			t.Fatalf("states = %v, want %v", c.States, want)
		}
	}
	if c.Channels["white"] != 1 || c.FirstSent.IsZero() || c.LastSent.Before(c.FirstSent) {
		t.Fatalf("channels %v, first %v, last %v", c.Channels, c.FirstSent, c.LastSent)
	}
	if c.Channels["sms"] != 1 || c.Parts["sms"] != 3 || c.Parts["white"] != 0 {
		t.Fatalf("channels %v, parts %v: want one SMS in 3 parts, no white parts", c.Channels, c.Parts)
	}
	e.assertTTL(t, status.CampaignKey("shop", "autumn"))
}
