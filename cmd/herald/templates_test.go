package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/config"
	"github.com/herald-notify/herald/internal/fleet"
	"github.com/herald-notify/herald/internal/sim"
	"github.com/herald-notify/herald/internal/templates"
	"github.com/herald-notify/herald/internal/testutil"
	"github.com/herald-notify/herald/internal/white"
)

const testWABA = "102290129340398"

// newCatalogueKV starts a nats-server with an empty template bucket.
func newCatalogueKV(t *testing.T) jetstream.KeyValue {
	t.Helper()
	_, js := testutil.StartNATS(t).Connect(t)
	kv, err := js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: templates.Bucket, History: 5})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// listingClient is a white client of a simulator that lists the given definitions as Meta
// would: statuses, ids and all.
func listingClient(t *testing.T, defs ...string) *white.Client {
	t.Helper()
	return white.New(white.Config{BaseURL: listingSim(t, testWABA, "tok", defs...), Version: "v21.0", WABAID: testWABA, Token: "tok"}, nil)
}

// listingSim starts a simulator of one WABA, which lists defs to callers with token, and
// returns its URL.
func listingSim(t *testing.T, waba, token string, defs ...string) string {
	t.Helper()
	var raw []json.RawMessage
	for _, d := range defs {
		raw = append(raw, json.RawMessage(d))
	}
	s := sim.New(sim.Config{Token: token, WABAID: waba, Templates: raw, Logger: slog.New(slog.DiscardHandler)})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

const (
	listedApproved = `{"id":"111","name":"order_ready","language":"ru","status":"APPROVED","category":"UTILITY","components":[{"type":"BODY","text":"Заказ {{1}} ждёт вас.","example":{"body_text":[["1"]]}}]}`
	listedPending  = `{"id":"222","name":"pickup_code","language":"ru","status":"PENDING","category":"UTILITY","components":[{"type":"BODY","text":"Код {{1}}.","example":{"body_text":[["1"]]}}]}`
)

// TestSyncTemplates: sync stores Meta's listing, statuses included, in the catalogue of each
// tenant of the WABA (the default one, the configured ones, those with templates already;
// with a fleet, those whose senders are of the WABA), or of the one tenant asked for; a
// second sync changes nothing.
func TestSyncTemplates(t *testing.T) {
	t.Parallel()
	// A fleet file where shop sends through the WABA and bank through another.
	byFleet := templates.Owners(func(waba string) []string { return map[string][]string{testWABA: {"shop"}}[waba] })
	cases := []struct {
		name, tenant string
		owners       templates.Owners
		configured   []string
		want         []string // the tenants that get the listing
		untouched    []string
	}{
		{"every tenant of the WABA", "", nil, []string{"shop", "bank"}, []string{"acme", "bank", "default", "shop"}, nil},
		{"no configured tenants", "", nil, nil, []string{"acme", "default"}, nil},
		{"one tenant", "shop", nil, []string{"shop", "bank"}, []string{"shop"}, []string{"bank", "default", "acme"}},
		{"a fleet: the WABA's tenants only", "", byFleet, []string{"shop", "bank"}, []string{"shop"}, []string{"bank", "default", "acme"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			kv := newCatalogueKV(t)
			// acme has a template already: it is one of the WABA's tenants too.
			if err := templates.PutSamples(ctx, kv, "acme"); err != nil {
				t.Fatal(err)
			}
			wc := listingClient(t, listedApproved, listedPending)
			var out bytes.Buffer
			if _, _, err := syncTemplates(ctx, kv, wc, c.owners, testWABA, c.tenant, c.configured, &out, slog.New(slog.DiscardHandler)); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), "sync done into "+strings.Join(c.want, ", ")+": ") {
				t.Errorf("output %q", out.String())
			}
			for _, tenant := range c.want {
				for _, w := range []struct{ name, status, id string }{{"order_ready", "APPROVED", "111"}, {"pickup_code", "PENDING", "222"}} {
					d, err := templates.Get(ctx, kv, tenant, w.name, "ru")
					if err != nil || d.Status != w.status || d.ID != w.id || d.Tenant != tenant {
						t.Errorf("%s of %s: %+v, %v; want %s, id %s", w.name, tenant, d, err, w.status, w.id)
					}
				}
			}
			for _, tenant := range c.untouched {
				if d, err := templates.Get(ctx, kv, tenant, "pickup_code", "ru"); err == nil {
					t.Errorf("%s got the listing: %+v", tenant, d)
				}
			}
			out.Reset()
			if _, _, err := syncTemplates(ctx, kv, wc, c.owners, testWABA, c.tenant, c.configured, &out, slog.New(slog.DiscardHandler)); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), ": 0 updated, 0 skipped") {
				t.Errorf("second sync: %q, want nothing updated", out.String())
			}
		})
	}
}

