package health_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/health"
	"github.com/herald-notify/herald/internal/testutil"
)

// gauge is a fake UsableRecorder: the last value recorded per sender.
type gauge struct {
	mu sync.Mutex
	m  map[string]bool
}

func (g *gauge) SenderUsable(sender string, usable bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m == nil {
		g.m = map[string]bool{}
	}
	g.m[sender] = usable
}

func (g *gauge) get(sender string) (usable, set bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	usable, set = g.m[sender]
	return usable, set
}

// env is one Redis and one NATS server shared by a test's cases.
type env struct {
	store *health.Store
	nats  *testutil.NATS
}

func newEnv(t *testing.T) env {
	t.Helper()
	return env{store: health.NewStore(testutil.StartRedis(t).Client(t)), nats: testutil.StartNATS(t)}
}

// watch starts a Watcher on its own NATS connection, as a worker process would; it never
// re-reads Redis on its own unless refresh is set.
func (e env) watch(t *testing.T, ids []string, refresh time.Duration, opts ...health.Option) *health.Watcher {
	t.Helper()
	nc, _ := e.nats.Connect(t)
	ctx, cancel := context.WithCancel(context.Background())
	if refresh == 0 {
		refresh = time.Hour
	}
	w, err := health.Watch(ctx, nc, e.store, ids, slog.New(slog.DiscardHandler), append(opts, health.WithRefresh(refresh))...)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-w.Done() })
	return w
}

// reporter is the API's side: it records and publishes on a connection of its own.
func (e env) reporter(t *testing.T) *health.Reporter {
	nc, _ := e.nats.Connect(t)
	return &health.Reporter{Store: e.store, Pub: nc, Log: slog.New(slog.DiscardHandler)}
}

func usableWithin(t *testing.T, w *health.Watcher, id string, want bool, d time.Duration, what string) {
	t.Helper()
	testutil.Eventually(t, d, func() bool { ok, _ := w.Usable(id); return ok == want }, "%s: %s usable %v", what, id, want)
}

// TestWatcherFollowsReports: what the API records and publishes reaches every worker's
// Watcher within a second, without waiting for a refresh.
func TestWatcherFollowsReports(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	tests := []struct {
		name, sender, kind, evKind string
		leave, back                health.Event
		reason                     string
	}{
		{"quality flagged, then unflagged", "white-q", "white", health.KindQuality,
			health.Event{Event: health.EventFlagged, Limit: "TIER_1K"}, health.Event{Event: health.EventUnflagged}, "quality RED (FLAGGED)"},
		{"account restricted, then reinstated", "white-a", "white", health.KindAccount,
			health.Event{Event: health.EventDisabledUpdate, Ban: "DISABLE"}, health.Event{Event: health.EventDisabledUpdate, Ban: health.BanReinstate}, "account banned"},
		{"grey blocked, then authorized", "grey-b", "grey", health.KindGreyState,
			health.Event{Event: "blocked"}, health.Event{Event: "authorized"}, "grey instance blocked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := &gauge{}
			w1 := e.watch(t, []string{tt.sender, "other"}, 0)
			w2 := e.watch(t, []string{tt.sender, "other"}, 0, health.WithMetrics(g))
			if ok, _ := w2.Usable(tt.sender); !ok {
				t.Fatal("usable before any news")
			}
			r := e.reporter(t)
			tt.leave.At = time.Now().Add(-time.Second)
			st, err := r.Report(ctx, tt.sender, tt.kind, tt.evKind, tt.leave)
			if err != nil || st.Usable {
				t.Fatalf("Report = %+v, %v: want unusable", st, err)
			}
			for _, w := range []*health.Watcher{w1, w2} {
				usableWithin(t, w, tt.sender, false, time.Second, "after the bad news")
			}
			if _, why := w2.Usable(tt.sender); why != tt.reason {
				t.Errorf("reason %q, want %q", why, tt.reason)
			}
			if u, set := g.get(tt.sender); !set || u {
				t.Errorf("gauge usable %v set %v, want 0", u, set)
			}
			if ok, _ := w2.Usable("other"); !ok {
				t.Error("another sender left the pool too")
			}
			tt.back.At = time.Now()
			if _, err := r.Report(ctx, tt.sender, tt.kind, tt.evKind, tt.back); err != nil {
				t.Fatal(err)
			}
			for _, w := range []*health.Watcher{w1, w2} {
				usableWithin(t, w, tt.sender, true, time.Second, "after the good news")
			}
			if u, _ := g.get(tt.sender); !u {
				t.Error("gauge still 0")
			}
		})
	}
}

