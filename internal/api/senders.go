package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-notify/herald/internal/fleet"
	"github.com/herald-notify/herald/internal/grey"
	"github.com/herald-notify/herald/internal/webhook"
)

// Health kinds a [SenderHealth] keeps per sender: the latest event of each.
const (
	// HealthQuality is Meta's phone_number_quality_update (quality rating, messaging tier).
	HealthQuality = webhook.FieldPhoneNumberQuality
	// HealthAccount is Meta's account_update (restriction, ban, violation).
	HealthAccount = webhook.FieldAccountUpdate
	// HealthGreyState is a grey instance's stateInstance, as its webhooks report it.
	HealthGreyState = "grey_state"
)

// HealthEvent is the latest news of one kind about a sender.
type HealthEvent struct {
	// Event is Meta's event (FLAGGED, ACCOUNT_RESTRICTION, ...) or the grey state
	// (authorized, blocked, ...).
	Event string `json:"event"`
	// Limit is the messaging tier a quality update names (TIER_1K, ...).
	Limit string `json:"limit,omitempty"`
	// Detail words the rest (restrictions and their expiry, the old tier, the ban state).
	Detail string `json:"detail,omitempty"`
	// At is when the provider says it happened.
	At time.Time `json:"at"`
}

// SenderHealth keeps the latest health event of each kind per sender, shared by every API
// process, for GET /v1/senders.
type SenderHealth interface {
	// Record keeps ev as the sender's latest of kind, unless a later one is kept already
	// (webhooks arrive in any order).
	Record(ctx context.Context, sender, kind string, ev HealthEvent) error
	// Latest returns each sender's latest events by kind.
	Latest(ctx context.Context, senders []string) (map[string]map[string]HealthEvent, error)
}

// RedisHealth is a [SenderHealth] in Redis: a hash per sender,
// herald:sender:{<id>}:health, holding each kind's event (JSON) and its time.
type RedisHealth struct{ rdb redis.UniversalClient }

// NewRedisHealth returns the health store on rdb (not closed by it).
func NewRedisHealth(rdb redis.UniversalClient) *RedisHealth { return &RedisHealth{rdb: rdb} }

var _ SenderHealth = (*RedisHealth)(nil)

func healthKey(sender string) string { return "herald:sender:{" + sender + "}:health" }