// TestMigrateTemplates: `herald templates migrate -keep` copies the untenanted entries to the
// default tenant and the tenants named; `herald templates migrate` then deletes them, once.
func TestMigrateTemplates(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	kv := newCatalogueKV(t)
	for _, d := range templates.SampleDefinitions() {
		data, _ := json.Marshal(d)
		if _, err := kv.Put(ctx, d.Name+"."+d.Language, data); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if err := migrateTemplates(ctx, kv, templates.MigrateOptions{Also: []string{"shop"}, Keep: true}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "3 untenanted templates copied to default, shop (6 keys written; a tenant's own version was kept), 0 deleted") {
		t.Errorf("-keep output %q", out.String())
	}
	out.Reset()
	if err := migrateTemplates(ctx, kv, templates.MigrateOptions{Also: []string{"shop"}}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "3 untenanted templates copied to default, shop (0 keys written; a tenant's own version was kept), 3 deleted") {
		t.Errorf("output %q", out.String())
	}
	for _, tenant := range []string{"default", "shop"} {
		defs, err := templates.List(ctx, kv, tenant)
		if err != nil || len(defs) != 3 {
			t.Errorf("%s has %d templates, %v", tenant, len(defs), err)
		}
	}
	kl, err := kv.ListKeysFiltered(ctx, "*.*")
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for k := range kl.Keys() {
		left = append(left, k)
	}
	if !slices.Equal(left, nil) {
		t.Errorf("untenanted keys left: %v", left)
	}
	out.Reset()
	if err := migrateTemplates(ctx, kv, templates.MigrateOptions{Also: []string{"shop"}}, &out); err != nil || !strings.Contains(out.String(), "0 untenanted templates copied") {
		t.Errorf("second migrate: %q, %v", out.String(), err)
	}
}

// TestDevSamples: `herald dev` gives the sample templates to the default tenant and to every
// tenant of HERALD_API_KEYS (the tour's key among them), and leaves them alone once there.
func TestDevSamples(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, js := testutil.StartNATS(t).Connect(t)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: templates.Bucket, History: 5})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Defaults()
	cfg.APIKeys = "dev:" + devKey + ",shop:shop-key-00000001"
	for range 2 {
		if err := loadSamples(ctx, js, &cfg); err != nil {
			t.Fatal(err)
		}
	}
	for _, tenant := range []string{"default", "dev", "shop"} {
		d, err := templates.Get(ctx, kv, tenant, "order_ready", "ru")
		if err != nil || d.Status != templates.StatusApproved || d.Version != 1 {
			t.Errorf("order_ready of %s: %+v, %v; want version 1 APPROVED", tenant, d, err)
		}
	}
}

// TestSyncRefusesTenantOfAnotherWABA: -tenant names a tenant that does not send through the
// WABA: nothing is synced.
func TestSyncRefusesTenantOfAnotherWABA(t *testing.T) {
	t.Parallel()
	kv := newCatalogueKV(t)
	byFleet := templates.Owners(func(waba string) []string { return map[string][]string{testWABA: {"shop"}}[waba] })
	var out bytes.Buffer
	_, _, err := syncTemplates(t.Context(), kv, listingClient(t, listedApproved), byFleet, testWABA, "bank", nil, &out, slog.New(slog.DiscardHandler))
	if _, ok := err.(usageError); !ok || !strings.Contains(err.Error(), "bank") {
		t.Fatalf("err = %v, want a usage error naming bank", err)
	}
	if defs, _ := templates.List(t.Context(), kv, "bank"); len(defs) != 0 {
		t.Fatalf("bank got %d templates", len(defs))
	}
}

