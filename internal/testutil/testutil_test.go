package testutil

import (
	"context"
	"testing"
	"time"
)

func TestServersStart(t *testing.T) {
	t.Parallel()
	n := StartNATS(t)
	_, js := n.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		t.Fatalf("jetstream not enabled: %v", err)
	}
	r := StartRedis(t)
	c := r.Client(t)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("redis set: %v", err)
	}
	r.Restart(t)
	Eventually(t, 5*time.Second, func() bool { return c.Ping(ctx).Err() == nil }, "redis back after restart")
	if n, _ := c.Exists(ctx, "k").Result(); n != 0 {
		t.Fatalf("restarted redis kept data; want empty")
	}
}
