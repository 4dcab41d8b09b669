package campaign_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/campaign"
	"github.com/herald-notify/herald/internal/job"
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

// bucket is a fresh herald-campaigns bucket as streams.Ensure makes it.
func bucket(t testing.TB, o streams.Options) (jetstream.JetStream, jetstream.KeyValue) {
	t.Helper()
	_, js := testutil.StartNATS(t).Connect(t)
	if err := streams.Ensure(t.Context(), js, o); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(t.Context(), streams.CampaignsKV)
	if err != nil {
		t.Fatal(err)
	}
	return js, kv
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestKeys: every campaign name has a valid bucket key of its tenant that reads back as
// the same tenant and name, and no key of one tenant is another's or a legacy key.
func TestKeys(t *testing.T) {
	t.Parallel()
	_, kv := bucket(t, streams.Options{})
	cases := []struct {
		tenant, name, key string
	}{
		{"shop", "bonus-nov", "t=shop.bonus-nov"},
		{"", "bonus-nov", "t=default.bonus-nov"},
		{"bank", "a.b", "t=bank.a=2Eb"},
		{"bank", "2026:11:x", "t=bank.2026=3A11=3Ax"},
		{"bank", ".lead..trail.", "t=bank.=2Elead=2E=2Etrail=2E"},
		{"b-2", "A_z:0.9-", "t=b-2.A_z=3A0=2E9-"},
		{"shop", strings.Repeat("x", 128), "t=shop." + strings.Repeat("x", 128)},
	}
	for _, tc := range cases {
		t.Run(tc.key, func(t *testing.T) {
			if got := campaign.Key(tc.tenant, tc.name); got != tc.key {
				t.Fatalf("Key(%q, %q) = %q, want %q", tc.tenant, tc.name, got, tc.key)
			}
			tenant, name, legacy, ok := campaign.ParseKey(tc.key)
			if !ok || legacy || tenant != job.TenantOr(tc.tenant) || name != tc.name {
				t.Fatalf("ParseKey(%q) = %q %q legacy=%v ok=%v", tc.key, tenant, name, legacy, ok)
			}
			// The bucket takes it as it is.
			if _, err := campaign.Update(t.Context(), kv, tc.tenant, tc.name, func(*campaign.Meta) {}); err != nil {
				t.Fatalf("Update: %v", err)
			}
			if _, err := kv.Get(t.Context(), tc.key); err != nil {
				t.Fatalf("key %q not stored: %v", tc.key, err)
			}
		})
	}
	for _, tc := range []struct {
		key            string
		tenant, name   string
		legacy, wantOK bool
	}{
		{"autumn", "default", "autumn", true, true},
		{"shop.autumn", "default", "shop.autumn", true, true}, // a legacy name with a dot is not shop's
		{"t=Shop.x", "", "", false, false},
		{"t=shop", "", "", false, false},
		{"t=shop.a.b", "", "", false, false},
		{"t=shop.a=2", "", "", false, false},
		{"t=shop.a=3a", "", "", false, false},
	} {
		tenant, name, legacy, ok := campaign.ParseKey(tc.key)
		if ok != tc.wantOK || (ok && (tenant != tc.tenant || name != tc.name || legacy != tc.legacy)) {
			t.Errorf("ParseKey(%q) = %q %q legacy=%v ok=%v; want %q %q %v %v", tc.key, tenant, name, legacy, ok,
				tc.tenant, tc.name, tc.legacy, tc.wantOK)
		}
	}
	for _, bad := range []struct{ tenant, name string }{{"shop", "bad name!"}, {"shop", ""}, {"Shop", "x"}, {"a.b", "x"}} {
		if _, err := campaign.Get(t.Context(), kv, bad.tenant, bad.name); !errors.Is(err, campaign.ErrInvalidName) && !errors.Is(err, campaign.ErrInvalidTenant) {
			t.Errorf("Get(%q, %q) = %v, want an invalid name or tenant", bad.tenant, bad.name, err)
		}
	}
}

// TestTenantsApart (issue 13, finding 4): two tenants with one campaign name each have their
// own; one's cancel, or pre-cancel of a name the other has not used yet, cancels nothing of
// the other's, and neither reads the other's.
func TestTenantsApart(t *testing.T) {
	t.Parallel()
	_, kv := bucket(t, streams.Options{})
	w, err := campaign.Watch(t.Context(), kv, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := campaign.Update(ctx, kv, "shop", "autumn", func(m *campaign.Meta) { m.Queued += 10; m.Template = "bonus" }); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		op   func() error
	}{
		{"bank reads shop's campaign", func() error {
			if m, err := campaign.Get(ctx, kv, "bank", "autumn"); !errors.Is(err, campaign.ErrNotFound) {
				return fmt.Errorf("bank's Get = %+v, %v; want not found", m, err)
			}
			return nil
		}},
		{"bank cancels shop's campaign", func() error {
			m, err := campaign.Cancel(ctx, kv, "bank", "autumn", "tenant:bank")
			if err != nil || m.Queued != 0 || m.Tenant != "bank" || m.Template != "" {
				return fmt.Errorf("bank's Cancel = %+v, %v; want a fresh campaign of bank's", m, err)
			}
			return nil
		}},
		{"bank pre-cancels a name shop has not used", func() error {
			_, err := campaign.Cancel(ctx, kv, "bank", "winter", "tenant:bank")
			return err
		}},
		{"the default tenant cancels the name", func() error {
			_, err := campaign.Cancel(ctx, kv, "", "winter", "cli")
			return err
		}},
	}
	for _, tc := range cases {
		if err := tc.op(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
	testutil.Eventually(t, 5*time.Second, func() bool {
		return w.Canceled("bank", "autumn") && w.Canceled("bank", "winter") && w.Canceled("default", "winter") && w.Canceled("", "winter")
	}, "the watcher sees bank's and default's cancels")
	if w.Canceled("shop", "autumn") || w.Canceled("shop", "winter") {
		t.Fatal("another tenant's cancel canceled shop's campaign")
	}
	m, err := campaign.Get(ctx, kv, "shop", "autumn")
	if err != nil || m.Canceled != nil || m.Queued != 10 || m.Tenant != "shop" {
		t.Fatalf("shop's campaign after bank's cancel: %+v, %v", m, err)
	}
	// Shop's own cancel: the first time is kept.
	c1, err := campaign.Cancel(ctx, kv, "shop", "autumn", "tenant:shop")
	if err != nil || c1.Canceled == nil || c1.Queued != 10 {
		t.Fatalf("shop's Cancel = %+v, %v", c1, err)
	}
	c2, _ := campaign.Cancel(ctx, kv, "shop", "autumn", "someone else")
	if !c2.Canceled.Equal(*c1.Canceled) || c2.CanceledBy != "tenant:shop" {
		t.Fatalf("a second cancel changed the first: %+v", c2)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return w.Canceled("shop", "autumn") }, "watcher sees shop's cancel")
	if w.Canceled("shop", "") || w.Canceled("shop", "spring") {
		t.Fatal("other campaigns canceled")
	}
	// A deleted entry is not canceled any more.
	if err := kv.Delete(ctx, campaign.Key("bank", "winter")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return !w.Canceled("bank", "winter") }, "watcher sees the delete")
	if !w.Canceled("default", "winter") {
		t.Fatal("bank's delete lifted default's cancel")
	}
}

// TestCap (issue 13, finding 11): a tenant's campaigns are capped; the next new one is
// refused with an error naming the limit, while its existing ones still change and other
// tenants are not affected.
func TestCap(t *testing.T) {
	t.Parallel()
	_, raw := bucket(t, streams.Options{})
	const limit = 3
	kv := campaign.Limited{KeyValue: raw, Max: limit}
	ctx := t.Context()
	for i := range limit {
		if _, err := campaign.Cancel(ctx, kv, "bank", fmt.Sprintf("c%d", i), "tenant:bank"); err != nil {
			t.Fatalf("cancel %d of %d: %v", i+1, limit, err)
		}
	}
	cases := []struct {
		name         string
		tenant, camp string
		refused      bool
	}{
		{"a new campaign past the cap", "bank", "c-new", true},
		{"a new import past the cap", "bank", "import-new", true},
		{"an existing campaign", "bank", "c0", false},
		{"another tenant", "shop", "c-new", false},
	}
	for _, tc := range cases {
		_, err := campaign.Update(ctx, kv, tc.tenant, tc.camp, func(m *campaign.Meta) { m.Queued++ })
		var le *campaign.LimitError
		switch {
		case tc.refused && (!errors.Is(err, campaign.ErrTooMany) || !errors.As(err, &le) || le.Max != limit || le.Tenant != tc.tenant):
			t.Errorf("%s: %v, want a *LimitError of %s at %d", tc.name, err, tc.tenant, limit)
		case tc.refused && !strings.Contains(err.Error(), "HERALD_CAMPAIGNS_MAX_PER_TENANT"):
			t.Errorf("%s: %q does not name the limit", tc.name, err)
		case !tc.refused && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if _, err := campaign.Get(ctx, kv, "bank", "c-new"); !errors.Is(err, campaign.ErrNotFound) {
		t.Fatalf("a refused campaign was stored: %v", err)
	}
	if n := campaign.MaxPerTenant(raw); n != campaign.DefaultMaxPerTenant {
		t.Fatalf("an unconfigured bucket's cap = %d", n)
	}
}

// TestLegacyEntries: entries written before campaigns were per tenant (key = the bare name,
// no tenant in the value) stay the default tenant's after the upgrade, are updated in place,
// and are nobody else's.
func TestLegacyEntries(t *testing.T) {
	t.Parallel()
	_, js := testutil.StartNATS(t).Connect(t)
	ctx := t.Context()
	// The bucket as the previous version made it: no TTL, no markers.
	old, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: streams.CampaignsKV, History: 5})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	for name, canceled := range map[string]bool{"autumn": true, "shop.autumn": true, "spring": false} {
		m := map[string]any{"name": name, "queued": 5, "created_at": at, "updated_at": at}
		if canceled {
			m["canceled_at"], m["canceled_by"] = at, "cli"
		}
		b, _ := json.Marshal(m)
		if _, err := old.Put(ctx, name, b); err != nil {
			t.Fatal(err)
		}
	}
	// The upgrade: Ensure bounds the bucket, the entries stay.
	if err := streams.Ensure(ctx, js, streams.Options{CampaignsMaxAge: 48 * time.Hour}); err != nil {
		t.Fatalf("Ensure over the old bucket: %v", err)
	}
	kv, _ := js.KeyValue(ctx, streams.CampaignsKV)
	st, err := kv.Status(ctx)
	if err != nil || st.TTL() != 48*time.Hour || st.LimitMarkerTTL() <= 0 {
		t.Fatalf("bucket after Ensure: TTL %v, marker TTL %v, %v", st.TTL(), st.LimitMarkerTTL(), err)
	}
	w, err := campaign.Watch(ctx, kv, quiet())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		tenant, name string
		canceled     bool
	}{
		{"default", "autumn", true},
		{"", "autumn", true},
		{"default", "shop.autumn", true},
		{"shop", "autumn", false}, // the legacy "shop.autumn" is default's, not shop's "autumn"
		{"bank", "autumn", false},
		{"default", "spring", false},
	} {
		if got := w.Canceled(tc.tenant, tc.name); got != tc.canceled {
			t.Errorf("Canceled(%q, %q) = %v, want %v", tc.tenant, tc.name, got, tc.canceled)
		}
	}
	if m, err := campaign.Get(ctx, kv, "", "autumn"); err != nil || m.Canceled == nil || m.Queued != 5 {
		t.Fatalf("default's legacy campaign: %+v, %v", m, err)
	}
	if _, err := campaign.Get(ctx, kv, "shop", "autumn"); !errors.Is(err, campaign.ErrNotFound) {
		t.Fatalf("shop reads default's legacy campaign: %v", err)
	}
	// Updated in place: one entry, under the legacy key.
	m, err := campaign.Cancel(ctx, kv, "default", "spring", "cli")
	if err != nil || m.Queued != 5 || m.Canceled == nil {
		t.Fatalf("cancel of a legacy campaign: %+v, %v", m, err)
	}
	if _, err := kv.Get(ctx, campaign.Key("default", "spring")); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("a second entry for a legacy campaign: %v", err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return w.Canceled("default", "spring") }, "the watcher sees the legacy cancel")
}

