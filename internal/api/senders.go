package api

import (
	"context"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-notify/herald/internal/fleet"
	"github.com/herald-notify/herald/internal/health"
	"github.com/herald-notify/herald/internal/ratelimit"
)

// SenderHealth is what the API reads and writes of its senders in Redis: their health
// events (recorded from webhooks, judged by health.Judge), the first send of each (day 0 of
// a warm-up the fleet file gives no since) and the rate limiter's counts.
type SenderHealth interface {
	health.Events
	// FirstSeen is when the sender was first seen sending (zero: never).
	FirstSeen(ctx context.Context, sender string) (time.Time, error)
	// Usage reads the limiter's keys of a sender (fleet.Sender.Key), PortfolioUsage those of
	// a portfolio.
	Usage(ctx context.Context, senderKey string) (ratelimit.Usage, error)
	PortfolioUsage(ctx context.Context, portfolio string) (int, error)
}

// RedisHealth is a [SenderHealth] on one Redis: a health.Store, the first sends and the
// limiter's keys (read only).
type RedisHealth struct {
	*health.Store
	rdb     redis.UniversalClient
	limiter *ratelimit.Limiter
}

// NewRedisHealth returns the sender health on rdb (not closed by it).
func NewRedisHealth(rdb redis.UniversalClient) *RedisHealth {
	return &RedisHealth{Store: health.NewStore(rdb), rdb: rdb, limiter: ratelimit.New(rdb)}
}

var _ SenderHealth = (*RedisHealth)(nil)

// FirstSeen implements [SenderHealth].
func (h *RedisHealth) FirstSeen(ctx context.Context, sender string) (time.Time, error) {
	return health.FirstSeen(ctx, h.rdb, sender)
}

// Usage implements [SenderHealth].
func (h *RedisHealth) Usage(ctx context.Context, senderKey string) (ratelimit.Usage, error) {
	return h.limiter.Usage(ctx, senderKey)
}

// PortfolioUsage implements [SenderHealth].
func (h *RedisHealth) PortfolioUsage(ctx context.Context, portfolio string) (int, error) {
	return h.limiter.PortfolioUsage(ctx, portfolio)
}

// SenderView is one sender of GET /v1/senders: its ids (never a secret), caps, health and
// current use.
type SenderView struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// PhoneNumberID and WABAID (white), Instance (grey), Driver (sms) identify it.
	PhoneNumberID string `json:"phone_number_id,omitempty"`
	WABAID        string `json:"waba_id,omitempty"`
	Instance      string `json:"instance,omitempty"`
	Driver        string `json:"driver,omitempty"`
	// MPS is the fleet-wide rate cap (0: not paced).
	MPS float64 `json:"mps"`
	// Portfolio and PortfolioDailyUnique are the Meta portfolio whose messaging limit the
	// number shares; DailyUnique is the number's own limit (0: none).
	Portfolio            string `json:"portfolio,omitempty"`
	PortfolioDailyUnique int    `json:"portfolio_daily_unique,omitempty"`
	DailyUnique          int    `json:"daily_unique,omitempty"`
	// DailyMax is the grey cap per moving 24 h at full warm-up; DailyCap is today's (the
	// warm-up's, see Warmup); 0: no cap.
	DailyMax int         `json:"daily_max,omitempty"`
	DailyCap int         `json:"daily_cap,omitempty"`
	Warmup   *WarmupView `json:"warmup,omitempty"`
	// Usable is false while the sender is out of its pools (health.Judge): its jobs go to
	// the others. Reason says why (or what degrades it), Until when it comes back by itself.
	Usable bool       `json:"usable"`
	Reason string     `json:"reason,omitempty"`
	Until  *time.Time `json:"until,omitempty"`
	// Health sums up what is known: ok, degraded (a tier downgrade, a ban scheduled, a
	// yellow card), down (quality RED, restricted, banned, blocked, not authorized, refused)
	// or unknown (no news yet).
	Health string `json:"health"`
	// Rating is a white number's quality rating (GREEN, RED) as its flags say; "" unknown.
	Rating string `json:"quality_rating,omitempty"`
	// Quality and Account are Meta's latest events for a white number; State the grey
	// instance's latest state and Breaker what it means for the workers' circuit breaker
	// (open: jobs skip the instance; closed); Refused a worker's latest refusal.
	Quality *health.Event `json:"quality,omitempty"`
	Account *health.Event `json:"account,omitempty"`
	State   *health.Event `json:"state,omitempty"`
	Refused *health.Event `json:"refused,omitempty"`
	Breaker string        `json:"breaker,omitempty"`
	// Use is the sender's current use from the rate limiter's keys; nil when not read.
	Use *UseView `json:"use,omitempty"`
}

