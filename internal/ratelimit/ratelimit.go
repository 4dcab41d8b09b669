// Package ratelimit is Herald's fleet-wide send limiter. Every worker process asks the same
// Redis, in one Lua script round trip, whether a message may go from a sender to a recipient
// and when; the script reads the clock with redis.call("TIME"), so the workers' clocks never
// matter and the whole fleet shares one schedule.
//
// The rules, all checked atomically (a denial consumes nothing):
//
//   - throughput: GCRA without burst. Each sender has a theoretical arrival time (TAT); a send
//     is reserved at max(now, TAT) and the TAT moves on by one emission interval
//     T = 1/(Rate*slow factor), stretched by the jitter factor. Slots are spaced exactly T apart,
//     so any one-second window holds at most ceil(Rate) sends and a backlog drains at exactly
//     Rate. A slot further than the request's Horizon ahead is denied: a short-horizon (bulk)
//     caller never books far ahead, so a long-horizon (transactional) caller always finds a
//     slot at most about the bulk horizon away.
//   - pair: at least PairInterval between two sends from a sender to one recipient.
//   - recipient daily, sender daily, tier: moving 24-hour windows kept in sorted sets.
//   - penalties: [Limiter.SlowSender] lowers a sender's rate for a while (denials show as
//     [ReasonRate]); [Limiter.HoldRecipient] blocks one pair for a while ([ReasonPenalty]).
//
// The package counts nothing: metrics are the caller's job, from the returned [Decision].
package ratelimit

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrInvalidRequest is returned (wrapped) for a [Request] or penalty argument that cannot be
// enforced, such as a non-positive rate or an empty sender.
var ErrInvalidRequest = errors.New("ratelimit: invalid request")

// Window is the length of the moving windows of the daily rules.
const Window = 24 * time.Hour

// keyPrefix namespaces every key of the package.
const keyPrefix = "herald:rl:"

// Reason says which rule denied a request.
type Reason string

// The reasons a [Decision] may carry when it is not allowed.
const (
	// ReasonRate: the sender's throughput (possibly slowed by SlowSender) has no free slot
	// within the request's horizon.
	ReasonRate Reason = "rate"
	// ReasonPair: the previous send to this recipient is less than PairInterval before the slot.
	ReasonPair Reason = "pair"
	// ReasonRecipientDaily: RecipientDailyMax sends to this recipient in the moving 24 hours.
	ReasonRecipientDaily Reason = "recipient_daily"
	// ReasonSenderDaily: SenderDailyMax sends from this sender in the moving 24 hours.
	ReasonSenderDaily Reason = "sender_daily"
	// ReasonTier: UniqueDailyMax distinct business-initiated recipients in the moving 24 hours.
	ReasonTier Reason = "tier"
	// ReasonPenalty: the pair is held by HoldRecipient after a provider pair-rate error.
	ReasonPenalty Reason = "penalty"
)

