package templates

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/testutil"
)

// bankOrderReady is bank's own order_ready: another text, no button.
func bankOrderReady(t *testing.T) *Definition {
	t.Helper()
	d := sample(t, "order_ready")
	d.Components = d.Components[:1]
	d.Components[0].Text = "Заказ {{order}} готов к выдаче по адресу {{address}}, хранение до {{until}}."
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	return d
}

func bodyOf(d *Definition) string { return d.Components[0].Text }

// TestCatalogueIsPerTenant (issue 13, finding 5): each tenant has its own templates. Bank's
// version of order_ready, proposed and then approved, never reaches shop's lookups, lists or
// stored definition.
func TestCatalogueIsPerTenant(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	kv := newKV(t)
	if err := PutSamples(ctx, kv, "shop", "bank"); err != nil {
		t.Fatal(err)
	}
	c := NewCatalogue(kv, nil)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	shopText := bodyOf(sample(t, "order_ready"))
	bank := bankOrderReady(t)
	bank.Status = StatusApproved // ignored: a proposal is pending
	v2, err := Propose(ctx, kv, "bank", bank)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Tenant != "bank" || v2.Version != 2 || v2.Status != StatusPending || v2.Approved == nil {
		t.Fatalf("bank's proposal stored as %+v", v2)
	}
	if _, err := SetStatus(ctx, kv, "bank", Review{Name: "order_ready", Language: "ru", Status: StatusApproved}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, func() bool {
		d, err := c.Lookup("bank", "order_ready", "ru")
		return err == nil && d.Version == 2
	}, "bank's version approved")

	for _, tt := range []struct {
		tenant, text string
		version      int
	}{
		{"shop", shopText, 1},
		{"bank", bank.Components[0].Text, 2},
	} {
		t.Run(tt.tenant, func(t *testing.T) {
			t.Parallel()
			d, err := c.Lookup(tt.tenant, "order_ready", "ru")
			if err != nil || d.Version != tt.version || bodyOf(d) != tt.text || d.Tenant != tt.tenant {
				t.Fatalf("Lookup = %+v, %v; want version %d of %s", d, err, tt.version, tt.tenant)
			}
			got, err := Get(ctx, kv, tt.tenant, "order_ready", "ru")
			if err != nil || got.Version != tt.version || bodyOf(got) != tt.text || got.Tenant != tt.tenant || got.Status != StatusApproved {
				t.Fatalf("Get = %+v, %v", got, err)
			}
			text, err := d.RenderText(Input{Params: map[string]string{"order": "1", "address": "a", "until": "b"}, Buttons: buttonsOf(d)})
			if err != nil || !strings.HasPrefix(text, strings.NewReplacer("{{order}}", "1", "{{address}}", "a", "{{until}}", "b").Replace(tt.text)) {
				t.Fatalf("renders %q, %v", text, err)
			}
		})
	}

	// A template only bank has is unknown to shop and to the default tenant.
	if _, err := Propose(ctx, kv, "bank", func() *Definition { d := bankOrderReady(t); d.Name = "bank_only"; return d }()); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, func() bool { _, err := c.Definition("bank", "bank_only", "ru"); return err == nil }, "bank_only seen")
	for _, tenant := range []string{"shop", "", "default", "nobody"} {
		if _, err := c.Definition(tenant, "bank_only", "ru"); !errors.Is(err, ErrUnknownTemplate) {
			t.Errorf("Definition(%q, bank_only) = %v, want ErrUnknownTemplate", tenant, err)
		}
		if _, err := Get(ctx, kv, tenant, "bank_only", "ru"); !errors.Is(err, ErrUnknownTemplate) {
			t.Errorf("Get(%q, bank_only) = %v, want ErrUnknownTemplate", tenant, err)
		}
	}
	names := func(defs []*Definition) string {
		var s []string
		for _, d := range defs {
			s = append(s, d.Tenant+":"+d.Name)
		}
		return strings.Join(s, " ")
	}
	shopList, err := List(ctx, kv, "shop")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, got, want string }{
		{"List(shop)", names(shopList), "shop:bonus_expiring shop:booking_reminder shop:order_ready"},
		{"Catalogue.List(bank)", names(c.List("bank")), "bank:bank_only bank:bonus_expiring bank:booking_reminder bank:order_ready"},
		{"Catalogue.List(default)", names(c.List("")), ""},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	holders, err := Holders(ctx, kv, "bank_only", "ru")
	if err != nil || !slices.Equal(holders, []string{"bank"}) {
		t.Errorf("Holders(bank_only) = %v, %v", holders, err)
	}
	if all, err := Tenants(ctx, kv); err != nil || !slices.Equal(all, []string{"bank", "shop"}) {
		t.Errorf("Tenants = %v, %v", all, err)
	}
}

