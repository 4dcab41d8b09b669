package worker

import (
	"context"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/herald-notify/herald/internal/grey"
	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/provider"
	"github.com/herald-notify/herald/internal/routing"
)

// Route is one sender of the fleet as the worker uses it: a white number, a grey instance or
// an SMS account, with its adapter and its limits.
type Route struct {
	// ID is the sender's fleet id ("shop-msk"): jobs pin it ("sender"), metrics and events
	// are labelled by it.
	ID string
	// Channel is the sender's kind: white, grey or sms.
	Channel string
	// Sender renders and sends through it.
	Sender Sender
	// Limit paces it fleet-wide: Limit.Sender is its key in the shared limits (see
	// fleet.Sender.Key), Rate 0 leaves it unpaced.
	Limit ChannelLimit
	// WABA is a white number's WhatsApp Business Account: a template job goes through the
	// number only when the template is approved in it.
	WABA string
	// PhoneNumberID is a white number's Cloud API id: its 24-hour windows with customers are
	// its own.
	PhoneNumberID string
	// DailyCap, when set, is the sender's cap of messages per moving 24 h at now, in place of
	// Limit.SenderDailyMax: a grey number's warm-up ramp.
	DailyCap func(now time.Time) int
}

// SenderHealth tells whether a sender may be used now, fleet-wide (internal/health's
// Watcher: quality, account restrictions, grey states, and refusals marked by any worker).
type SenderHealth interface {
	// Usable reports whether the sender may take jobs, and why not.
	Usable(id string) (bool, string)
	// Mark takes the sender out of every worker's pools for d after its provider refused it
	// as a whole (code, reason).
	Mark(ctx context.Context, id, code, reason string, d time.Duration) error
}

// Affinity keeps what ties a customer to a number (internal/routing.Affinity in Redis).
type Affinity interface {
	// Look returns whether each business number's window with to is open, and the sender
	// that last messaged to on channel for tenant ("" none).
	Look(ctx context.Context, tenant, channel, to string, businesses []string) ([]bool, string, error)
	// Stick records the sender that just messaged to on channel for tenant.
	Stick(ctx context.Context, tenant, channel, to, sender string) error
}

var (
	_ Affinity = (*routing.Affinity)(nil)
)

// route is a Route with this worker's pacer for it and what it last learnt of its slots.
type route struct {
	Route
	pacer *pacer
	// free is when the sender's next slot is free, as the last reservation said (Unix ns).
	free atomic.Int64
}

// pools are the routes of every tenant, by channel, in order of preference.
type pools struct {
	byID map[string]*route
	// tenants maps a tenant to its pools; shared (nil tenants) gives every tenant the same
	// ones: the single-number configuration (HERALD_* alone, or New's senders map).
	tenants map[string]map[string][]*route
	shared  map[string][]*route
}

// newPools builds the routes. Without cfg.Routes there is one route per channel of senders,
// named "default-<channel>" and paced by cfg.Limits, shared by every tenant.
func newPools(senders map[string]Sender, cfg *Config, p *pacers) *pools {
	ps := &pools{byID: map[string]*route{}}
	add := func(r Route) *route {
		if r.Limit.Sender == "" {
			r.Limit.Sender = r.Channel + ":" + r.ID
		}
		rt := &route{Route: r}
		if r.Limit.Rate > 0 {
			rt.pacer = p.get(r.Limit)
		}
		ps.byID[r.ID] = rt
		return rt
	}
	if len(cfg.Routes) == 0 {
		ps.shared = map[string][]*route{}
		chs := make([]string, 0, len(senders))
		for ch := range senders {
			chs = append(chs, ch)
		}
		sort.Strings(chs)
		for _, ch := range chs {
			if senders[ch] == nil {
				continue
			}
			l := cfg.Limits[ch]
			ps.shared[ch] = []*route{add(Route{ID: "default-" + ch, Channel: ch, Sender: senders[ch], Limit: l})}
		}
		return ps
	}
	for _, r := range cfg.Routes {
		add(r)
	}
	ps.tenants = map[string]map[string][]*route{}
	for tenant, ids := range cfg.Pools {
		byCh := map[string][]*route{}
		for _, id := range ids {
			if rt, ok := ps.byID[id]; ok {
				byCh[rt.Channel] = append(byCh[rt.Channel], rt)
			}
		}
		ps.tenants[tenant] = byCh
	}
	return ps
}

// pool returns the tenant's routes of channel ch.
func (ps *pools) pool(tenant, ch string) []*route {
	if ps.tenants == nil {
		return ps.shared[ch]
	}
	return ps.tenants[tenant][ch]
}

// choice is the route picked for one channel of a delivery.
type choice struct {
	r *route
	// err is why no route could be picked (a *provider.Error: the channel falls back).
	err error
	// window: the customer's 24-hour window with the picked number is open; windowKnown
	// says whether the pick read it (else the claim's answer holds).
	window, windowKnown bool
	// sticky is the sender that last messaged the customer, as read ("" none or not read).
	sticky string
}

// routeFor returns the route of channel idx for d, picking it on first use (see pick).
func (w *Worker) routeFor(ctx context.Context, d *delivery, idx int) *choice {
	if d.routes == nil {
		d.routes = make([]*choice, len(d.cascade))
	}
	if c := d.routes[idx]; c != nil {
		return c
	}
	c := w.pick(ctx, d, d.cascade[idx])
	d.routes[idx] = c
	return c
}