// Request describes one intended send. A rule whose limit is zero is neither checked nor
// recorded, so a send counts toward a window only when its request carries that window's cap:
// callers that want every send counted pass the cap on every request.
type Request struct {
	// Sender identifies the sending number, e.g. "white:<phone_number_id>" or
	// "grey:<instance>". All keys are namespaced (and hash-tagged for Redis Cluster) by it.
	Sender string
	// Rate is the sender's fleet-wide throughput in messages per second; it must be > 0.
	Rate float64
	// Jitter (0..1) stretches this send's emission interval by a random factor in
	// [1, 1+Jitter]: irregular pacing for grey numbers, never faster than Rate.
	Jitter float64
	// Horizon is how far ahead of now a slot may be reserved (bulk short, e.g. 250ms;
	// transactional long, e.g. 5s). Zero means only a slot that is free right now.
	Horizon time.Duration
	// Recipient is the E.164 number; required when a per-recipient rule is set.
	Recipient string
	// PairInterval is the minimum gap between two sends from Sender to Recipient (0 = none).
	PairInterval time.Duration
	// RecipientDailyMax caps sends from Sender to Recipient per moving 24 hours (0 = none).
	RecipientDailyMax int
	// SenderDailyMax caps sends from Sender per moving 24 hours (grey daily cap; 0 = none).
	SenderDailyMax int
	// UniqueDailyMax is the messaging tier: distinct business-initiated recipients per moving
	// 24 hours (0 = unlimited). Only requests with CountsUnique are checked against it.
	UniqueDailyMax int
	// Portfolio names the Meta business portfolio whose messaging limit the sender shares
	// with its other numbers, PortfolioDailyMax that limit: distinct business-initiated
	// recipients per moving 24 hours over all of them (0 = none). Only requests with
	// CountsUnique are checked against it.
	Portfolio         string
	PortfolioDailyMax int
	// CountsUnique marks a business-initiated send (a template outside the service window);
	// a recipient already counted in the window costs nothing more.
	CountsUnique bool
	// Replaces is an earlier allowed Decision for the same send that will not be used (its
	// slot passed before the send could go): its pair and daily entries are taken back, so
	// the send is not held back by its own unused reservation. Its throughput slot stays
	// spent. nil: none.
	Replaces *Decision
}

// Decision is the limiter's answer to one [Request].
type Decision struct {
	// Allowed reports whether a slot was reserved (and every rule's counters recorded).
	Allowed bool
	// Delay is, when Allowed, how long to wait before sending: the reserved slot minus now.
	Delay time.Duration
	// At is, when Allowed, the reserved slot on Redis's clock (now + Delay).
	At time.Time
	// RetryAfter is, when not Allowed, how long to wait before asking again (at least 1ms).
	RetryAfter time.Duration
	// Reason is, when not Allowed, the rule that denied. When several rules deny, it is the
	// one with the longest RetryAfter, so a caller waiting RetryAfter asks again only once
	// the longest blocker is gone.
	Reason Reason
	// member names the reservation's entries in the daily windows (see Request.Replaces).
	member string
}

// Limiter enforces [Request] rules across every process sharing its Redis. It is safe for
// concurrent use and holds no state of its own beyond the client.
type Limiter struct {
	sc     redis.Scripter // the client, or an autopipeliner on it (see Pipelined)
	window time.Duration  // Window; package tests shorten it
}

// New returns a Limiter on rdb. The client is not closed by the Limiter.
func New(rdb redis.UniversalClient) *Limiter {
	return &Limiter{sc: rdb, window: Window}
}

// Pipelined returns a copy of l whose scripts run through sc, normally go-redis's
// autopipeliner (rdb.AutoPipeline()), so the reservations of many concurrent jobs share
// round trips. The caller closes sc after the last use of the copy.
func (l *Limiter) Pipelined(sc redis.Scripter) *Limiter {
	c := *l
	c.sc = sc
	return &c
}

//go:embed reserve.lua
var reserveLua string

//go:embed slow.lua
var slowLua string

//go:embed hold.lua
var holdLua string

//go:embed portfolio.lua
var portfolioLua string

var (
	reserveScript = redis.NewScript(reserveLua)
	slowScript    = redis.NewScript(slowLua)
	holdScript    = redis.NewScript(holdLua)
	portScript    = redis.NewScript(portfolioLua)
)