// Two WABAs for the per-WABA sync: shop sends through both, bank through B only.
const (
	wabaA, wabaB     = "600100", "600200"
	listedPendingInB = `{"id":"333","name":"order_ready","language":"ru","status":"PENDING","category":"UTILITY","components":[{"type":"BODY","text":"Заказ {{1}} ждёт вас.","example":{"body_text":[["1"]]}}]}`
	listedCodeInB    = `{"id":"444","name":"pickup_code","language":"ru","status":"APPROVED","category":"UTILITY","components":[{"type":"BODY","text":"Код {{1}}.","example":{"body_text":[["1"]]}}]}`
)

// twoWABAFleet is a fleet file whose white senders list their WABA's templates from the
// simulators at urlA and urlB, each with its own token.
func twoWABAFleet(t *testing.T, urlA, urlB string) *fleet.Fleet {
	t.Helper()
	doc := `
senders:
  - {id: shop-a, kind: white, phone_number_id: "700001", waba_id: "` + wabaA + `", base_url: "` + urlA + `", api_version: v21.0, token: tok-a, app_secret: s}
  - {id: shop-b, kind: white, phone_number_id: "700002", waba_id: "` + wabaB + `", base_url: "` + urlB + `", api_version: v21.0, token: tok-b, app_secret: s}
  - {id: bank-b, kind: white, phone_number_id: "700003", waba_id: "` + wabaB + `", base_url: "` + urlB + `", api_version: v21.0, token: tok-b, app_secret: s}
tenants:
  shop: {channels: [white], senders: [shop-a, shop-b]}
  bank: {channels: [white], senders: [bank-b]}
`
	f, err := fleet.Parse([]byte(doc), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestSyncPerWABA: with a fleet file, sync reads every WABA of its white senders (each with
// its sender's token and base_url, from the simulator) and records each WABA's review in
// the tenants that own that WABA, keeping the other WABA's; -tenant reads only the WABAs of
// that tenant, -waba only that one; a second sync changes nothing.
func TestSyncPerWABA(t *testing.T) {
	t.Parallel()
	urlA := listingSim(t, wabaA, "tok-a", listedApproved)
	urlB := listingSim(t, wabaB, "tok-b", listedPendingInB, listedCodeInB)
	f := twoWABAFleet(t, urlA, urlB)
	cfg := config.Defaults()
	type review struct{ status, id string }
	cases := []struct {
		name, tenant, waba string
		// want: tenant → template → WABA → review stored.
		want  map[string]map[string]map[string]review
		lines []string
	}{
		{"every WABA", "", "", map[string]map[string]map[string]review{
			"shop": {"order_ready": {wabaA: {"APPROVED", "111"}, wabaB: {"PENDING", "333"}}, "pickup_code": {wabaB: {"APPROVED", "444"}}},
			"bank": {"order_ready": {wabaB: {"PENDING", "333"}}, "pickup_code": {wabaB: {"APPROVED", "444"}}},
		}, []string{"WABA 600100: sync done into shop: 1 updated", "WABA 600200: sync done into bank, shop: 4 updated", "sync done: 2 WABAs, 0 failed; 5 updated, 0 skipped"}},
		{"one tenant: its WABAs only", "bank", "", map[string]map[string]map[string]review{
			"bank": {"order_ready": {wabaB: {"PENDING", "333"}}, "pickup_code": {wabaB: {"APPROVED", "444"}}},
			"shop": {},
		}, []string{"WABA 600200: sync done into bank: 2 updated"}},
		{"one WABA", "", wabaA, map[string]map[string]map[string]review{
			"shop": {"order_ready": {wabaA: {"APPROVED", "111"}}},
			"bank": {},
		}, []string{"WABA 600100: sync done into shop: 1 updated"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			kv := newCatalogueKV(t)
			sources, err := wabaSources(&cfg, f, true, c.waba)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := syncWABAs(ctx, kv, sources, templates.FleetOwners(f), c.tenant, f.TenantNames(), &out, slog.New(slog.DiscardHandler)); err != nil {
				t.Fatalf("%v; output %s", err, out.String())
			}
			for _, l := range c.lines {
				if !strings.Contains(out.String(), l) {
					t.Errorf("output %q lacks %q", out.String(), l)
				}
			}
			for tenant, tmpls := range c.want {
				defs, err := templates.List(ctx, kv, tenant)
				if err != nil || len(defs) != len(tmpls) {
					t.Errorf("%s has %d templates (%v), want %d", tenant, len(defs), err, len(tmpls))
				}
				for _, d := range defs {
					got := map[string]review{}
					for w, r := range d.WABAs {
						got[w] = review{r.Status, r.ID}
					}
					if !maps.Equal(got, tmpls[d.Name]) {
						t.Errorf("%s's %s: reviews %v, want %v", tenant, d.Name, got, tmpls[d.Name])
					}
				}
			}
			out.Reset()
			err = syncWABAs(ctx, kv, sources, templates.FleetOwners(f), c.tenant, f.TenantNames(), &out, slog.New(slog.DiscardHandler))
			if err != nil || !strings.Contains(out.String(), " 0 updated") || regexp.MustCompile(`[1-9]\d* updated`).MatchString(out.String()) {
				t.Errorf("second sync: %q, %v; want nothing updated", out.String(), err)
			}
		})
	}
}

// TestSyncWABAFailure: a WABA whose listing fails (a wrong token) is reported by its id,
// and the other WABAs are synced all the same.
func TestSyncWABAFailure(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	kv := newCatalogueKV(t)
	urlA := listingSim(t, wabaA, "another-token", listedApproved)
	urlB := listingSim(t, wabaB, "tok-b", listedCodeInB)
	f := twoWABAFleet(t, urlA, urlB)
	cfg := config.Defaults()
	sources, err := wabaSources(&cfg, f, true, "")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = syncWABAs(ctx, kv, sources, templates.FleetOwners(f), "", f.TenantNames(), &out, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "WABA "+wabaA) || strings.Contains(err.Error(), "WABA "+wabaB) {
		t.Errorf("err = %v, want WABA %s's failure alone", err, wabaA)
	}
	if !strings.Contains(out.String(), "sync done: 2 WABAs, 1 failed; 2 updated") {
		t.Errorf("output %q", out.String())
	}
	if d, err := templates.Get(ctx, kv, "bank", "pickup_code", "ru"); err != nil || d.WABAs[wabaB].Status != templates.StatusApproved {
		t.Errorf("bank's pickup_code = %+v, %v; want approved in %s", d, err, wabaB)
	}
}

// TestWABASources: the WABAs sync reads, from a fleet file or the environment, and the
// refusals naming the flag or variable at fault.
func TestWABASources(t *testing.T) {
	t.Parallel()
	f := twoWABAFleet(t, "http://a.invalid", "http://b.invalid")
	env := config.Defaults()
	env.WhiteWABAID, env.WhiteToken = testWABA, "tok"
	noEnv := config.Defaults()
	greyOnly, err := fleet.Parse([]byte("senders:\n  - {id: g, kind: grey, base_url: \"http://g.invalid\", instance_id: \"1\", token: t, webhook_token: grey-webhook-token-0001}\ntenants:\n  shop: {channels: [grey], senders: [g]}\n"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		cfg      *config.Config
		f        *fleet.Fleet
		fromFile bool
		only     string
		want     []string // WABAs, or
		mention  string   // the usage error's
	}{
		{"fleet: every WABA once", &noEnv, f, true, "", []string{wabaA, wabaB}, ""},
		{"fleet: -waba", &noEnv, f, true, wabaB, []string{wabaB}, ""},
		{"fleet: -waba of none", &noEnv, f, true, "999", nil, "-waba 999: no white sender"},
		{"fleet without white senders", &noEnv, greyOnly, true, "", nil, "no white sender with a waba_id"},
		{"environment", &env, nil, false, "", []string{testWABA}, ""},
		{"environment: -waba of it", &env, nil, false, testWABA, []string{testWABA}, ""},
		{"environment: another -waba", &env, nil, false, "999", nil, "-waba 999: not HERALD_WHITE_WABA_ID"},
		{"environment: no WABA", &noEnv, nil, false, "", nil, "HERALD_WHITE_WABA_ID and HERALD_WHITE_TOKEN: required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := wabaSources(c.cfg, c.f, c.fromFile, c.only)
			if c.mention != "" {
				if _, ok := err.(usageError); !ok || !strings.Contains(err.Error(), c.mention) {
					t.Fatalf("err = %v, want a usage error mentioning %q", err, c.mention)
				}
				return
			}
			var wabas []string
			for _, s := range got {
				wabas = append(wabas, s.waba)
			}
			if err != nil || !slices.Equal(wabas, c.want) {
				t.Fatalf("wabaSources = %v, %v; want %v", wabas, err, c.want)
			}
		})
	}
}