// recordHealth keeps the newer of the stored and the given event, atomically.
var recordHealth = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1] .. ':at')
if cur and tonumber(cur) > tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], ARGV[1] .. ':at', ARGV[3])
return 1`)

// Record implements [SenderHealth].
func (h *RedisHealth) Record(ctx context.Context, sender, kind string, ev HealthEvent) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if err := recordHealth.Run(ctx, h.rdb, []string{healthKey(sender)}, kind, data, ev.At.UnixMilli()).Err(); err != nil {
		return fmt.Errorf("sender health: %w", err)
	}
	return nil
}

// Latest implements [SenderHealth].
func (h *RedisHealth) Latest(ctx context.Context, senders []string) (map[string]map[string]HealthEvent, error) {
	cmds := make([]*redis.MapStringStringCmd, len(senders))
	_, err := h.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, s := range senders {
			cmds[i] = p.HGetAll(ctx, healthKey(s))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sender health: %w", err)
	}
	out := map[string]map[string]HealthEvent{}
	for i, s := range senders {
		for _, kind := range []string{HealthQuality, HealthAccount, HealthGreyState} {
			raw, ok := cmds[i].Val()[kind]
			var ev HealthEvent
			if !ok || json.Unmarshal([]byte(raw), &ev) != nil {
				continue
			}
			if out[s] == nil {
				out[s] = map[string]HealthEvent{}
			}
			out[s][kind] = ev
		}
	}
	return out, nil
}

// SenderView is one sender of GET /v1/senders: its ids (never a secret), caps and what the
// API knows of its health.
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
	// Health sums up what is known: ok, degraded (a quality warning, a yellow card), down
	// (restricted, banned, blocked or not authorized) or unknown (no news yet).
	Health string `json:"health"`
	// Quality and Account are Meta's latest events for a white number; State the grey
	// instance's latest state and Breaker what it means for the workers' circuit breaker
	// (open: jobs skip the instance; closed).
	Quality *HealthEvent `json:"quality,omitempty"`
	Account *HealthEvent `json:"account,omitempty"`
	State   *HealthEvent `json:"state,omitempty"`
	Breaker string       `json:"breaker,omitempty"`
}

// WarmupView is a grey sender's warm-up ramp and where it stands.
type WarmupView struct {
	Start int `json:"start"`
	Days  int `json:"days"`
	// Day is today's day of the ramp (0 is the first), counted from Since; without a since
	// in the fleet file the API does not know when the sender first sent, so Day is omitted
	// and DailyCap is the first day's.
	Day   *int       `json:"day,omitempty"`
	Since *time.Time `json:"since,omitempty"`
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
	var health map[string]map[string]HealthEvent
	if s.cfg.Health != nil {
		var err error
		if health, err = s.cfg.Health.Latest(r.Context(), t.Senders); err != nil {
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
		views = append(views, senderView(f, sn, health[id], now))
	}
	writeJSON(w, http.StatusOK, map[string]any{"tenant": tenant, "senders": views})
}

func senderView(f *fleet.Fleet, sn fleet.Sender, h map[string]HealthEvent, now time.Time) SenderView {
	v := SenderView{ID: sn.ID, Kind: sn.Kind, MPS: sn.MPS, Health: "unknown"}
	ev := func(kind string) *HealthEvent {
		if e, ok := h[kind]; ok {
			return &e
		}
		return nil
	}
	switch sn.Kind {
	case fleet.KindWhite:
		v.PhoneNumberID, v.WABAID, v.Portfolio, v.DailyUnique = sn.PhoneNumberID, sn.WABAID, sn.Portfolio, sn.DailyUnique
		v.PortfolioDailyUnique = f.PortfolioLimit(sn)
		v.Quality, v.Account = ev(HealthQuality), ev(HealthAccount)
		v.Health = whiteHealth(v.Quality, v.Account)
	case fleet.KindGrey:
		v.Instance, v.DailyMax = sn.InstanceID, sn.DailyMax
		v.DailyCap = sn.DailyCap(0)
		if wu := sn.Warmup; wu != nil && wu.Days > 0 && sn.DailyMax > 0 {
			v.Warmup = &WarmupView{Start: wu.Start, Days: wu.Days}
			if !wu.Since.IsZero() {
				day := sn.WarmupDay(now, wu.Since)
				since := wu.Since
				v.Warmup.Day, v.Warmup.Since = &day, &since
				v.DailyCap = sn.DailyCapAt(now, wu.Since)
			}
		}
		if v.State = ev(HealthGreyState); v.State != nil {
			v.Health, v.Breaker = greyHealth(v.State.Event)
		}
	case fleet.KindSMS:
		v.Driver = sn.Driver
	}
	return v
}

// whiteHealth sums up a number's latest quality and account events.
func whiteHealth(q, a *HealthEvent) string {
	if a != nil {
		switch a.Event {
		case "ACCOUNT_RESTRICTION", "ACCOUNT_VIOLATION", "DISABLED_UPDATE", "ACCOUNT_DELETED":
			return "down"
		}
	}
	if q != nil {
		switch q.Event {
		case "FLAGGED", "DOWNGRADE":
			return "degraded"
		}
	}
	if q != nil || a != nil {
		return "ok"
	}
	return "unknown"
}

// greyHealth reads a grey state as the workers' breakers do: a state in which the instance
// cannot deliver opens it.
func greyHealth(state string) (health, breaker string) {
	switch state {
	case grey.StateNotAuthorized, grey.StateBlocked, grey.StateSleepMode:
		return "down", "open"
	case grey.StateYellowCard:
		return "degraded", "open"
	case grey.StateAuthorized:
		return "ok", "closed"
	}
	return "unknown", ""
}
