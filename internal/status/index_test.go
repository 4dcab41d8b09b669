package status_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/status"
)

// TestIndexListsACampaignPerTenant: the Indexing store lists a campaign's jobs in the order
// they were created, page by page; a retried batch neither duplicates nor reorders them; two
// tenants with one campaign name and one number list only their own jobs.
func TestIndexListsACampaignPerTenant(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	st := status.Indexing{Store: e.store}
	var shop, bank []*status.Record
	for i := range 7 {
		j := newJob(fmt.Sprintf("row-%02d", i), 100+i%3) // three numbers, several jobs each
		shop = append(shop, status.NewRecord(j, status.Queued, cascade, time.Now()))
		if i < 2 {
			jb := *j
			jb.Tenant = "bank"
			bank = append(bank, status.NewRecord(&jb, status.Queued, cascade, time.Now()))
		}
	}
	ctx := t.Context()
	if err := st.CreateMany(ctx, shop); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateMany(ctx, shop[:3]); err != nil { // a retry
		t.Fatal(err)
	}
	if _, _, err := st.Create(ctx, bank[0]); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateMany(ctx, bank[1:]); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		tenant        string
		offset, count int64
		want          []string
		total         int64
	}{
		{"first page", "shop", 0, 3, []string{"row-00", "row-01", "row-02"}, 7},
		{"last page, short", "shop", 6, 3, []string{"row-06"}, 7},
		{"past the end", "shop", 9, 3, nil, 7},
		{"the other tenant's own", "bank", 0, 10, []string{"row-00", "row-01"}, 2},
		{"a tenant without it", "nobody", 0, 10, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ids, total, err := e.store.CampaignMembers(t.Context(), tt.tenant, "c1", tt.offset, tt.count)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids, tt.want) || total != tt.total {
				t.Fatalf("members %v of %d, want %v of %d", ids, total, tt.want, tt.total)
			}
		})
	}
	if names, err := e.store.CampaignNames(ctx, "shop"); err != nil || !slices.Equal(names, []string{"c1"}) {
		t.Fatalf("campaign names: %v, %v", names, err)
	}
	// Number 100 got rows 0, 3 and 6 of shop: the newest first.
	if ids, err := e.store.JobsTo(ctx, "shop", shop[0].To); err != nil || !slices.Equal(ids, []string{"row-06", "row-03", "row-00"}) {
		t.Fatalf("jobs to %s: %v, %v", shop[0].To, ids, err)
	}
	if ids, err := e.store.JobsTo(ctx, "bank", shop[0].To); err != nil || !slices.Equal(ids, []string{"row-00"}) {
		t.Fatalf("bank's jobs to %s: %v, %v", shop[0].To, ids, err)
	}
	if ttl := e.rdb.TTL(ctx, "herald:idx:camp:shop/c1").Val(); ttl <= 0 {
		t.Fatalf("the campaign index has no TTL (%v): it would outlive its records", ttl)
	}
}