// TestWatcherExpiry: an entry older than the bucket's MaxAge goes, and the watcher drops it.
func TestWatcherExpiry(t *testing.T) {
	t.Parallel()
	_, kv := bucket(t, streams.Options{CampaignsMaxAge: time.Second})
	w, err := campaign.Watch(t.Context(), kv, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := campaign.Cancel(t.Context(), kv, "shop", "flash", "tenant:shop"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return w.Canceled("shop", "flash") }, "the watcher sees the cancel")
	testutil.Eventually(t, 10*time.Second, func() bool { return !w.Canceled("shop", "flash") }, "the watcher drops the expired entry")
	if _, err := campaign.Get(t.Context(), kv, "shop", "flash"); !errors.Is(err, campaign.ErrNotFound) {
		t.Fatalf("expired campaign: %v", err)
	}
}

// fill stores n canceled campaigns spread over tenants, as fast as JetStream takes them.
func fill(t testing.TB, js jetstream.JetStream, n, tenants int) {
	t.Helper()
	at := time.Now().UTC()
	for i := range n {
		tenant, name := fmt.Sprintf("tenant-%d", i%tenants), fmt.Sprintf("camp-%d", i)
		b, _ := json.Marshal(campaign.Meta{Name: name, Tenant: tenant, CreatedAt: at, UpdatedAt: at, Canceled: &at, CanceledBy: "test"})
		if _, err := js.PublishAsync("$KV."+streams.CampaignsKV+"."+campaign.Key(tenant, name), b); err != nil {
			t.Fatal(err)
		}
		// A thousand at a time: never more pending than the client lets through.
		if i%1000 == 999 || i == n-1 {
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(60 * time.Second):
				t.Fatal("publishes not acknowledged")
			}
		}
	}
}

