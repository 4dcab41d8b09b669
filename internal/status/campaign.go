package status

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/herald-notify/herald/internal/job"
)

// CampaignKey is the Redis hash of a tenant's campaign's counters: s:<state> (records in
// each state), c:<channel> (messages sent per channel), first_sent and last_sent (Unix ms).
// Campaigns are per tenant: two tenants may name a campaign alike.
func CampaignKey(tenant, name string) string {
	return "herald:camp:" + job.TenantOr(tenant) + "/" + name
}

// CampaignCounters are a campaign's counters in Redis.
type CampaignCounters struct {
	// States counts the campaign's records by state.
	States map[string]int64
	// Channels counts messages sent per channel (fallbacks count on each channel used).
	Channels map[string]int64
	// Parts counts the billed parts of the messages sent per channel: SMS segments. A
	// channel without parts is billed per message.
	Parts map[string]int64
	// FirstSent and LastSent bound the sends (zero when none yet).
	FirstSent, LastSent time.Time
}

// Campaign reads the counters of tenant's campaign name.
func (s *Store) Campaign(ctx context.Context, tenant, name string) (CampaignCounters, error) {
	m, err := s.rdb.HGetAll(ctx, CampaignKey(tenant, name)).Result()
	if err != nil {
		return CampaignCounters{}, fmt.Errorf("status campaign: %w", err)
	}
	c := CampaignCounters{States: map[string]int64{}, Channels: map[string]int64{}, Parts: map[string]int64{}}
	for k, v := range m {
		n, _ := strconv.ParseInt(v, 10, 64)
		switch {
		case strings.HasPrefix(k, "s:"):
			if n != 0 {
				c.States[k[2:]] = n
			}
		case strings.HasPrefix(k, "c:"):
			c.Channels[k[2:]] = n
		case strings.HasPrefix(k, "p:"):
			c.Parts[k[2:]] = n
		case k == "first_sent":
			c.FirstSent = time.UnixMilli(n).UTC()
		case k == "last_sent":
			c.LastSent = time.UnixMilli(n).UTC()
		}
	}
	return c, nil
}
