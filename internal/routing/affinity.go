package routing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-notify/herald/internal/status"
)

// DefaultStickyTTL is how long a customer stays with the number that last messaged them when
// nothing is sent to them meanwhile (HERALD_STICKY_TTL).
const DefaultStickyTTL = 30 * 24 * time.Hour

// Affinity reads and keeps, in Redis, what ties a customer to a number: the 24-hour windows
// the customer opened with the tenant's numbers (written by the API from inbound messages,
// status.WindowKey) and the sender that last messaged them (StickyKey). One call, one round
// trip. Safe for concurrent use.
type Affinity struct {
	rdb redis.UniversalClient
	ttl time.Duration
}

// NewAffinity returns the affinity store on rdb; ttl is how long a sticky sender is kept
// after its last send (<= 0: DefaultStickyTTL).
func NewAffinity(rdb redis.UniversalClient, ttl time.Duration) *Affinity {
	if ttl <= 0 {
		ttl = DefaultStickyTTL
	}
	return &Affinity{rdb: rdb, ttl: ttl}
}

// StickyKey is the key of the sender that last messaged customer to on channel for tenant.
// It is not hash-tagged: no script reads it together with other keys, and one tenant's
// customers spread over a Redis Cluster.
func StickyKey(tenant, channel, to string) string {
	return "herald:sticky:" + tenant + ":" + channel + ":" + to
}

// Look returns, for each of businesses (Cloud API phone number ids; "" for a sender without
// windows), whether its window with to is open, and the sender id that last messaged to on
// channel for tenant ("" when none is kept).
func (a *Affinity) Look(ctx context.Context, tenant, channel, to string, businesses []string) ([]bool, string, error) {
	open := make([]bool, len(businesses))
	wins := make([]*redis.IntCmd, len(businesses))
	var last *redis.StringCmd
	_, err := a.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, b := range businesses {
			if b != "" {
				wins[i] = p.Exists(ctx, status.WindowKey(b, to))
			}
		}
		last = p.Get(ctx, StickyKey(tenant, channel, to))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return open, "", fmt.Errorf("routing: affinity of a customer: %w", err)
	}
	for i, c := range wins {
		open[i] = c != nil && c.Val() > 0
	}
	return open, last.Val(), nil
}

// Stick records sender as the one that last messaged to on channel for tenant, for the
// store's ttl.
func (a *Affinity) Stick(ctx context.Context, tenant, channel, to, sender string) error {
	if err := a.rdb.Set(ctx, StickyKey(tenant, channel, to), sender, a.ttl).Err(); err != nil {
		return fmt.Errorf("routing: keep a customer's sender: %w", err)
	}
	return nil
}
