package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/config"
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
	var raw []json.RawMessage
	for _, d := range defs {
		raw = append(raw, json.RawMessage(d))
	}
	s := sim.New(sim.Config{Token: "tok", WABAID: testWABA, Templates: raw, Logger: slog.New(slog.DiscardHandler)})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return white.New(white.Config{BaseURL: srv.URL, Version: "v21.0", WABAID: testWABA, Token: "tok"}, nil)
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
			if err := syncTemplates(ctx, kv, wc, c.owners, testWABA, c.tenant, c.configured, &out, slog.New(slog.DiscardHandler)); err != nil {
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
			if err := syncTemplates(ctx, kv, wc, c.owners, testWABA, c.tenant, c.configured, &out, slog.New(slog.DiscardHandler)); err != nil {
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
	err := syncTemplates(t.Context(), kv, listingClient(t, listedApproved), byFleet, testWABA, "bank", nil, &out, slog.New(slog.DiscardHandler))
	if _, ok := err.(usageError); !ok || !strings.Contains(err.Error(), "bank") {
		t.Fatalf("err = %v, want a usage error naming bank", err)
	}
	if defs, _ := templates.List(t.Context(), kv, "bank"); len(defs) != 0 {
		t.Fatalf("bank got %d templates", len(defs))
	}
}
