package consent_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/herald-notify/herald/internal/consent"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/testutil"
)

func TestWordsMatch(t *testing.T) {
	t.Parallel()
	w := consent.NewWords(nil, nil)
	cases := []struct{ text, want string }{
		{"STOP", consent.Stop},
		{"stop", consent.Stop},
		{"  Стоп! ", consent.Stop},
		{"ОТПИСАТЬСЯ", consent.Stop},
		{"отписка.", consent.Stop},
		{"START", consent.Start},
		{"старт", consent.Start},
		{"не стоп", ""},
		{"stop sending me the wrong size", ""},
		{"Когда будет заказ?", ""},
		{"", ""},
		{"!!!", ""},
	}
	for _, c := range cases {
		if got := w.Match(c.text); got != c.want {
			t.Errorf("Match(%q) = %q, want %q", c.text, got, c.want)
		}
	}
	custom := consent.NewWords([]string{"хватит"}, []string{"снова"})
	if custom.Match("Хватит") != consent.Stop || custom.Match("STOP") != "" || custom.Match("снова") != consent.Start {
		t.Error("configured words do not replace the defaults")
	}
}

// env is a nats-server with Herald's streams and buckets, and a redis-server.
type env struct {
	js  jetstream.JetStream
	rdb *redis.Client
	st  *consent.Store
}

func setup(t *testing.T) env {
	t.Helper()
	ns := testutil.StartNATS(t)
	_, js := ns.Connect(t)
	if err := streams.Ensure(t.Context(), js, streams.Options{}); err != nil {
		t.Fatal(err)
	}
	rdb := testutil.StartRedis(t).Client(t)
	st, err := consent.Open(t.Context(), js, rdb)
	if err != nil {
		t.Fatal(err)
	}
	return env{js: js, rdb: rdb, st: st}
}