// Reserve checks every rule of r against the fleet's shared state and, if all pass, reserves
// the send slot and records it in each window, atomically. A Redis error is returned wrapped
// and must be treated as a denial (fail closed).
func (l *Limiter) Reserve(ctx context.Context, r Request) (Decision, error) {
	if err := r.validate(); err != nil {
		return Decision{}, err
	}
	if r.CountsUnique && r.PortfolioDailyMax > 0 {
		if d, err := l.portfolio(ctx, r); err != nil || !d.Allowed {
			return d, err
		}
	}
	jitter := 1.0
	if r.Jitter > 0 {
		jitter += r.Jitter * rand.Float64()
	}
	counts := "0"
	if r.CountsUnique {
		counts = "1"
	}
	keys := []string{
		tatKey(r.Sender), slowKey(r.Sender), pairKey(r.Sender, r.Recipient), holdKey(r.Sender, r.Recipient),
		recipientDailyKey(r.Sender, r.Recipient), senderDailyKey(r.Sender), tierKey(r.Sender),
	}
	nonce := strconv.FormatUint(rand.Uint64(), 36)
	prevSlot, prevMember := "", ""
	if p := r.Replaces; p != nil && p.Allowed && p.member != "" {
		prevSlot, prevMember = strconv.FormatInt(p.At.UnixMicro(), 10), p.member
	}
	res, err := reserveScript.Run(ctx, l.sc, keys,
		strconv.FormatFloat(r.Rate, 'g', -1, 64),
		strconv.FormatFloat(jitter, 'g', -1, 64),
		r.Horizon.Microseconds(),
		r.PairInterval.Microseconds(),
		r.RecipientDailyMax,
		r.SenderDailyMax,
		r.UniqueDailyMax,
		counts,
		r.Recipient,
		l.window.Microseconds(),
		nonce,
		prevSlot,
		prevMember,
	).Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("ratelimit: reserve for %s: %w", r.Sender, err)
	}
	d, err := parseReserve(res)
	if err == nil && d.Allowed {
		d.member = strconv.FormatInt(d.At.UnixMicro(), 10) + ":" + nonce
	}
	return d, err
}

// portfolio counts r's recipient against its portfolio's limit: an allowed Decision (its
// other fields unset) when the recipient fits, a ReasonTier denial when the portfolio's
// limit is full.
func (l *Limiter) portfolio(ctx context.Context, r Request) (Decision, error) {
	res, err := portScript.Run(ctx, l.sc, []string{portfolioKey(r.Portfolio)},
		r.PortfolioDailyMax, r.Recipient, l.window.Microseconds()).Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("ratelimit: portfolio %s: %w", r.Portfolio, err)
	}
	if len(res) != 2 {
		return Decision{}, fmt.Errorf("ratelimit: unexpected portfolio reply %v", res)
	}
	ok, ok1 := res[0].(int64)
	wait, ok2 := res[1].(int64)
	if !ok1 || !ok2 {
		return Decision{}, fmt.Errorf("ratelimit: unexpected portfolio reply %v", res)
	}
	if ok == 1 {
		return Decision{Allowed: true}, nil
	}
	return Decision{RetryAfter: max(time.Duration(wait)*time.Microsecond, time.Millisecond), Reason: ReasonTier}, nil
}

// parseReserve turns the script's reply {allowed, wait_us, reason, slot_us} into a Decision.
func parseReserve(res []any) (Decision, error) {
	if len(res) != 4 {
		return Decision{}, fmt.Errorf("ratelimit: unexpected script reply %v", res)
	}
	allowed, ok1 := res[0].(int64)
	wait, ok2 := res[1].(int64)
	reason, ok3 := res[2].(string)
	slot, ok4 := res[3].(int64)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return Decision{}, fmt.Errorf("ratelimit: unexpected script reply %v", res)
	}
	d := time.Duration(wait) * time.Microsecond
	if allowed == 1 {
		return Decision{Allowed: true, Delay: d, At: time.UnixMicro(slot)}, nil
	}
	return Decision{RetryAfter: max(d, time.Millisecond), Reason: Reason(reason)}, nil
}