// forget drops the route of channel idx, so that the next routeFor picks again (the sender
// left the pool while the job waited, or refused as a whole).
func (d *delivery) forget(idx int) {
	if d.routes != nil {
		d.routes[idx] = nil
	}
}

// pick chooses the sender of channel ch for d's job from its tenant's pool, in the package
// routing's order: a pinned sender; a number whose window with the customer is open; the
// sender that last messaged the customer; a sender with spare capacity. Only usable senders
// are candidates (healthy, not stopped by an account error, grey breaker not open, and for a
// white template job a number whose WABA has the template approved).
func (w *Worker) pick(ctx context.Context, d *delivery, ch string) *choice {
	j := d.job
	tenant := job.TenantOr(j.Tenant)
	pool := w.pools.pool(tenant, ch)
	if j.Sender != "" {
		pinned, ok := w.pools.byID[j.Sender]
		if !ok || !w.inPool(tenant, pinned) {
			return &choice{err: &provider.Error{Kind: provider.Job, Code: "unknown_sender",
				Reason: "sender " + j.Sender + " is not a sender of tenant " + tenant}}
		}
		if pinned.Channel == ch {
			pool = []*route{pinned}
		}
	}
	if len(pool) == 0 {
		return &choice{err: &provider.Error{Kind: provider.Channel, Code: "not_configured",
			Reason: ch + " channel is not configured for tenant " + tenant}}
	}
	cands := make([]*route, 0, len(pool))
	var why []string
	code := ""
	for _, r := range pool {
		ok, c, reason := w.usable(r, j)
		if ok {
			cands = append(cands, r)
			continue
		}
		why = append(why, r.ID+": "+reason)
		if code == "" || code == c {
			code = c
		} else {
			code = "no_sender"
		}
	}
	if len(cands) == 0 {
		return &choice{err: &provider.Error{Kind: provider.Channel, Code: code,
			Reason: "no usable " + ch + " sender in the pool (" + strings.Join(why, "; ") + ")"}}
	}
	// The customer's windows and sticky sender: read when they can change the pick, and for
	// a white number when the claim could not have read its window (a pool's numbers each
	// have their own).
	c := &choice{}
	if w.cfg.Affinity != nil && (len(cands) > 1 || (ch == job.ChannelWhite && w.pools.tenants != nil)) {
		biz := make([]string, len(cands))
		for i, r := range cands {
			biz[i] = r.PhoneNumberID
		}
		open, last, err := w.cfg.Affinity.Look(ctx, tenant, ch, j.To, biz)
		if err == nil {
			c.sticky, c.windowKnown = last, ch == job.ChannelWhite
			for i, r := range cands {
				if open[i] {
					c.r, c.window = r, true
					return c
				}
			}
			for _, r := range cands {
				if r.ID == last {
					c.r = r
					return c
				}
			}
		} else {
			d.log.Debug("customer affinity not read: routing by capacity", "err", err)
		}
	}
	if len(cands) == 1 {
		c.r = cands[0]
		return c
	}
	rc := make([]routing.Candidate, len(cands))
	for i, r := range cands {
		rc[i] = routing.Candidate{ID: r.ID, Weight: r.Limit.Rate, Free: time.Unix(0, r.free.Load())}
	}
	horizon := bulkHorizon
	if j.Priority != job.PriorityBulk {
		horizon = transHorizon / 10
	}
	c.r = cands[routing.Choose(rc, j.To, time.Now().Add(horizon))]
	return c
}

// inPool tells whether r is one of tenant's senders.
func (w *Worker) inPool(tenant string, r *route) bool {
	for _, p := range w.pools.pool(tenant, r.Channel) {
		if p == r {
			return true
		}
	}
	return false
}

// usable tells whether r may take j now; when not, the code of the reason (the one a job
// records when no sender of the pool is left) and the reason.
func (w *Worker) usable(r *route, j *job.Job) (ok bool, code, why string) {
	if until, ok := w.senderDown.Load(r.Limit.Sender); ok && time.Now().Before(until.(time.Time)) {
		return false, "sender_stopped", "stopped after an account error; retried from " + until.(time.Time).UTC().Format(time.RFC3339)
	}
	// The grey breaker first: the API tells it and Health of the same state webhook, and the
	// breaker's code is the one operators know from a single instance.
	if b, ok := r.Sender.(interface{ Breaker() grey.BreakerState }); ok && b.Breaker() == grey.BreakerOpen {
		return false, "breaker_open", "circuit breaker open"
	}
	if h := w.cfg.Health; h != nil {
		if ok, why := h.Usable(r.ID); !ok {
			return false, "sender_unhealthy", why
		}
	}
	if r.Channel == job.ChannelWhite && j.Template != "" && r.WABA != "" {
		if _, err := w.templates.LookupIn(job.TenantOr(j.Tenant), j.Template, j.Language, r.WABA); err != nil {
			return false, "template", "template not approved in WABA " + r.WABA
		}
	}
	return true, "", ""
}

// seen records what a reservation said of r's next free slot, for the next picks.
func (r *route) seen(next time.Time) { r.free.Store(next.UnixNano()) }
