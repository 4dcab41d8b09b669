// Package migrate moves what a Herald before tenancy left in Redis to the keys of tenancy,
// once: records keyed by a bare job id go under the job's ref (<tenant>/<id>), the index from
// provider message ids to jobs names refs, and campaign counters are kept per tenant.
//
// It is idempotent (a key already in the new form is left alone, and a rename never
// overwrites: RENAMENX), safe to run while workers run (a record is moved with its TTL in one
// command; a worker of the new version never reads an old key), and resumable: run it again
// after an interruption.
package migrate

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/status"
)

// Progress is told how many keys were looked at and moved so far, now and then.
type Progress func(stage string, seen, moved int)

// Result counts what Tenancy did.
type Result struct {
	Records, Messages, Campaigns int
	// Skipped counts old keys that could not be moved (unreadable, or the new key exists).
	Skipped int
}

// scanCount is how many keys one SCAN asks for: large enough that a million records take a
// few thousand round trips, small enough not to block Redis.
const scanCount = 1000

// Tenancy moves every pre-tenancy key in rdb. A record's tenant is the one it names (the API
// always set it), else the default one.
func Tenancy(ctx context.Context, rdb redis.UniversalClient, progress Progress) (Result, error) {
	if progress == nil {
		progress = func(string, int, int) {}
	}
	var res Result
	// The tenant of each moved job id, for the message index and the campaign counters.
	tenantOf := map[string]string{}
	campaignTenants := map[string]map[string]bool{}
	seen := 0
	err := scan(ctx, rdb, "herald:n:{*}", func(keys []string) error {
		for _, key := range keys {
			seen++
			id := strings.TrimSuffix(strings.TrimPrefix(key, "herald:n:{"), "}")
			if strings.Contains(id, "/") {
				continue // already a ref
			}
			raw, err := rdb.Get(ctx, key).Result()
			if err == redis.Nil {
				continue // expired meanwhile
			}
			if err != nil {
				return err
			}
			var rec struct {
				Tenant   string `json:"tenant"`
				Campaign string `json:"campaign"`
			}
			if json.Unmarshal([]byte(raw), &rec) != nil {
				res.Skipped++
				continue
			}
			tenant := job.TenantOr(rec.Tenant)
			if !job.ValidTenant(tenant) {
				tenant = job.DefaultTenant
			}
			// The record's own tenant field follows its key.
			if rec.Tenant != tenant {
				var m map[string]any
				if json.Unmarshal([]byte(raw), &m) == nil {
					m["tenant"] = tenant
					if b, err := json.Marshal(m); err == nil {
						if err := rdb.Set(ctx, key, b, redis.KeepTTL).Err(); err != nil {
							return err
						}
					}
				}
			}
			ok, err := rdb.RenameNX(ctx, key, status.RecordKey(job.Ref(tenant, id))).Result()
			if err != nil {
				return err
			}
			if !ok {
				res.Skipped++
				continue
			}
			res.Records++
			tenantOf[id] = tenant
			if rec.Campaign != "" {
				if campaignTenants[rec.Campaign] == nil {
					campaignTenants[rec.Campaign] = map[string]bool{}
				}
				campaignTenants[rec.Campaign][tenant] = true
			}
		}
		progress("records", seen, res.Records)
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("migrate records: %w", err)
	}

	seen = 0
	err = scan(ctx, rdb, "herald:m:{*}", func(keys []string) error {
		for _, key := range keys {
			seen++
			id, err := rdb.Get(ctx, key).Result()
			if err == redis.Nil || strings.Contains(id, "/") {
				continue
			}
			if err != nil {
				return err
			}
			tenant, ok := tenantOf[id]
			if !ok {
				tenant = job.DefaultTenant // the record expired or was moved by an earlier run
			}
			if err := rdb.Set(ctx, key, job.Ref(tenant, id), redis.KeepTTL).Err(); err != nil {
				return err
			}
			res.Messages++
		}
		progress("message index", seen, res.Messages)
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("migrate the message index: %w", err)
	}

	seen = 0
	err = scan(ctx, rdb, "herald:camp:*", func(keys []string) error {
		for _, key := range keys {
			seen++
			name := strings.TrimPrefix(key, "herald:camp:")
			if strings.Contains(name, "/") {
				continue
			}
			// A campaign's counters go to its tenant; one whose records named several
			// tenants (possible before tenancy) or none (expired) goes to the default one.
			tenant := job.DefaultTenant
			if ts := campaignTenants[name]; len(ts) == 1 {
				for t := range ts {
					tenant = t
				}
			}
			ok, err := rdb.RenameNX(ctx, key, status.CampaignKey(tenant, name)).Result()
			if err != nil {
				return err
			}
			if !ok {
				res.Skipped++
				continue
			}
			res.Campaigns++
		}
		progress("campaign counters", seen, res.Campaigns)
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("migrate campaign counters: %w", err)
	}
	return res, nil
}

// scan calls fn with each batch of the keys matching pattern. Herald's records live on one
// Redis primary (see the README's deployment notes), so one SCAN sees them all.
func scan(ctx context.Context, rdb redis.UniversalClient, pattern string, fn func([]string) error) error {
	c, ok := rdb.(*redis.Client)
	if !ok {
		return fmt.Errorf("migrate: needs a single Redis primary, not %T", rdb)
	}
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, pattern, scanCount).Result()
		if err != nil {
			return err
		}
		if err := fn(keys); err != nil {
			return err
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}