// TestWatcherStartsWithSummary (issue 13, finding 11): a bucket full of canceled campaigns
// makes a starting watcher log one summary line, not a line per entry, and every answer is
// right.
func TestWatcherStartsWithSummary(t *testing.T) {
	t.Parallel()
	js, kv := bucket(t, streams.Options{})
	const n, tenants = 6000, 4
	fill(t, js, n, tenants)
	var logs testutil.LogBuffer
	w, err := campaign.Watch(t.Context(), kv, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "campaigns loaded") || !strings.Contains(lines[0], fmt.Sprintf("canceled=%d", n)) {
		t.Fatalf("start logged %d lines, want the one summary; first: %q", len(lines), lines[0])
	}
	for i := range n {
		tenant, name := fmt.Sprintf("tenant-%d", i%tenants), fmt.Sprintf("camp-%d", i)
		if !w.Canceled(tenant, name) || w.Canceled(fmt.Sprintf("tenant-%d", (i+1)%tenants), name) {
			t.Fatalf("campaign %s of %s: wrong answer", name, tenant)
		}
	}
	// After the start, a change is one line.
	if _, err := campaign.Cancel(t.Context(), kv, "tenant-new", "late", "test"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return w.Canceled("tenant-new", "late") }, "the watcher sees a later cancel")
	if got := strings.Count(logs.String(), "\n"); got != 2 {
		t.Fatalf("%d log lines after one more cancel, want 2:\n%s", got, logs.String())
	}
}

// BenchmarkCanceled is the per-job question, asked from every worker goroutine at once, with
// a few thousand campaigns canceled over a few tenants.
func BenchmarkCanceled(b *testing.B) {
	js, kv := bucket(b, streams.Options{})
	fill(b, js, 4000, 8)
	w, err := campaign.Watch(b.Context(), kv, quiet())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			// Mostly campaigns that are not canceled, as in a real run.
			if w.Canceled("tenant-3", "bonus-nov") || (i%16 == 0 && !w.Canceled("tenant-3", "camp-3")) {
				b.Fatal("wrong answer")
			}
			i++
		}
	})
}
