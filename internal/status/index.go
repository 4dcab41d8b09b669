package status

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/herald-notify/herald/internal/job"
)

// The console's indexes (internal/console): which jobs a tenant's campaign has, which
// campaigns a tenant has, and which jobs went to a number. Records alone cannot be listed by
// campaign or phone without scanning every key; these sorted sets (scored by when the job
// was indexed, members the job ids) page a campaign's million rows with ZRANGE.
//
//	herald:idx:camp:<tenant>/<campaign>  the campaign's job ids
//	herald:idx:camps:<tenant>            the tenant's campaign names
//	herald:idx:to:<tenant>/<e164>        the job ids sent to a number (the latest kept)
func campaignIndexKey(tenant, name string) string {
	return "herald:idx:camp:" + job.TenantOr(tenant) + "/" + name
}

func campaignsIndexKey(tenant string) string { return "herald:idx:camps:" + job.TenantOr(tenant) }

func phoneIndexKey(tenant, to string) string {
	return "herald:idx:to:" + job.TenantOr(tenant) + "/" + to
}

// MaxPerPhone bounds the job ids the phone index keeps per number: the latest ones.
const MaxPerPhone = 100

// Index adds recs to the campaign, campaign-name and phone indexes. Adding a job twice keeps
// its first place (ZADD NX), so a retried batch does not reorder a campaign. The keys live
// as long as the records (the store's TTL, renewed on each write).
func (s *Store) Index(ctx context.Context, recs []*Record) error {
	if len(recs) == 0 {
		return nil
	}
	now := float64(s.now().UnixMilli())
	pipe := s.rdb.Pipeline()
	touched := map[string]bool{}
	named := map[string]bool{}
	for i, r := range recs {
		// The position within a batch breaks ties of one millisecond: rows keep their order.
		z := redis.Z{Score: now + float64(i)/float64(len(recs)+1), Member: r.ID}
		if r.Campaign != "" {
			k := campaignIndexKey(r.Tenant, r.Campaign)
			pipe.ZAddNX(ctx, k, z)
			touched[k] = true
			if ck := campaignsIndexKey(r.Tenant); !named[ck+"/"+r.Campaign] {
				pipe.ZAddNX(ctx, ck, redis.Z{Score: now, Member: r.Campaign})
				named[ck+"/"+r.Campaign], touched[ck] = true, true
			}
		}
		if r.To != "" {
			k := phoneIndexKey(r.Tenant, r.To)
			pipe.ZAddNX(ctx, k, z)
			pipe.ZRemRangeByRank(ctx, k, 0, -MaxPerPhone-1)
			touched[k] = true
		}
	}
	if s.ttl > 0 {
		for k := range touched {
			pipe.Expire(ctx, k, s.ttl)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("status index: %w", err)
	}
	return nil
}

// CampaignMembers returns count job ids of tenant's campaign from offset, in the order they
// were indexed, and how many the campaign has.
func (s *Store) CampaignMembers(ctx context.Context, tenant, name string, offset, count int64) ([]string, int64, error) {
	k := campaignIndexKey(tenant, name)
	pipe := s.rdb.Pipeline()
	ids := pipe.ZRange(ctx, k, offset, offset+count-1)
	n := pipe.ZCard(ctx, k)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, 0, fmt.Errorf("status campaign members: %w", err)
	}
	return ids.Val(), n.Val(), nil
}

// CampaignNames returns tenant's indexed campaign names, the newest first.
func (s *Store) CampaignNames(ctx context.Context, tenant string) ([]string, error) {
	names, err := s.rdb.ZRevRange(ctx, campaignsIndexKey(tenant), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("status campaign names: %w", err)
	}
	return names, nil
}

// JobsTo returns the ids of tenant's latest jobs to the E.164 number to, the newest first.
func (s *Store) JobsTo(ctx context.Context, tenant, to string) ([]string, error) {
	ids, err := s.rdb.ZRevRange(ctx, phoneIndexKey(tenant, to), 0, MaxPerPhone-1).Result()
	if err != nil {
		return nil, fmt.Errorf("status jobs to: %w", err)
	}
	return ids, nil
}

// Indexing is a Store whose Create and CreateMany also index the records (Index): give it
// to the API (api.Config.Store) so that every job it accepts can be listed by campaign and
// number. An index write that fails is returned: the record is written, and the caller's
// retry (creating is idempotent) indexes it.
type Indexing struct{ *Store }

// Create implements the API's Store: it creates rec, then indexes it (also when the record
// existed: a worker may have created it first, and indexing again changes nothing).
func (s Indexing) Create(ctx context.Context, rec *Record) (bool, *Record, error) {
	created, existing, err := s.Store.Create(ctx, rec)
	if err != nil {
		return created, existing, err
	}
	return created, existing, s.Index(ctx, []*Record{rec})
}

// CreateMany implements the API's Store: it creates recs, then indexes them.
func (s Indexing) CreateMany(ctx context.Context, recs []*Record) error {
	if err := s.Store.CreateMany(ctx, recs); err != nil {
		return err
	}
	return s.Index(ctx, recs)
}
