package templates

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/testutil"
)

// newKV starts a nats-server and creates the catalogue bucket the way provisioning does.
func newKV(t *testing.T) jetstream.KeyValue {
	t.Helper()
	n := testutil.StartNATS(t)
	_, js := n.Connect(t)
	kv, err := js.CreateOrUpdateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: Bucket, History: 5})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func TestPutGet(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	kv := newKV(t)

	in := sample(t, "order_ready")
	in.Status = "approved" // lower case on input
	before := time.Now().UTC()
	stored, err := Put(ctx, kv, "", in)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Version != 1 || stored.UpdatedAt.Before(before) || stored.Status != StatusApproved {
		t.Fatalf("stored = version %d, updated %s, status %s", stored.Version, stored.UpdatedAt, stored.Status)
	}
	if in.Version != 0 || in.Status != "approved" || !in.UpdatedAt.IsZero() {
		t.Fatalf("Put changed its argument: %+v", in)
	}

	// The bucket holds the definition JSON under <name>.<language>.
	entry, err := kv.Get(ctx, "default.order_ready.ru")
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(entry.Value(), &raw); err != nil {
		t.Fatal(err)
	}
	if raw["name"] != "order_ready" || raw["version"] != float64(1) || raw["parameter_format"] != FormatNamed || raw["updated_at"] == nil {
		t.Fatalf("stored JSON = %s", entry.Value())
	}

	got, err := Get(ctx, kv, "", "order_ready", "ru")
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 1 || !got.UpdatedAt.Equal(stored.UpdatedAt) || got.Components[0].Text != in.Components[0].Text {
		t.Fatalf("Get = %+v", got)
	}
	// What Get returns renders like the original.
	if _, err := got.RenderWhite(Input{Params: map[string]string{"order": "1", "address": "a", "until": "b"}, Buttons: map[string]string{"0": "1"}}); err != nil {
		t.Fatal(err)
	}

	changed := sample(t, "order_ready")
	changed.Components[1].Text = "Новая подпись"
	stored, err = Put(ctx, kv, "", changed)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Version != 2 {
		t.Fatalf("second put: version %d, want 2", stored.Version)
	}
	if got, _ := Get(ctx, kv, "", "order_ready", "ru"); got.Version != 2 || got.Components[1].Text != "Новая подпись" {
		t.Fatalf("after update Get = %+v", got)
	}

	// A deleted template starts again at version 1.
	if err := kv.Delete(ctx, "default.order_ready.ru"); err != nil {
		t.Fatal(err)
	}
	if stored, err = Put(ctx, kv, "", changed); err != nil || stored.Version != 1 {
		t.Fatalf("put after delete: version %v, err %v", stored, err)
	}
}

func TestPutRejectsInvalid(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	kv := newKV(t)
	bad := &Definition{Name: "no_body", Language: "ru", Components: []Component{{Type: ComponentFooter, Text: "f"}}}
	if _, err := Put(ctx, kv, "", bad); !errors.Is(err, ErrInvalidDefinition) {
		t.Fatalf("err = %v, want ErrInvalidDefinition", err)
	}
	if _, err := kv.Get(ctx, "default.no_body.ru"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("invalid definition was stored: %v", err)
	}
}

func TestPutConcurrentVersions(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	kv := newKV(t)
	const n = 8
	versions := make([]int, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			d, err := Put(ctx, kv, "", sample(t, "bonus_expiring"))
			if err != nil {
				errs <- err
				return
			}
			versions[i] = d.Version
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	slices.Sort(versions)
	for i, v := range versions {
		if v != i+1 {
			t.Fatalf("versions = %v, want 1..%d each once", versions, n)
		}
	}
	if got, err := Get(ctx, kv, "", "bonus_expiring", "ru"); err != nil || got.Version != n {
		t.Fatalf("final version = %v, err %v", got, err)
	}
}

func TestGetErrors(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	kv := newKV(t)
	for _, d := range SampleDefinitions() {
		if _, err := Put(ctx, kv, "", d); err != nil {
			t.Fatal(err)
		}
	}
	en := sample(t, "order_ready")
	en.Language = "en_US"
	if _, err := Put(ctx, kv, "", en); err != nil {
		t.Fatal(err)
	}
	gone := sample(t, "booking_reminder")
	gone.Language = "kk"
	if _, err := Put(ctx, kv, "", gone); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "default.booking_reminder.kk"); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, tmpl, lang string
		want             error
		mention          string
	}{
		{"unknown template", "no_such", "ru", ErrUnknownTemplate, `"no_such"`},
		{"unknown language lists the others", "order_ready", "de", ErrUnknownLanguage, "en_US, ru"},
		{"invalid language", "order_ready", "ru.x", ErrUnknownLanguage, "en_US, ru"},
		{"invalid name", "Order.Ready", "ru", ErrUnknownTemplate, "Order.Ready"},
		{"deleted language", "booking_reminder", "kk", ErrUnknownLanguage, "exists in ru"},
		{"prefix is not a name", "order", "ru", ErrUnknownTemplate, `"order"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Get(ctx, kv, "", tt.tmpl, tt.lang)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %s", err, tt.mention)
			}
			if !IsPermanent(err) {
				t.Errorf("not permanent: %v", err)
			}
		})
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	kv := newKV(t)
	if defs, err := List(ctx, kv, ""); err != nil || len(defs) != 0 {
		t.Fatalf("empty bucket: %d defs, err %v", len(defs), err)
	}
	for _, d := range SampleDefinitions() {
		if _, err := Put(ctx, kv, "", d); err != nil {
			t.Fatal(err)
		}
	}
	paused := sample(t, "order_ready")
	paused.Language, paused.Status = "en", StatusPaused
	if _, err := Put(ctx, kv, "", paused); err != nil {
		t.Fatal(err)
	}
	if _, err := Put(ctx, kv, "", sample(t, "bonus_expiring")); err != nil { // version 2
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, Key("", "booking_reminder", "ru")); err != nil {
		t.Fatal(err)
	}

	defs, err := List(ctx, kv, "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range defs {
		got = append(got, legacyKey(d.Name, d.Language)+"/"+d.Status+"/"+strconv.Itoa(d.Version))
	}
	want := []string{"bonus_expiring.ru/APPROVED/2", "order_ready.en/PAUSED/1", "order_ready.ru/APPROVED/1"}
	if !slices.Equal(got, want) {
		t.Fatalf("List = %v, want %v", got, want)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := List(cancelled, kv, ""); err == nil {
		t.Error("List with a cancelled context succeeded")
	}
}