// TestProposeIsPending: whatever status a proposal claims it is stored PENDING; only Meta's
// review (SetStatus) or its listing (Put) approves.
func TestProposeIsPending(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	kv := newKV(t)
	for i, status := range []string{"", StatusApproved, "approved", StatusPaused, StatusRejected, StatusPending} {
		t.Run("claims "+status, func(t *testing.T) {
			t.Parallel()
			d := sample(t, "booking_reminder")
			d.Name = "new_" + string(rune('a'+i))
			d.Status = status
			stored, err := Propose(ctx, kv, "shop", d)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := Get(ctx, kv, "shop", d.Name, "ru"); err != nil || stored.Status != StatusPending || got.Status != StatusPending {
				t.Fatalf("stored %s, read %+v, %v; want PENDING", stored.Status, got, err)
			}
		})
	}

	// A change to an approved template keeps Meta's id and the approved version.
	d := sample(t, "order_ready")
	d.ID = "419824263320619"
	if _, err := Put(ctx, kv, "shop", d); err != nil {
		t.Fatal(err)
	}
	changed := sample(t, "order_ready")
	changed.Status = StatusApproved
	changed.Components[1].Text = "Новая подпись"
	v2, err := Propose(ctx, kv, "shop", changed)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Status != StatusPending || v2.ID != d.ID || v2.Approved == nil || v2.Approved.Version != 1 || v2.Approved.Tenant != "shop" {
		t.Fatalf("change stored as %+v", v2)
	}
	if _, err := Propose(ctx, kv, "Not A Tenant", changed); !errors.Is(err, ErrInvalidDefinition) || !strings.Contains(err.Error(), "tenant") {
		t.Fatalf("invalid tenant: %v", err)
	}
}

// TestSetStatusMatchesTemplateID: a review applies to a definition that records the same
// Meta id, or none; never to one that records another.
func TestSetStatusMatchesTemplateID(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	kv := newKV(t)
	cases := []struct {
		name, stored, review string
		applies              bool
	}{
		{"no ids", "", "", true},
		{"the definition records none", "", "111", true},
		{"the review names none", "111", "", true},
		{"same id", "111", "111", true},
		{"another id", "111", "222", false},
	}
	for i, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := sample(t, "order_ready")
			d.Name = "order_ready_" + string(rune('a'+i))
			d.ID = tt.stored
			if _, err := Propose(ctx, kv, "shop", d); err != nil {
				t.Fatal(err)
			}
			_, err := SetStatus(ctx, kv, "shop", Review{TemplateID: tt.review, Name: d.Name, Language: "ru", Status: "approved"})
			got, gerr := Get(ctx, kv, "shop", d.Name, "ru")
			if gerr != nil {
				t.Fatal(gerr)
			}
			switch {
			case tt.applies && (err != nil || got.Status != StatusApproved):
				t.Fatalf("SetStatus = %v, stored %s; want APPROVED", err, got.Status)
			case !tt.applies && (!errors.Is(err, ErrOtherTemplate) || got.Status != StatusPending):
				t.Fatalf("SetStatus = %v, stored %s; want ErrOtherTemplate and PENDING", err, got.Status)
			}
			if got.ID != tt.stored {
				t.Errorf("id %q, want %q kept", got.ID, tt.stored)
			}
		})
	}
	if _, err := SetStatus(ctx, kv, "bank", Review{Name: "order_ready_a", Language: "ru", Status: StatusApproved}); !errors.Is(err, ErrUnknownTemplate) {
		t.Errorf("another tenant's review: %v, want ErrUnknownTemplate", err)
	}
}

// putLegacy stores d the way Herald did before tenancy: under "<name>.<language>", with no
// tenant.
func putLegacy(t *testing.T, kv jetstream.KeyValue, d *Definition, version int) {
	t.Helper()
	d.Version = version
	data, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), legacyKey(d.Name, d.Language), data); err != nil {
		t.Fatal(err)
	}
}