// UseView is a sender's current use as the rate limiter's keys hold it. A count the keys do
// not keep for this sender is omitted (see ratelimit.Usage): sends are counted for a grey
// number with a daily_max, unique recipients for a white number with a daily_unique or a
// portfolio with one.
type UseView struct {
	// Rate is what the limiter grants now: MPS, times the factor of a throughput penalty
	// (130429) until SlowedUntil.
	Rate        float64    `json:"rate"`
	SlowedUntil *time.Time `json:"slowed_until,omitempty"`
	// BookedAheadMS is how far ahead the next free slot is: while positive the sender sends
	// at Rate.
	BookedAheadMS int64 `json:"booked_ahead_ms"`
	// Sends1s and Sends24h are the sends of the last second (against MPS) and of the moving
	// 24 h (against DailyCap).
	Sends1s  *int `json:"sends_1s,omitempty"`
	Sends24h *int `json:"sends_24h,omitempty"`
	// Unique24h is the distinct business-initiated recipients of the moving 24 h, against
	// DailyUnique; PortfolioUnique24h those of the number's portfolio (all its numbers),
	// against PortfolioDailyUnique.
	Unique24h          *int `json:"unique_24h,omitempty"`
	PortfolioUnique24h *int `json:"portfolio_unique_24h,omitempty"`
}

// WarmupView is a grey sender's warm-up ramp and where it stands.
type WarmupView struct {
	Start int `json:"start"`
	Days  int `json:"days"`
	// Day is today's day of the ramp (0 is the first), counted from Since: the fleet file's
	// since, else the sender's first send (From says which). Before the first send Day is
	// omitted and DailyCap is the first day's.
	Day   *int       `json:"day,omitempty"`
	Since *time.Time `json:"since,omitempty"`
	// From is "fleet" (the file's since) or "first_send".
	From string `json:"from,omitempty"`
}

// listSenders answers GET /v1/senders: the caller's tenant's pool (an operator's ?tenant=),
// in its order of preference.
func (s *Server) listSenders(w http.ResponseWriter, r *http.Request) {
	f := s.cfg.Fleet
	tenant := tenantOf(r)
	var t fleet.Tenant
	ok := false
	if f != nil {
		t, ok = f.Tenants[tenant]
	}
	if !ok {
		writeError(w, http.StatusNotFound, "tenant "+tenant+": not in the fleet (HERALD_CONFIG_FILE or HERALD_API_KEYS)")
		return
	}
	ctx := r.Context()
	var events map[string]map[string]health.Event
	if s.cfg.Health != nil {
		var err error
		if events, err = s.cfg.Health.Latest(ctx, t.Senders); err != nil {
			s.log.Warn("sender health not read", "err", err)
		}
	}
	now := s.cfg.Now()
	views := []SenderView{}
	for _, id := range t.Senders {
		sn, ok := f.SenderByID(id)
		if !ok {
			continue
		}
		v := senderView(f, sn, health.Judge(id, sn.Kind, events[id], now), events[id])
		s.warmup(ctx, &v, sn, now)
		s.use(ctx, &v, sn)
		views = append(views, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"tenant": tenant, "senders": views})
}