// TestWatcherReadsRedis: a Watcher starts from what Redis holds, and a change it was never
// told of reaches it at the next refresh.
func TestWatcherReadsRedis(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	flagged := health.Event{Event: health.EventFlagged, At: time.Now()}
	if err := e.store.Record(ctx, "known-bad", health.KindQuality, flagged); err != nil {
		t.Fatal(err)
	}
	w := e.watch(t, []string{"known-bad", "silent"}, 100*time.Millisecond)
	if ok, why := w.Usable("known-bad"); ok || why == "" {
		t.Errorf("Usable at start = %v %q, want false with a reason", ok, why)
	}
	// Recorded without a message (as if the message were lost).
	if err := e.store.Record(ctx, "silent", health.KindGreyState, health.Event{Event: "notAuthorized", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	usableWithin(t, w, "silent", false, 2*time.Second, "after a refresh")
	if st, ok := w.Status("silent"); !ok || st.Health != health.HealthDown || st.Breaker != health.BreakerOpen {
		t.Errorf("Status = %+v %v", st, ok)
	}
}

// TestMark: a worker's refusal takes the sender out on every worker at once, for d; a
// longer refusal is not cut short by a shorter one; bad arguments are refused by name.
func TestMark(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	t.Run("expires everywhere", func(t *testing.T) {
		t.Parallel()
		g := &gauge{}
		w1 := e.watch(t, []string{"refused"}, 0, health.WithMetrics(g))
		w2 := e.watch(t, []string{"refused"}, 0)
		if err := w1.Mark(ctx, "refused", "131031", "Business account locked", 700*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if ok, why := w1.Usable("refused"); ok || why != "refused 131031 (Business account locked)" {
			t.Fatalf("marking worker: Usable = %v %q, want false at once", ok, why)
		}
		usableWithin(t, w2, "refused", false, time.Second, "another worker")
		usableWithin(t, w1, "refused", true, 2*time.Second, "marking worker after d")
		usableWithin(t, w2, "refused", true, 2*time.Second, "another worker after d")
		// The gauge follows the expiry too, without waiting for a refresh.
		testutil.Eventually(t, 2*time.Second, func() bool { u, _ := g.get("refused"); return u }, "gauge back to 1")
	})
	t.Run("a longer refusal stays", func(t *testing.T) {
		t.Parallel()
		w := e.watch(t, []string{"long"}, 0)
		if err := w.Mark(ctx, "long", "368", "policy", time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := w.Mark(ctx, "long", "131048", "spam rate", time.Millisecond); err != nil {
			t.Fatal(err)
		}
		evs, err := e.store.Latest(ctx, []string{"long"})
		if err != nil {
			t.Fatal(err)
		}
		if r := evs["long"][health.KindRefused]; r.Event != "368" || time.Until(r.Until) < 59*time.Minute {
			t.Errorf("kept refusal %+v, want the hour-long 368", r)
		}
		if ok, _ := w.Usable("long"); ok {
			t.Error("usable after a short refusal during a long one")
		}
	})
	t.Run("bad arguments", func(t *testing.T) {
		t.Parallel()
		w := e.watch(t, []string{"args"}, 0)
		for _, tt := range []struct {
			id, code string
			d        time.Duration
		}{{"", "368", time.Second}, {"a.b", "368", time.Second}, {"args", "", time.Second}, {"args", "368", 0}} {
			if err := w.Mark(ctx, tt.id, tt.code, "r", tt.d); !errors.Is(err, health.ErrInvalid) {
				t.Errorf("Mark(%q, %q, %v) = %v, want ErrInvalid", tt.id, tt.code, tt.d, err)
			}
		}
		if ok, _ := w.Usable("args"); !ok {
			t.Error("a refused Mark changed the sender")
		}
	})
}

// TestStore: events are kept newest first whatever order they arrive in, a flag survives a
// later tier change, and the first send is the earliest.
func TestStore(t *testing.T) {
	t.Parallel()
	rdb := testutil.StartRedis(t).Client(t)
	s := health.NewStore(rdb)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	t.Run("out of order", func(t *testing.T) {
		t.Parallel()
		for _, ev := range []health.Event{{Event: "authorized", At: now}, {Event: "blocked", At: now.Add(-time.Minute)}} {
			if err := s.Record(ctx, "order", health.KindGreyState, ev); err != nil {
				t.Fatal(err)
			}
		}
		evs, err := s.Latest(ctx, []string{"order", "none"})
		if err != nil {
			t.Fatal(err)
		}
		if got := evs["order"][health.KindGreyState]; got.Event != "authorized" || !got.At.Equal(now) {
			t.Errorf("kept %+v, want the later authorized", got)
		}
		if _, ok := evs["none"]; ok {
			t.Error("a sender without news has events")
		}
	})
	t.Run("flag kept apart", func(t *testing.T) {
		t.Parallel()
		for _, ev := range []health.Event{{Event: health.EventFlagged, At: now.Add(-time.Hour)}, {Event: health.EventDowngrade, Limit: "TIER_250", At: now}} {
			if err := s.Record(ctx, "flag", health.KindQuality, ev); err != nil {
				t.Fatal(err)
			}
		}
		evs, err := s.Latest(ctx, []string{"flag"})
		if err != nil {
			t.Fatal(err)
		}
		if q, f := evs["flag"][health.KindQuality], evs["flag"][health.KindFlag]; q.Event != health.EventDowngrade || f.Event != health.EventFlagged {
			t.Errorf("quality %+v flag %+v", q, f)
		}
	})
	t.Run("first send", func(t *testing.T) {
		t.Parallel()
		if at, err := health.FirstSeen(ctx, rdb, "fresh"); err != nil || !at.IsZero() {
			t.Fatalf("FirstSeen of a sender never seen = %v, %v", at, err)
		}
		before := time.Now().Add(-time.Millisecond)
		if err := health.SeeSending(ctx, rdb, "fresh"); err != nil {
			t.Fatal(err)
		}
		first, err := health.FirstSeen(ctx, rdb, "fresh")
		if err != nil || first.Before(before) || first.After(time.Now()) {
			t.Fatalf("FirstSeen = %v, %v", first, err)
		}
		if err := rdb.Del(ctx, "herald:sender:{fresh}:first_seen").Err(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.Set(ctx, "herald:sender:{fresh}:first_seen", first.Add(-48*time.Hour).UnixMilli(), 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := health.SeeSending(ctx, rdb, "fresh"); err != nil {
			t.Fatal(err)
		}
		if again, _ := health.FirstSeen(ctx, rdb, "fresh"); !again.Equal(first.Add(-48 * time.Hour)) {
			t.Errorf("a later send moved the first: %v", again)
		}
		if err := health.SeeSending(ctx, rdb, "bad.id"); !errors.Is(err, health.ErrInvalid) {
			t.Errorf("SeeSending of a bad id = %v", err)
		}
	})
}