// TestLegacyEntries: an entry stored before tenancy reads as the default tenant's (and no one
// else's) until the default tenant's own key shadows it; the default tenant's first write
// moves it to its own key, carrying its version and approval.
func TestLegacyEntries(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	kv := newKV(t)
	for _, d := range SampleDefinitions() {
		putLegacy(t, kv, d, 3)
	}
	c := NewCatalogue(kv, nil)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tenant := range []string{"", "default"} {
		if d, err := c.Lookup(tenant, "order_ready", "ru"); err != nil || d.Version != 3 || d.Tenant != "default" {
			t.Fatalf("Lookup(%q) of a legacy entry = %+v, %v", tenant, d, err)
		}
		if d, err := Get(ctx, kv, tenant, "order_ready", "ru"); err != nil || d.Version != 3 || d.Tenant != "default" {
			t.Fatalf("Get(%q) of a legacy entry = %+v, %v", tenant, d, err)
		}
	}
	if _, err := c.Lookup("shop", "order_ready", "ru"); !errors.Is(err, ErrUnknownTemplate) {
		t.Fatalf("shop reads the default tenant's legacy entry: %v", err)
	}
	if _, err := Get(ctx, kv, "", "order_ready", "de"); !errors.Is(err, ErrUnknownLanguage) || !strings.Contains(err.Error(), "exists in ru") {
		t.Fatalf("unknown language of a legacy entry: %v", err)
	}
	if defs, err := List(ctx, kv, ""); err != nil || len(defs) != 3 || len(c.List("")) != 3 {
		t.Fatalf("List of legacy entries: %d, %v; catalogue %d", len(defs), err, len(c.List("")))
	}
	if defs, err := List(ctx, kv, "shop"); err != nil || len(defs) != 0 {
		t.Fatalf("shop lists legacy entries: %d, %v", len(defs), err)
	}
	if h, err := Holders(ctx, kv, "order_ready", "ru"); err != nil || !slices.Equal(h, []string{"default"}) {
		t.Fatalf("Holders = %v, %v", h, err)
	}

	// A proposal moves the entry: version 4 under the tenant's key, the approved version 3
	// carried along, the legacy key gone.
	changed := sample(t, "order_ready")
	changed.Components[1].Text = "Новая подпись"
	v4, err := Propose(ctx, kv, "", changed)
	if err != nil {
		t.Fatal(err)
	}
	if v4.Version != 4 || v4.Status != StatusPending || v4.Approved == nil || v4.Approved.Version != 3 {
		t.Fatalf("proposal over a legacy entry: %+v", v4)
	}
	if _, err := kv.Get(ctx, "order_ready.ru"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("legacy key still there: %v", err)
	}
	testutil.Eventually(t, wait, func() bool {
		d, _ := c.Definition("", "order_ready", "ru")
		return d != nil && d.Version == 4
	}, "the moved entry seen")
	if d, err := c.Lookup("", "order_ready", "ru"); err != nil || d.Version != 3 {
		t.Fatalf("while version 4 is pending: %+v, %v; want the approved version 3", d, err)
	}
	// A review moves an entry too.
	if _, err := SetStatus(ctx, kv, "", Review{Name: "booking_reminder", Language: "ru", Status: StatusPaused}); err != nil {
		t.Fatal(err)
	}
	if e, err := kv.Get(ctx, "default.booking_reminder.ru"); err != nil || !strings.Contains(string(e.Value()), `"PAUSED"`) {
		t.Fatalf("review of a legacy entry not moved: %v", err)
	}
	// Where both exist, the tenant's own key wins.
	own := sample(t, "bonus_expiring")
	own.Version = 9
	data, _ := json.Marshal(own)
	if _, err := kv.Put(ctx, "default.bonus_expiring.ru", data); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, func() bool {
		d, err := c.Lookup("", "bonus_expiring", "ru")
		return err == nil && d.Version == 9
	}, "own key shadows the legacy one")
	if d, err := Get(ctx, kv, "", "bonus_expiring", "ru"); err != nil || d.Version != 9 {
		t.Fatalf("Get = %+v, %v; want the own key's version 9", d, err)
	}
	if defs, err := List(ctx, kv, ""); err != nil || len(defs) != 3 {
		t.Fatalf("List with a shadowed entry: %d, %v", len(defs), err)
	}
	if n := len(c.List("")); n != 3 {
		t.Fatalf("Catalogue.List with a shadowed entry: %d", n)
	}
}