func (e env) logCount(t *testing.T) uint64 {
	t.Helper()
	s, err := e.js.Stream(t.Context(), streams.OptOutStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func (e env) suppressed(t *testing.T, phone string) bool {
	t.Helper()
	got, err := e.st.Suppressed(t.Context(), "", phone)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// lose makes Redis lose everything, as a restart without persistence does.
func (e env) lose(t *testing.T) {
	t.Helper()
	if err := e.rdb.FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestRecordAndRebuild(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	evs := []consent.Event{
		{Phone: "+79001230001", Action: consent.Stop, Source: "inbound:white", Ref: "wamid.1"},
		{Phone: "+79001230002", Action: consent.Stop, Source: "operator"},
		{Phone: "+79001230001", Action: consent.Start, Source: "inbound:white", Ref: "wamid.2"},
		{Phone: "+79001230003", Action: consent.Stop, Source: "inbound:grey", Ref: "g1", At: time.Unix(1700000000, 0)},
		{Phone: "+79001230003", Action: consent.Stop, Source: "inbound:grey", Ref: "g1", At: time.Unix(1700000000, 0)}, // webhook retried
	}
	want := []consent.Outcome{consent.Applied, consent.Applied, consent.Applied, consent.Applied, consent.Duplicate}
	for i, ev := range evs {
		got, err := e.st.Record(ctx, ev)
		if err != nil || got != want[i] {
			t.Fatalf("Record(%+v) = %v, %v; want %v", ev, got, err, want[i])
		}
	}
	wantSup := map[string]bool{"+79001230001": false, "+79001230002": true, "+79001230003": true}
	check := func(stage string) {
		t.Helper()
		for p, w := range wantSup {
			if got := e.suppressed(t, p); got != w {
				t.Errorf("%s: Suppressed(%s) = %v, want %v", stage, p, got, w)
			}
		}
	}
	check("after Record")
	if n := e.logCount(t); n != 4 {
		t.Errorf("opt-out log holds %d events, want 4 (the retried webhook deduplicated)", n)
	}
	if n, err := e.st.Rebuild(ctx, slog.Default()); err != nil || n != -1 {
		t.Fatalf("Rebuild with Redis intact = %d, %v; want -1 (left alone)", n, err)
	}
	e.lose(t)
	n, err := e.st.Rebuild(ctx, slog.Default())
	if err != nil || n != 2 {
		t.Fatalf("Rebuild = %d, %v; want 2", n, err)
	}
	check("after Rebuild")

	for _, bad := range []consent.Event{
		{Phone: "79001", Action: consent.Stop},
		{Phone: "+79001230009", Action: "pause"},
		{Phone: "+79001230009", Action: consent.Stop, Category: "promotions"},
		{Phone: "+79001230009", Action: consent.Stop, Scope: "Tenant_A"},
		{Phone: "+79001230009", Action: consent.Stop, Category: consent.CategoryMarketing, Scope: "a.b"},
	} {
		if _, err := e.st.Record(ctx, bad); !errors.Is(err, consent.ErrInvalid) {
			t.Errorf("Record(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
}

// TestRecordOrder: events are ordered by their own time, whatever order they arrive in (Meta
// redelivers webhooks). An older event never changes consent, in Redis or in the bucket
// Redis is rebuilt from, and is not published as a change.
func TestRecordOrder(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	type step struct {
		action string
		at     int
		ref    string
		want   consent.Outcome
	}
	tests := []struct {
		name  string
		steps []step
		sup   bool   // suppressed at the end
		log   uint64 // changes published
	}{
		{"older START after a newer STOP", []step{{consent.Stop, 20, "m2", consent.Applied}, {consent.Start, 10, "m1", consent.Stale}}, true, 1},
		{"older STOP after a newer START", []step{{consent.Start, 20, "m2", consent.Applied}, {consent.Stop, 10, "m1", consent.Stale}}, false, 1},
		{"in order", []step{{consent.Stop, 10, "m1", consent.Applied}, {consent.Start, 20, "m2", consent.Applied}}, false, 2},
		{"a redelivered STOP after START", []step{{consent.Stop, 10, "m1", consent.Applied}, {consent.Start, 20, "m2", consent.Applied},
			{consent.Stop, 10, "m1", consent.Stale}}, false, 2},
		{"the same second: the later arrival wins", []step{{consent.Stop, 10, "m1", consent.Applied}, {consent.Start, 10, "m2", consent.Applied}}, false, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			const phone = "+79001230100"
			for _, s := range tt.steps {
				got, err := e.st.Record(t.Context(), consent.Event{Phone: phone, Action: s.action, Source: "inbound:white", Ref: s.ref, At: at(s.at)})
				if err != nil || got != s.want {
					t.Fatalf("Record(%s at %d) = %v, %v; want %v", s.action, s.at, got, err, s.want)
				}
			}
			if got := e.suppressed(t, phone); got != tt.sup {
				t.Errorf("Suppressed = %v, want %v", got, tt.sup)
			}
			if n := e.logCount(t); n != tt.log {
				t.Errorf("%d changes published, want %d", n, tt.log)
			}
			// Redis rebuilt from the bucket agrees with Redis before.
			e.lose(t)
			if _, err := e.st.Rebuild(t.Context(), slog.Default()); err != nil {
				t.Fatal(err)
			}
			if got := e.suppressed(t, phone); got != tt.sup {
				t.Errorf("after Rebuild: Suppressed = %v, want %v", got, tt.sup)
			}
		})
	}
}

// TestConsentBounded: however many events a number gets, the bucket keeps one, and the
// opt-out stream is a log with limits, not the unbounded truth.
func TestConsentBounded(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	if _, err := e.st.Rebuild(ctx, slog.Default()); err != nil { // a new install: migrated at once
		t.Fatal(err)
	}
	const phone = "+79001230200"
	t0 := time.Now().UTC()
	for i := range 50 {
		action := []string{consent.Stop, consent.Start}[i%2]
		if _, err := e.st.Record(ctx, consent.Event{Phone: phone, Action: action, Source: "inbound:grey", Ref: "f" + string(rune('a'+i)),
			At: t0.Add(time.Duration(i) * time.Millisecond)}); err != nil {
			t.Fatal(err)
		}
	}
	kv, err := e.js.KeyValue(ctx, streams.ConsentKV)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Values() != 2 { // the number, and the migration mark
		t.Errorf("consent bucket holds %d values, want 2", st.Values())
	}
	entry, err := kv.Get(ctx, "79001230200")
	if err != nil {
		t.Fatal(err)
	}
	var last consent.Event
	if err := json.Unmarshal(entry.Value(), &last); err != nil || last.Action != consent.Start {
		t.Errorf("latest event %+v, %v; want the 50th (start)", last, err)
	}
	s, err := e.js.Stream(ctx, streams.OptOutStream)
	if err != nil {
		t.Fatal(err)
	}
	if c := s.CachedInfo().Config; c.MaxAge != streams.OptOutLogMaxAge || c.MaxMsgs != streams.OptOutLogMaxMsgs || c.Discard != jetstream.DiscardOld {
		t.Errorf("opt-out stream limits: max age %v, max msgs %d, discard %v; want bounded", c.MaxAge, c.MaxMsgs, c.Discard)
	}
}

// TestMigrateLegacyOptOut: a deployment upgraded from the unbounded HERALD_OPTOUT keeps its
// consent: the events are copied into the bucket before the stream is bounded, in order,
// and an event recorded by the new version meanwhile is not undone by an older one.
func TestMigrateLegacyOptOut(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	legacy := func(phone, action string, sec int) {
		t.Helper()
		data, _ := json.Marshal(consent.Event{Phone: phone, Action: action, Source: "inbound:white", At: t0.Add(time.Duration(sec) * time.Second)})
		if _, err := e.js.PublishMsg(ctx, &nats.Msg{Subject: streams.SubjectOptOut, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	legacy("+79001230301", consent.Stop, 1)
	legacy("+79001230302", consent.Stop, 2)
	legacy("+79001230302", consent.Start, 3)
	legacy("+79001230303", consent.Stop, 4)
	// The new version records a newer START for 0303 before the migration runs.
	if _, err := e.st.Record(ctx, consent.Event{Phone: "+79001230303", Action: consent.Start, Source: "operator", At: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	s, _ := e.js.Stream(ctx, streams.OptOutStream)
	if c := s.CachedInfo().Config; c.MaxAge != 0 || c.MaxMsgs > 0 {
		t.Fatalf("the unmigrated stream is bounded: %+v", c)
	}
	e.lose(t)
	n, err := e.st.Rebuild(ctx, slog.Default())
	if err != nil || n != 1 {
		t.Fatalf("Rebuild = %d, %v; want 1 suppressed", n, err)
	}
	for p, want := range map[string]bool{"+79001230301": true, "+79001230302": false, "+79001230303": false} {
		if got := e.suppressed(t, p); got != want {
			t.Errorf("Suppressed(%s) = %v, want %v", p, got, want)
		}
	}
	s, _ = e.js.Stream(ctx, streams.OptOutStream)
	if c := s.CachedInfo().Config; c.MaxAge != streams.OptOutLogMaxAge {
		t.Errorf("the migrated stream is not bounded: %+v", c)
	}
	// A process starting now provisions the bounded stream.
	if err := streams.Ensure(ctx, e.js, streams.Options{}); err != nil {
		t.Fatal(err)
	}
	s, _ = e.js.Stream(ctx, streams.OptOutStream)
	if c := s.CachedInfo().Config; c.MaxAge != streams.OptOutLogMaxAge {
		t.Errorf("Ensure unbounded the migrated stream: %+v", c)
	}
}

// TestMarketingPreference: a marketing stop suppresses marketing only, per scope, ordered
// like the rest, and is not published as an opt-out.
func TestMarketingPreference(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	const phone = "+79001230400"
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	mk := func(action, scope string, sec int) consent.Event {
		return consent.Event{Phone: phone, Action: action, Category: consent.CategoryMarketing, Scope: scope,
			Source: "user_preferences:white", At: t0.Add(time.Duration(sec) * time.Second)}
	}
	tests := []struct {
		name string
		ev   consent.Event
		want consent.Outcome
		// after the event: marketing-suppressed in scope "" and in "tenant-a"
		deployment, tenant bool
	}{
		// The deployment-wide list counts for every tenant.
		{"stop", mk(consent.Stop, "", 10), consent.Applied, true, true},
		{"an older resume is stale", mk(consent.Start, "", 5), consent.Stale, true, true},
		{"another scope is its own list", mk(consent.Stop, "tenant-a", 1), consent.Applied, true, true},
		{"resume", mk(consent.Start, "", 20), consent.Applied, false, true},
	}
	for _, tt := range tests { // in order: each step builds on the one before
		got, err := e.st.Record(ctx, tt.ev)
		if err != nil || got != tt.want {
			t.Fatalf("%s: Record = %v, %v; want %v", tt.name, got, err, tt.want)
		}
		for scope, want := range map[string]bool{"": tt.deployment, "tenant-a": tt.tenant} {
			if sup, err := e.st.MarketingSuppressed(ctx, scope, phone); err != nil || sup != want {
				t.Errorf("%s: MarketingSuppressed(%q) = %v, %v; want %v", tt.name, scope, sup, err, want)
			}
		}
		if e.suppressed(t, phone) {
			t.Errorf("%s: a marketing preference suppressed every message", tt.name)
		}
	}
	if n := e.logCount(t); n != 0 {
		t.Errorf("%d marketing preferences published on the opt-out log, want 0", n)
	}
	if k := consent.MarketingKey("tenant-a"); k != "herald:suppressed:marketing:tenant-a" {
		t.Errorf("MarketingKey = %q", k)
	}
	e.lose(t)
	if _, err := e.st.Rebuild(ctx, slog.Default()); err != nil {
		t.Fatal(err)
	}
	if sup, _ := e.st.MarketingSuppressed(ctx, "tenant-a", phone); !sup {
		t.Error("after Rebuild: the tenant's marketing stop is lost")
	}
	if got := e.rdb.SIsMember(ctx, status.KeySuppressed, phone).Val(); got {
		t.Error("after Rebuild: the number receives nothing")
	}
}

// TestConsentPerTenant: consent is given to a business. A STOP to one tenant silences that
// tenant only, the deployment-wide list (operators) silences every tenant, each list keeps its
// own order, and Redis comes back whole from the bucket.
func TestConsentPerTenant(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	const phone = "+79001230500"
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ev := func(action, scope string, sec int) consent.Event {
		return consent.Event{Phone: phone, Action: action, Scope: scope, Source: "inbound:white",
			Ref: scope + action, At: t0.Add(time.Duration(sec) * time.Second)}
	}
	check := func(stage string, want map[string]bool) {
		t.Helper()
		for tenant, w := range want {
			if got, err := e.st.Suppressed(ctx, tenant, phone); err != nil || got != w {
				t.Errorf("%s: Suppressed(%q) = %v, %v; want %v", stage, tenant, got, err, w)
			}
		}
	}
	for _, step := range []struct {
		name string
		ev   consent.Event
		want map[string]bool
	}{
		{"shop's STOP", ev(consent.Stop, "shop", 10), map[string]bool{"shop": true, "bank": false, "": false}},
		// An older START to shop (a redelivered webhook) changes nothing; bank's own START
		// is another list's.
		{"shop's older START", ev(consent.Start, "shop", 5), map[string]bool{"shop": true, "bank": false}},
		{"bank's START", ev(consent.Start, "bank", 20), map[string]bool{"shop": true, "bank": false}},
		{"deployment-wide STOP", ev(consent.Stop, "", 30), map[string]bool{"shop": true, "bank": true, "": true}},
		{"shop's newer START", ev(consent.Start, "shop", 40), map[string]bool{"shop": true, "bank": true}},
		{"deployment-wide START", ev(consent.Start, "", 50), map[string]bool{"shop": false, "bank": false, "": false}},
	} {
		if _, err := e.st.Record(ctx, step.ev); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		check(step.name, step.want)
	}
	if _, err := e.st.Record(ctx, ev(consent.Stop, "bank", 60)); err != nil {
		t.Fatal(err)
	}
	e.lose(t)
	if _, err := e.st.Rebuild(ctx, slog.Default()); err != nil {
		t.Fatal(err)
	}
	check("after Rebuild", map[string]bool{"shop": false, "bank": true, "": false})
}
