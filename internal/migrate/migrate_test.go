package migrate_test

import (
	"context"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/migrate"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/testutil"
)

// TestTenancy: what a Herald before tenancy left in Redis is readable under the new keys
// after one run, with its TTL, and a second run changes nothing.
func TestTenancy(t *testing.T) {
	t.Parallel()
	rdb := testutil.StartRedis(t).Client(t)
	ctx := context.Background()
	legacy := map[string]string{
		// An API job of tenant shop, an import without a tenant, and one already moved.
		"herald:n:{order-1}":      `{"id":"order-1","state":"sent","tenant":"shop","campaign":"spring","history":[]}`,
		"herald:n:{import-7}":     `{"id":"import-7","state":"queued","campaign":"autumn"}`,
		"herald:n:{bank/order-9}": `{"id":"order-9","state":"read","tenant":"bank"}`,
		"herald:m:{wamid.1}":      "order-1",
		"herald:m:{wamid.2}":      "bank/order-9",
		"herald:camp:spring":      "",
		"herald:camp:autumn":      "",
	}
	for k, v := range legacy {
		var err error
		if v == "" {
			err = rdb.HSet(ctx, k, "s:sent", 1).Err()
			rdb.Expire(ctx, k, time.Hour)
		} else {
			err = rdb.Set(ctx, k, v, time.Hour).Err()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	var reported int
	res, err := migrate.Tenancy(ctx, rdb, func(string, int, int) { reported++ })
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != 2 || res.Messages != 1 || res.Campaigns != 2 || res.Skipped != 0 || reported == 0 {
		t.Fatalf("result %+v (progress reported %d times)", res, reported)
	}
	store := status.NewStore(rdb, time.Hour, nil)
	for _, c := range []struct{ ref, tenant string }{{"shop/order-1", "shop"}, {"default/import-7", "default"}, {"bank/order-9", "bank"}} {
		rec, err := store.Get(ctx, c.ref)
		if err != nil || rec.Tenant != c.tenant {
			t.Fatalf("%s: %+v, %v", c.ref, rec, err)
		}
		if ttl := rdb.TTL(ctx, status.RecordKey(c.ref)).Val(); ttl <= 0 {
			t.Fatalf("%s lost its TTL: %v", c.ref, ttl)
		}
	}
	if ref, err := store.RefForMessage(ctx, "wamid.1"); err != nil || ref != "shop/order-1" {
		t.Fatalf("message index: %q, %v", ref, err)
	}
	for _, c := range []struct{ tenant, name string }{{"shop", "spring"}, {"default", "autumn"}} {
		if got, err := store.Campaign(ctx, c.tenant, c.name); err != nil || got.States["sent"] != 1 {
			t.Fatalf("campaign %s of %s: %+v, %v", c.name, c.tenant, got, err)
		}
	}
	if n := rdb.Exists(ctx, "herald:n:{order-1}", "herald:camp:spring").Val(); n != 0 {
		t.Fatalf("%d old keys left", n)
	}
	again, err := migrate.Tenancy(ctx, rdb, nil)
	if err != nil || again != (migrate.Result{}) {
		t.Fatalf("second run: %+v, %v; want nothing to do", again, err)
	}
}
