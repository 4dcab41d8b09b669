package dlq_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/dlq"
	"github.com/herald-notify/herald/internal/harness"
	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/producer"
)

// TestFailEverywhereThenReplay: a job that fails on every channel ends in the DLQ with its
// whole history; once the provider recovers, a replay sends it exactly once, and a second
// replay sends nothing.
func TestFailEverywhereThenReplay(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{Config: func(c *config.Config) { c.RetryMaxAttempts = 2 }})
	ctx := context.Background()
	j := &producer.Job{ID: "fails-everywhere", To: "+79001112233", Template: "bonus_expiring",
		Params: map[string]string{"name": "Анна", "amount": "500", "date": "01.12.2026"}}
	h.Sim.AddRule(sim.Rule{Channel: "white", To: "79001112233", Code: 131026})
	h.Sim.AddRule(sim.Rule{Channel: "sms", To: "79001112233", HTTPStatus: 503})
	if _, err := h.Producer.Publish(ctx, j); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, func() bool {
		r := h.Record(j.ID)
		return r != nil && r.State == status.Failed
	}, "job failed on every channel")
	rec := h.Record(j.ID)
	// white failed once (permanent), sms retried once then gave up.
	if len(rec.History) != 3 || rec.History[0].Channel != "white" || rec.History[1].State != "retry" || rec.History[2].State != "failed" {
		t.Fatalf("history %+v", rec.History)
	}
	var letters []dlq.DeadLetter
	testutil.Eventually(t, 10*time.Second, func() bool {
		var err error
		letters, err = dlq.Read(ctx, h.JS, "exhausted")
		return err == nil && len(letters) == 1
	}, "one dead letter")
	if letters[0].JobID != j.ID || letters[0].Tenant != "default" || letters[0].Reason != "exhausted" || letters[0].Error == "" {
		t.Fatalf("dead letter %+v", letters[0])
	}

	h.Sim.ClearRules()
	n, err := dlq.Replay(ctx, h.JS, letters, nil)
	if err != nil || n != 1 {
		t.Fatalf("replay: %d %v", n, err)
	}
	testutil.Eventually(t, 20*time.Second, func() bool {
		r := h.Record(j.ID)
		return r != nil && r.State == status.Delivered
	}, "replayed job delivered")
	if left, _ := dlq.Read(ctx, h.JS, ""); len(left) != 0 {
		t.Fatalf("DLQ still holds %d letters", len(left))
	}
	// Replaying the same letter again (an operator's double click) sends nothing more.
	if _, err := dlq.Replay(ctx, h.JS, letters, nil); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		info, err := h.JS.Stream(ctx, "HERALD_JOBS")
		if err != nil {
			return false
		}
		i, err := info.Info(ctx)
		return err == nil && i.State.Msgs == 0
	}, "second replay consumed")
	sent := h.SentPerJob()
	if sent["white:"+j.ID] != 1 || sent["sms:"+j.ID] != 0 {
		t.Fatalf("sends after replays: %v", sent)
	}
}

// TestOfTenant: a tenant's view of the DLQ holds its own letters only (ids are per tenant).
func TestOfTenant(t *testing.T) {
	t.Parallel()
	letters := []dlq.DeadLetter{{Seq: 1, JobID: "a", Tenant: "shop"}, {Seq: 2, JobID: "a", Tenant: "bank"}, {Seq: 3, JobID: "b", Tenant: "shop"}}
	for _, tt := range []struct {
		tenant string
		want   []uint64
	}{{"shop", []uint64{1, 3}}, {"bank", []uint64{2}}, {"nobody", nil}, {"", []uint64{1, 2, 3}}} {
		var got []uint64
		for _, l := range dlq.OfTenant(letters, tt.tenant) {
			got = append(got, l.Seq)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("OfTenant(%q) = %v, want %v", tt.tenant, got, tt.want)
		}
	}
}