// TestMigrate: the one-time migration copies each legacy entry to the default tenant and the
// tenants named, keeps a tenant's own version, deletes the legacy key (not with Keep), leaves
// an entry that does not parse, and does nothing the second time.
func TestMigrate(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	kv := newKV(t)
	for _, d := range SampleDefinitions() {
		putLegacy(t, kv, d, 2)
	}
	if _, err := kv.Put(ctx, "broken.ru", []byte(`{"name":"broken"`)); err != nil {
		t.Fatal(err)
	}
	own := bankOrderReady(t)
	if _, err := Put(ctx, kv, "shop", own); err != nil {
		t.Fatal(err)
	}
	// Before the upgrade: copies only, the untenanted entries stay for the old processes.
	kept, err := Migrate(ctx, kv, MigrateOptions{Also: []string{"shop", "", "shop"}, Keep: true})
	if err != nil {
		t.Fatal(err)
	}
	if kept.Found != 4 || kept.Moved != 0 || kept.Copies != 5 || !slices.Equal(kept.Kept, []string{"broken.ru"}) {
		t.Fatalf("Migrate(Keep) = %+v; want 4 found, 5 copies, nothing deleted, broken.ru kept", kept)
	}
	if _, err := kv.Get(ctx, "order_ready.ru"); err != nil {
		t.Fatalf("Keep deleted a legacy entry: %v", err)
	}
	// After it: the same copies are there already; the untenanted entries go.
	res, err := Migrate(ctx, kv, MigrateOptions{Also: []string{"shop"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Found != 4 || res.Moved != 3 || res.Copies != 0 || !slices.Equal(res.Kept, []string{"broken.ru"}) {
		t.Fatalf("Migrate = %+v; want 3 moved, no new copies, broken.ru kept", res)
	}
	for _, tt := range []struct {
		tenant, name string
		version      int
		text         string
	}{
		{"default", "order_ready", 2, bodyOf(sample(t, "order_ready"))},
		{"shop", "order_ready", 1, bodyOf(own)}, // its own version stays
		{"shop", "bonus_expiring", 2, bodyOf(sample(t, "bonus_expiring"))},
		{"default", "booking_reminder", 2, bodyOf(sample(t, "booking_reminder"))},
	} {
		e, err := kv.Get(ctx, Key(tt.tenant, tt.name, "ru"))
		if err != nil {
			t.Fatalf("%s of %s: %v", tt.name, tt.tenant, err)
		}
		d, err := ParseDefinition(e.Value())
		if err != nil || d.Tenant != tt.tenant || d.Version != tt.version || bodyOf(d) != tt.text || d.Status != StatusApproved {
			t.Errorf("%s of %s = %+v, %v", tt.name, tt.tenant, d, err)
		}
	}
	for _, k := range []string{"order_ready.ru", "bonus_expiring.ru", "booking_reminder.ru"} {
		if _, err := kv.Get(ctx, k); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Errorf("legacy %s not deleted: %v", k, err)
		}
	}
	again, err := Migrate(ctx, kv, MigrateOptions{Also: []string{"shop"}})
	if err != nil || again.Found != 1 || again.Moved != 0 || again.Copies != 0 {
		t.Fatalf("second Migrate = %+v, %v; want nothing done", again, err)
	}
	if _, err := Migrate(ctx, kv, MigrateOptions{Also: []string{"Bad Tenant"}}); !errors.Is(err, ErrInvalidDefinition) {
		t.Fatalf("Migrate to an invalid tenant: %v", err)
	}
}

func TestWABATenants(t *testing.T) {
	t.Parallel()
	byWABA := Owners(func(waba string) []string {
		return map[string][]string{"111": {"shop", "default"}, "222": {"bank"}}[waba]
	})
	for _, tt := range []struct {
		name    string
		owners  Owners
		waba    string
		tenants []string
		want    []string
	}{
		{"none", nil, "111", nil, []string{}},
		{"every tenant shares the one WABA", nil, "111", []string{"shop", "bank", "shop"}, []string{"bank", "shop"}},
		{"empty is the default tenant", nil, "111", []string{"", "default"}, []string{"default"}},
		{"invalid names are dropped", nil, "111", []string{"Bad Tenant", "shop"}, []string{"shop"}},
		{"a fleet: the WABA's tenants", byWABA, "111", []string{"bank", "shop", ""}, []string{"default", "shop"}},
		{"a fleet: another WABA", byWABA, "222", []string{"bank", "shop"}, []string{"bank"}},
		{"a fleet: a WABA of no tenant", byWABA, "333", []string{"bank", "shop"}, []string{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := WABATenants(tt.owners, tt.waba, tt.tenants); !slices.Equal(got, tt.want) {
				t.Fatalf("WABATenants = %v, want %v", got, tt.want)
			}
		})
	}
}

// buttonsOf gives each button of d that takes a value one.
func buttonsOf(d *Definition) map[string]string {
	b := map[string]string{}
	for _, bt := range d.prog.buttons {
		if bt.takesValue {
			b[bt.index] = "1"
		}
	}
	return b
}