// senderView shows a sender with its Status and the events it was judged from.
func senderView(f *fleet.Fleet, sn fleet.Sender, st health.Status, h map[string]health.Event) SenderView {
	v := SenderView{ID: sn.ID, Kind: sn.Kind, MPS: sn.MPS, Usable: st.Usable, Reason: st.Reason,
		Health: st.Health, Rating: st.Quality, Breaker: st.Breaker}
	if !st.Until.IsZero() {
		until := st.Until
		v.Until = &until
	}
	ev := func(kind string) *health.Event {
		if e, ok := h[kind]; ok {
			return &e
		}
		return nil
	}
	v.Refused = ev(health.KindRefused)
	switch sn.Kind {
	case fleet.KindWhite:
		v.PhoneNumberID, v.WABAID, v.Portfolio, v.DailyUnique = sn.PhoneNumberID, sn.WABAID, sn.Portfolio, sn.DailyUnique
		v.PortfolioDailyUnique = f.PortfolioLimit(sn)
		v.Quality, v.Account = ev(health.KindQuality), ev(health.KindAccount)
	case fleet.KindGrey:
		v.Instance, v.DailyMax = sn.InstanceID, sn.DailyMax
		v.DailyCap = sn.DailyCap(0)
		v.State = ev(health.KindGreyState)
	case fleet.KindSMS:
		v.Driver = sn.Driver
	}
	return v
}

// warmup sets a grey sender's ramp: from the fleet file's since, else from its first send.
func (s *Server) warmup(ctx context.Context, v *SenderView, sn fleet.Sender, now time.Time) {
	wu := sn.Warmup
	if sn.Kind != fleet.KindGrey || wu == nil || wu.Days <= 0 || sn.DailyMax <= 0 {
		return
	}
	v.Warmup = &WarmupView{Start: wu.Start, Days: wu.Days}
	since, from := wu.Since, "fleet"
	if since.IsZero() && s.cfg.Health != nil {
		first, err := s.cfg.Health.FirstSeen(ctx, sn.ID)
		if err != nil {
			s.log.Warn("first send not read", "sender", sn.ID, "err", err)
		}
		since, from = first, "first_send"
	}
	if since.IsZero() {
		return
	}
	day := sn.WarmupDay(now, since)
	v.Warmup.Day, v.Warmup.Since, v.Warmup.From = &day, &since, from
	v.DailyCap = sn.DailyCapAt(now, since)
}

// use reads the sender's current use from the limiter's keys.
func (s *Server) use(ctx context.Context, v *SenderView, sn fleet.Sender) {
	if s.cfg.Health == nil || sn.MPS <= 0 {
		return // not paced: the limiter keeps nothing
	}
	u, err := s.cfg.Health.Usage(ctx, sn.Key())
	if err != nil {
		s.log.Warn("sender use not read", "sender", sn.ID, "err", err)
		return
	}
	use := &UseView{Rate: sn.MPS * u.Slow, BookedAheadMS: u.BookedAhead.Milliseconds()}
	if u.SlowFor > 0 {
		end := u.At.Add(u.SlowFor).UTC()
		use.SlowedUntil = &end
	}
	switch {
	case sn.Kind == fleet.KindGrey && sn.DailyMax > 0:
		use.Sends1s, use.Sends24h = &u.Sends1s, &u.Sends24h
	case sn.Kind == fleet.KindWhite && sn.DailyUnique > 0:
		use.Unique24h = &u.Unique24h
	}
	if v.PortfolioDailyUnique > 0 {
		if n, err := s.cfg.Health.PortfolioUsage(ctx, sn.Portfolio); err != nil {
			s.log.Warn("portfolio use not read", "sender", sn.ID, "portfolio", sn.Portfolio, "err", err)
		} else {
			use.PortfolioUnique24h = &n
		}
	}
	v.Use = use
}
