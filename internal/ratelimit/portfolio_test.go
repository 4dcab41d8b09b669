package ratelimit

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/testutil"
)

// TestReservePortfolio: the numbers of one portfolio share its limit of distinct
// business-initiated recipients; a counted recipient costs nothing more, on any number; a
// send that is not business-initiated is never checked; another portfolio is not touched.
func TestReservePortfolio(t *testing.T) {
	t.Parallel()
	rdb := testutil.StartRedis(t).Client(t)
	ctx := context.Background()
	l := New(rdb)
	req := func(sender, to string, counts bool) Request {
		return Request{Sender: sender, Rate: 1000, Horizon: time.Second, Recipient: to,
			Portfolio: "shop", PortfolioDailyMax: 3, CountsUnique: counts}
	}
	steps := []struct {
		sender, to string
		counts     bool
		allowed    bool
	}{
		{"white:1", "+1", true, true},
		{"white:2", "+2", true, true},
		{"white:2", "+1", true, true}, // counted already, through the other number
		{"white:1", "+3", true, true},
		{"white:2", "+4", true, false}, // the portfolio's fourth recipient
		{"white:1", "+4", true, false}, // on either number
		{"white:1", "+4", false, true}, // inside the window: not business-initiated
		{"white:2", "+3", true, true},
	}
	for i, s := range steps {
		d, err := l.Reserve(ctx, req(s.sender, s.to, s.counts))
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if d.Allowed != s.allowed || (!d.Allowed && (d.Reason != ReasonTier || d.RetryAfter < 23*time.Hour)) {
			t.Fatalf("step %d (%s → %s): %+v, want allowed=%v (tier, about 24h)", i, s.sender, s.to, d, s.allowed)
		}
	}
	if n := rdb.ZCard(ctx, portfolioKey("shop")).Val(); n != 3 {
		t.Fatalf("portfolio counts %d recipients, want 3", n)
	}
	other := req("white:3", "+9", true)
	other.Portfolio = "bank"
	if d, err := l.Reserve(ctx, other); err != nil || !d.Allowed {
		t.Fatalf("another portfolio: %+v %v, want allowed", d, err)
	}
	bad := req("white:1", "+5", true)
	bad.Portfolio = ""
	if _, err := l.Reserve(ctx, bad); err == nil {
		t.Fatal("a portfolio limit without a portfolio was accepted")
	}
}

// TestReservePortfolioConcurrent: many workers racing over two numbers never count more
// distinct recipients than the limit.
func TestReservePortfolioConcurrent(t *testing.T) {
	t.Parallel()
	rdb := testutil.StartRedis(t).Client(t)
	ctx := context.Background()
	l := New(rdb)
	const limit = 25
	allowed := make(chan string, 200)
	done := make(chan struct{})
	for w := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 20 {
				to := fmt.Sprintf("+7999%04d", (w*20+i)%60)
				d, err := l.Reserve(ctx, Request{Sender: fmt.Sprintf("white:%d", w%2), Rate: 100000, Horizon: time.Second,
					Recipient: to, Portfolio: "p", PortfolioDailyMax: limit, CountsUnique: true})
				if err == nil && d.Allowed {
					allowed <- to
				}
			}
		}()
	}
	for range 8 {
		<-done
	}
	close(allowed)
	distinct := map[string]bool{}
	for to := range allowed {
		distinct[to] = true
	}
	if len(distinct) != limit {
		t.Fatalf("%d distinct recipients allowed, want exactly %d", len(distinct), limit)
	}
}
