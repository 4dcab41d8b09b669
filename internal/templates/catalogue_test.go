package templates

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/testutil"
)

const wait = 5 * time.Second

type logBuffer = testutil.LogBuffer

func newLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// lookupErr is Lookup's error, for conditions.
func lookupErr(c *Catalogue, name, lang string) error {
	_, err := c.Lookup("", name, lang)
	return err
}

func TestCatalogue(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	kv := newKV(t)
	for _, d := range SampleDefinitions() {
		if _, err := Put(ctx, kv, "", d); err != nil {
			t.Fatal(err)
		}
	}
	pending := sample(t, "order_ready")
	pending.Language, pending.Status = "en", StatusPending
	if _, err := Put(ctx, kv, "", pending); err != nil {
		t.Fatal(err)
	}

	logger, logs := newLogger()
	c := NewCatalogue(kv, logger)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}

	// Start returned after the initial load: no waiting needed.
	d, err := c.Lookup("", "order_ready", "ru")
	if err != nil {
		t.Fatal(err)
	}
	if d.Version != 1 || d.prog == nil {
		t.Fatalf("looked up %+v", d)
	}
	if got := len(c.List("")); got != 4 {
		t.Fatalf("List has %d definitions, want 4", got)
	}
	if !strings.Contains(logs.String(), "templates=4") {
		t.Errorf("load not logged: %s", logs)
	}

	errTests := []struct {
		name, tmpl, lang string
		want             error
		mention          string
	}{
		{"unknown template", "nope", "ru", ErrUnknownTemplate, `"nope"`},
		{"unknown language", "order_ready", "de", ErrUnknownLanguage, "exists in en, ru"},
		{"not approved", "order_ready", "en", ErrNotApproved, "order_ready.en is PENDING"},
	}
	for _, tt := range errTests {
		err := lookupErr(c, tt.tmpl, tt.lang)
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.mention) {
			t.Errorf("%s: Lookup error = %v, want %v mentioning %s", tt.name, err, tt.want, tt.mention)
		}
	}

	// A put after Start reaches the catalogue without a restart.
	added := sample(t, "booking_reminder")
	added.Language = "en"
	if _, err := Put(ctx, kv, "", added); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, func() bool { return lookupErr(c, "booking_reminder", "en") == nil },
		"booking_reminder.en never appeared")

	// Meta pauses a template: Lookup stops handing it out.
	paused := sample(t, "order_ready")
	paused.Status = StatusPaused
	if _, err := Put(ctx, kv, "", paused); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, func() bool { return errors.Is(lookupErr(c, "order_ready", "ru"), ErrNotApproved) },
		"paused order_ready.ru still approved")
	err = lookupErr(c, "order_ready", "ru")
	if !strings.Contains(err.Error(), "PAUSED") || !IsPermanent(err) {
		t.Errorf("paused error = %v", err)
	}

	// And approved again, as a new version.
	if _, err := Put(ctx, kv, "", sample(t, "order_ready")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, func() bool {
		d, err := c.Lookup("", "order_ready", "ru")
		return err == nil && d.Version == 3
	}, "order_ready.ru version 3 never approved")

	// Delete and purge remove templates.
	if err := kv.Delete(ctx, "default.bonus_expiring.ru"); err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(ctx, "default.booking_reminder.en"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, func() bool {
		return errors.Is(lookupErr(c, "bonus_expiring", "ru"), ErrUnknownTemplate) &&
			errors.Is(lookupErr(c, "booking_reminder", "en"), ErrUnknownLanguage)
	}, "deleted and purged templates still there")
	var keys []string
	for _, d := range c.List("") {
		keys = append(keys, legacyKey(d.Name, d.Language))
	}
	if got := strings.Join(keys, " "); got != "booking_reminder.ru order_ready.en order_ready.ru" {
		t.Errorf("List = %s", got)
	}

	// A bad write does not take a working template out of service.
	if _, err := kv.Put(ctx, "default.booking_reminder.ru", []byte(`{"name":"booking_reminder","language":"ru","components":[]}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "default.order_ready.ru", []byte(`{"name":"bonus_expiring","language":"ru","components":[{"type":"BODY","text":"x"}]}`)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, func() bool {
		return strings.Count(logs.String(), "invalid definition ignored") == 2
	}, "bad writes not logged: %s", logs)
	if err := lookupErr(c, "booking_reminder", "ru"); err != nil {
		t.Errorf("last good booking_reminder.ru lost: %v", err)
	}
	if d, err := c.Lookup("", "order_ready", "ru"); err != nil || d.Name != "order_ready" {
		t.Errorf("a definition under another template's key replaced order_ready.ru: %v %v", d, err)
	}
	if err := lookupErr(c, "bonus_expiring", "ru"); !errors.Is(err, ErrUnknownTemplate) {
		t.Errorf("bonus_expiring.ru came back from a mis-keyed write: %v", err)
	}
}

func TestCatalogueEmptyBucket(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	kv := newKV(t)
	c := NewCatalogue(kv, nil)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if len(c.List("")) != 0 || !errors.Is(lookupErr(c, "order_ready", "ru"), ErrUnknownTemplate) {
		t.Fatal("empty bucket should give an empty catalogue")
	}
	if _, err := Put(ctx, kv, "", sample(t, "order_ready")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, func() bool { return lookupErr(c, "order_ready", "ru") == nil }, "first template never appeared")
}

func TestCatalogueStartCancelled(t *testing.T) {
	t.Parallel()
	kv := newKV(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := NewCatalogue(kv, nil).Start(ctx); err == nil {
		t.Fatal("Start with a cancelled context succeeded")
	}
}

// watchRecorder is the real bucket, remembering the watchers it hands out so that the test
// can end one the way a failed consumer reset does.
type watchRecorder struct {
	jetstream.KeyValue
	mu       sync.Mutex
	watchers []jetstream.KeyWatcher
}

func (r *watchRecorder) WatchAll(ctx context.Context, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	w, err := r.KeyValue.WatchAll(ctx, opts...)
	if err == nil {
		r.mu.Lock()
		r.watchers = append(r.watchers, w)
		r.mu.Unlock()
	}
	return w, err
}

func (r *watchRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.watchers)
}

func TestCatalogueWatchesAgain(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	kv := &watchRecorder{KeyValue: newKV(t)}
	for _, d := range SampleDefinitions() {
		if _, err := Put(ctx, kv, "", d); err != nil {
			t.Fatal(err)
		}
	}
	logger, logs := newLogger()
	c := NewCatalogue(kv, logger)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if kv.count() != 1 {
		t.Fatalf("%d watchers after Start", kv.count())
	}

	// End the watch: its updates channel closes.
	kv.mu.Lock()
	first := kv.watchers[0]
	kv.mu.Unlock()
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, func() bool { return kv.count() == 2 }, "catalogue did not watch again")
	if !strings.Contains(logs.String(), "watch ended") {
		t.Errorf("ended watch not logged: %s", logs)
	}
	if err := lookupErr(c, "order_ready", "ru"); err != nil {
		t.Errorf("state lost across the new watch: %v", err)
	}

	// Changes reach the catalogue through the new watch.
	if err := kv.Delete(ctx, "default.bonus_expiring.ru"); err != nil {
		t.Fatal(err)
	}
	paused := sample(t, "booking_reminder")
	paused.Status = StatusPaused
	if _, err := Put(ctx, kv, "", paused); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, func() bool {
		return errors.Is(lookupErr(c, "bonus_expiring", "ru"), ErrUnknownTemplate) &&
			errors.Is(lookupErr(c, "booking_reminder", "ru"), ErrNotApproved)
	}, "changes after the new watch not seen")
}

func TestCatalogueConcurrentLookups(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	kv := newKV(t)
	if _, err := Put(ctx, kv, "", sample(t, "order_ready")); err != nil {
		t.Fatal(err)
	}
	c := NewCatalogue(kv, nil)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	in := Input{Params: map[string]string{"order": "1", "address": "a", "until": "b"}, Buttons: map[string]string{"0": "1"}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if d, err := c.Lookup("", "order_ready", "ru"); err == nil {
					if _, err := d.RenderWhite(in); err != nil {
						t.Error(err)
						return
					}
				}
				_ = c.List("")
			}
		})
	}
	// Writers change the template under the readers; -race checks the snapshot handover.
	for range 5 {
		if _, err := Put(ctx, kv, "", sample(t, "order_ready")); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, wait, func() bool {
		d, err := c.Lookup("", "order_ready", "ru")
		return err == nil && d.Version == 6
	}, "version 6 never seen")
	close(stop)
	wg.Wait()
}
