package ratelimit

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Usage is what a sender's limiter keys say of its current use, read on Redis's clock.
//
// The keys record only what the rules need, so some counts exist only for some senders:
// Sends1s and Sends24h come from the sender daily window, written only by requests that
// carry SenderDailyMax (a grey number with a daily cap); Unique24h from the tier window,
// written only by business-initiated requests that carry UniqueDailyMax (a white number
// with a tier). For any other sender they read 0, which then means "not counted": the
// throughput rule keeps no count of sends, only the next free slot (BookedAhead).
type Usage struct {
	// Sender is the limiter key read ("white:<phone_number_id>", ...).
	Sender string `json:"sender"`
	// At is Redis's clock when the keys were read.
	At time.Time `json:"at"`
	// Sends1s and Sends24h are the sends reserved in the last second and the moving 24 h.
	Sends1s  int `json:"sends_1s"`
	Sends24h int `json:"sends_24h"`
	// Unique24h is the distinct business-initiated recipients in the moving 24 h.
	Unique24h int `json:"unique_24h"`
	// BookedAhead is how far ahead of now the sender's next free slot is: while it is
	// positive the sender is sending at its full (possibly slowed) rate.
	BookedAhead time.Duration `json:"booked_ahead"`
	// Slow is the factor a SlowSender penalty puts on the rate now (1: none), for SlowFor.
	Slow    float64       `json:"slow"`
	SlowFor time.Duration `json:"slow_for,omitempty"`
}

// usageScript reads a sender's keys without writing. KEYS: tat, slow, sender daily, tier;
// ARGV: window µs. Reply: {now µs, tat µs, slow factor, slow pttl ms, sends 1 s, sends
// window, unique window}.
var usageScript = redis.NewScript(`
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function fmt(x) return string.format("%.0f", x) end
local from = "(" .. fmt(now - tonumber(ARGV[1]))
local tat = redis.call("GET", KEYS[1]) or "0"
local slow = redis.call("GET", KEYS[2]) or "1"
local pttl = redis.call("PTTL", KEYS[2])
local s1 = redis.call("ZCOUNT", KEYS[3], "(" .. fmt(now - 1000000), fmt(now))
local sw = redis.call("ZCOUNT", KEYS[3], from, fmt(now))
local uw = redis.call("ZCOUNT", KEYS[4], from, "+inf")
return {fmt(now), tat, slow, pttl, s1, sw, uw}`)

// Usage reads what the sender's keys say of its use now, changing nothing. A sender
// without keys (never sent, or idle for a day) reads as unused.
func (l *Limiter) Usage(ctx context.Context, sender string) (Usage, error) {
	if sender == "" {
		return Usage{}, fmt.Errorf("%w: Usage: empty sender", ErrInvalidRequest)
	}
	keys := []string{tatKey(sender), slowKey(sender), senderDailyKey(sender), tierKey(sender)}
	res, err := usageScript.Run(ctx, l.sc, keys, l.window.Microseconds()).Slice()
	if err != nil {
		return Usage{}, fmt.Errorf("ratelimit: usage of %s: %w", sender, err)
	}
	return parseUsage(sender, res)
}

// parseUsage turns the script's reply into a Usage.
func parseUsage(sender string, res []any) (Usage, error) {
	bad := func() (Usage, error) { return Usage{}, fmt.Errorf("ratelimit: unexpected usage reply %v", res) }
	if len(res) != 7 {
		return bad()
	}
	num := func(v any) (float64, bool) {
		switch x := v.(type) {
		case int64:
			return float64(x), true
		case string:
			f, err := strconv.ParseFloat(x, 64)
			return f, err == nil
		}
		return 0, false
	}
	var n [7]float64
	for i, v := range res {
		f, ok := num(v)
		if !ok {
			return bad()
		}
		n[i] = f
	}
	now := int64(n[0])
	u := Usage{
		Sender: sender, At: time.UnixMicro(now),
		Sends1s: int(n[4]), Sends24h: int(n[5]), Unique24h: int(n[6]),
		BookedAhead: max(time.Duration(int64(n[1])-now)*time.Microsecond, 0),
		Slow:        n[2],
	}
	if u.Slow < 1 && n[3] > 0 {
		u.SlowFor = time.Duration(n[3]) * time.Millisecond
	}
	return u, nil
}

// portfolioUsageScript counts a portfolio's recipients of the moving window. KEYS: the
// portfolio's set; ARGV: window µs.
var portfolioUsageScript = redis.NewScript(`
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
return redis.call("ZCOUNT", KEYS[1], "(" .. string.format("%.0f", now - tonumber(ARGV[1])), "+inf")`)

// PortfolioUsage returns the distinct business-initiated recipients counted against a
// portfolio's messaging limit in the moving window (requests with PortfolioDailyMax),
// changing nothing.
func (l *Limiter) PortfolioUsage(ctx context.Context, portfolio string) (int, error) {
	if portfolio == "" {
		return 0, fmt.Errorf("%w: PortfolioUsage: empty portfolio", ErrInvalidRequest)
	}
	n, err := portfolioUsageScript.Run(ctx, l.sc, []string{portfolioKey(portfolio)}, l.window.Microseconds()).Int()
	if err != nil {
		return 0, fmt.Errorf("ratelimit: usage of portfolio %s: %w", portfolio, err)
	}
	return n, nil
}