// SlowSender multiplies sender's rate by factor (0 < factor <= 1) for d, fleet-wide: the
// answer to a provider throughput error (WhatsApp 130429). Overlapping penalties keep the
// smaller factor and the later end, so a burst of errors from in-flight sends does not
// compound the slowdown towards zero.
func (l *Limiter) SlowSender(ctx context.Context, sender string, factor float64, d time.Duration) error {
	if sender == "" || !(factor > 0 && factor <= 1) || d <= 0 {
		return fmt.Errorf("%w: SlowSender(%q, %v, %v)", ErrInvalidRequest, sender, factor, d)
	}
	err := slowScript.Run(ctx, l.sc, []string{slowKey(sender)},
		strconv.FormatFloat(factor, 'g', -1, 64), ceilMillis(d)).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("ratelimit: slow sender %s: %w", sender, err)
	}
	return nil
}

// HoldRecipient blocks sends from sender to recipient for d (denials carry [ReasonPenalty]):
// the answer to a provider pair-rate error (WhatsApp 131056). An existing longer hold is kept.
func (l *Limiter) HoldRecipient(ctx context.Context, sender, recipient string, d time.Duration) error {
	if sender == "" || recipient == "" || d <= 0 {
		return fmt.Errorf("%w: HoldRecipient with empty sender or recipient or d %v", ErrInvalidRequest, d)
	}
	err := holdScript.Run(ctx, l.sc, []string{holdKey(sender, recipient)}, d.Microseconds()).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("ratelimit: hold recipient for %s: %w", sender, err)
	}
	return nil
}

func (r Request) validate() error {
	bad := func(what string) error { return fmt.Errorf("%w: %s", ErrInvalidRequest, what) }
	switch {
	case r.Sender == "":
		return bad("empty sender")
	case !(r.Rate > 0) || r.Rate > 1e6:
		return bad("rate must be in (0, 1e6] messages per second")
	case !(r.Jitter >= 0 && r.Jitter <= 1):
		return bad("jitter must be in [0, 1]")
	case r.Horizon < 0 || r.PairInterval < 0:
		return bad("negative horizon or pair interval")
	case r.RecipientDailyMax < 0 || r.SenderDailyMax < 0 || r.UniqueDailyMax < 0 || r.PortfolioDailyMax < 0:
		return bad("negative daily max")
	case r.PortfolioDailyMax > 0 && r.Portfolio == "":
		return bad("a portfolio limit without a portfolio")
	case r.Recipient == "" && (r.PairInterval > 0 || r.RecipientDailyMax > 0 || (r.CountsUnique && (r.UniqueDailyMax > 0 || r.PortfolioDailyMax > 0))):
		return bad("a per-recipient rule without a recipient")
	}
	return nil
}

func ceilMillis(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// Keys: one hash tag per sender, so a sender's keys live in one Redis Cluster slot and the
// script may touch them all.

func senderPrefix(sender string) string { return keyPrefix + "{" + sender + "}:" }

// tatKey holds the sender's theoretical arrival time (µs since the epoch).
func tatKey(sender string) string { return senderPrefix(sender) + "tat" }

// slowKey holds the SlowSender factor, with the penalty's TTL.
func slowKey(sender string) string { return senderPrefix(sender) + "slow" }

// pairKey holds the slot (µs) of the last send reserved for the pair.
func pairKey(sender, recipient string) string { return senderPrefix(sender) + "pair:" + recipient }

// holdKey holds the end (µs) of a HoldRecipient penalty.
func holdKey(sender, recipient string) string { return senderPrefix(sender) + "hold:" + recipient }

// recipientDailyKey is a sorted set of the pair's send slots (score µs).
func recipientDailyKey(sender, recipient string) string {
	return senderPrefix(sender) + "rday:" + recipient
}

// senderDailyKey is a sorted set of the sender's send slots (score µs).
func senderDailyKey(sender string) string { return senderPrefix(sender) + "sday" }

// portfolioKey is a sorted set of a portfolio's business-initiated recipients scored by
// their last count (its own slot: no script reads it with a sender's keys).
func portfolioKey(portfolio string) string { return keyPrefix + "{portfolio:" + portfolio + "}:unique" }

// tierKey is a sorted set of business-initiated recipients scored by their last send slot.
func tierKey(sender string) string { return senderPrefix(sender) + "tier" }
