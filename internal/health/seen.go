package health

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// firstSeenKey holds the Unix milliseconds of the first send seen from a sender: day 0 of a
// warm-up whose fleet file gives no since.
func firstSeenKey(sender string) string { return senderPrefix(sender) + "first_seen" }

// seen remembers the senders this process has written the first send of, per client, so
// that SeeSending costs a round trip once per sender and process.
var seen sync.Map // seenKey → struct{}

type seenKey struct {
	rdb    redis.Cmdable
	sender string
}

// SeeSending records now as the sender's first send, unless one is recorded already (SETNX:
// the earliest of every worker's wins). Call it when a send goes out: after the first call
// for a sender this process returns at once.
func SeeSending(ctx context.Context, rdb redis.Cmdable, id string) error {
	if err := ValidID(id); err != nil {
		return err
	}
	k := seenKey{rdb, id}
	if _, ok := seen.Load(k); ok {
		return nil
	}
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	if err := rdb.SetNX(ctx, firstSeenKey(id), now, 0).Err(); err != nil {
		return fmt.Errorf("first send of %s: %w", id, err)
	}
	seen.Store(k, struct{}{})
	return nil
}

// FirstSeen returns when the sender was first seen sending; zero (and no error) if never.
func FirstSeen(ctx context.Context, rdb redis.Cmdable, id string) (time.Time, error) {
	if err := ValidID(id); err != nil {
		return time.Time{}, err
	}
	raw, err := rdb.Get(ctx, firstSeenKey(id)).Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("first send of %s: %w", id, err)
	}
	ms, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("first send of %s: %q is not Unix milliseconds: %w", id, raw, err)
	}
	return time.UnixMilli(ms).UTC(), nil
}
