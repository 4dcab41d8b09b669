package ratelimit

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-notify/herald/internal/testutil"
)

// TestUsage: Usage reads the counts the rules keep, on Redis's clock, and writes nothing.
func TestUsage(t *testing.T) {
	t.Parallel()
	rdb := testutil.StartRedis(t).Client(t)
	ctx := context.Background()
	l := New(rdb)
	zadd := func(t *testing.T, key string, at map[string]time.Duration) {
		t.Helper()
		now, err := rdb.Time(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		for m, off := range at {
			if err := rdb.ZAdd(ctx, key, redis.Z{Score: float64(now.Add(off).UnixMicro()), Member: m}).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name    string
		sender  string
		prepare func(t *testing.T, sender string)
		check   func(t *testing.T, u Usage)
	}{
		{"never used", "white:idle", nil, func(t *testing.T, u Usage) {
			if u.Sends1s != 0 || u.Sends24h != 0 || u.Unique24h != 0 || u.BookedAhead != 0 || u.Slow != 1 || u.SlowFor != 0 {
				t.Errorf("usage %+v, want none", u)
			}
		}},
		{"sender window: last second and moving day, nothing booked ahead counted", "grey:window", func(t *testing.T, s string) {
			zadd(t, senderDailyKey(s), map[string]time.Duration{
				"a": -10 * time.Millisecond, "b": -500 * time.Millisecond, "c": -2 * time.Second,
				"d": -time.Hour, "e": -25 * time.Hour, "f": time.Minute,
			})
		}, func(t *testing.T, u Usage) {
			if u.Sends1s != 2 || u.Sends24h != 4 {
				t.Errorf("sends 1s %d 24h %d, want 2 and 4", u.Sends1s, u.Sends24h)
			}
		}},
		{"tier window", "white:tier", func(t *testing.T, s string) {
			zadd(t, tierKey(s), map[string]time.Duration{"+79000000001": -time.Hour, "+79000000002": -23 * time.Hour, "+79000000003": -25 * time.Hour})
		}, func(t *testing.T, u Usage) {
			if u.Unique24h != 2 || u.Sends24h != 0 {
				t.Errorf("unique %d sends %d, want 2 and 0", u.Unique24h, u.Sends24h)
			}
		}},
		{"slowed", "white:slow", func(t *testing.T, s string) {
			if err := l.SlowSender(ctx, s, 0.5, 10*time.Second); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, u Usage) {
			if u.Slow != 0.5 || u.SlowFor <= 9*time.Second || u.SlowFor > 10*time.Second {
				t.Errorf("slow %v for %v, want 0.5 for about 10s", u.Slow, u.SlowFor)
			}
		}},
		{"booked ahead", "white:busy", func(t *testing.T, s string) {
			for range 3 { // 1/s: slots at now, +1s, +2s; the next free one is +3s
				if d := mustReserve(t, l, Request{Sender: s, Rate: 1, Horizon: 5 * time.Second}); !d.Allowed {
					t.Fatalf("denied %+v", d)
				}
			}
		}, func(t *testing.T, u Usage) {
			within(t, "booked ahead", u.BookedAhead, 3*time.Second, time.Second)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.prepare != nil {
				tt.prepare(t, tt.sender)
			}
			before := snapshot(t, rdb, tt.sender)
			u, err := l.Usage(ctx, tt.sender)
			if err != nil {
				t.Fatal(err)
			}
			if u.Sender != tt.sender || u.At.IsZero() {
				t.Errorf("usage names %q at %v", u.Sender, u.At)
			}
			tt.check(t, u)
			after := snapshot(t, rdb, tt.sender)
			for k, v := range before {
				if after[k] != v && k != tatKey(tt.sender) {
					t.Errorf("Usage changed %s: %s -> %s", k, v, after[k])
				}
			}
		})
	}
}

// TestUsageOfReservations: the sends Reserve records with a daily cap are those Usage counts.
func TestUsageOfReservations(t *testing.T) {
	t.Parallel()
	rdb := testutil.StartRedis(t).Client(t)
	l := New(rdb)
	ctx := context.Background()
	req := Request{Sender: "grey:count", Rate: 1000, Horizon: time.Second, SenderDailyMax: 100}
	for range 3 {
		if d := mustReserve(t, l, req); !d.Allowed {
			t.Fatalf("denied %+v", d)
		}
	}
	// Slots are 1ms apart: the last may lie a moment ahead of the first read.
	var u Usage
	testutil.Eventually(t, time.Second, func() bool {
		var err error
		u, err = l.Usage(ctx, req.Sender)
		return err == nil && u.Sends24h == 3
	}, "3 sends counted")
	if u.Sends1s != 3 {
		t.Errorf("sends in the last second %d, want 3", u.Sends1s)
	}
	if _, err := l.Usage(ctx, ""); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("empty sender: %v, want ErrInvalidRequest", err)
	}
}

// TestPortfolioUsage: the recipients a portfolio's limit counted are those PortfolioUsage
// reads, however many numbers sent to them.
func TestPortfolioUsage(t *testing.T) {
	t.Parallel()
	rdb := testutil.StartRedis(t).Client(t)
	l := New(rdb)
	ctx := context.Background()
	tests := []struct {
		name, portfolio string
		sends           [][2]string // sender, recipient
		want            int
	}{
		{"none", "p-none", nil, 0},
		{"two numbers, one recipient twice", "p-two", [][2]string{
			{"white:1", "+79000000001"}, {"white:2", "+79000000001"}, {"white:2", "+79000000002"}}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, s := range tt.sends {
				mustReserve(t, l, Request{Sender: s[0] + tt.portfolio, Rate: 100, Horizon: time.Second, Recipient: s[1],
					CountsUnique: true, Portfolio: tt.portfolio, PortfolioDailyMax: 10})
			}
			n, err := l.PortfolioUsage(ctx, tt.portfolio)
			if err != nil || n != tt.want {
				t.Errorf("PortfolioUsage = %d, %v; want %d", n, err, tt.want)
			}
		})
	}
	if _, err := l.PortfolioUsage(ctx, ""); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("empty portfolio: %v", err)
	}
}
