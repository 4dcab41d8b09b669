package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/ratelimit"
	"github.com/herald-notify/herald/internal/telemetry"
)

// Limiter is the fleet-wide rate limiter (internal/ratelimit on Redis).
type Limiter interface {
	Reserve(ctx context.Context, r LimitRequest) (LimitDecision, error)
	SlowSender(ctx context.Context, sender string, factor float64, d time.Duration) error
	HoldRecipient(ctx context.Context, sender, recipient string, d time.Duration) error
}

var _ Limiter = (*ratelimit.Limiter)(nil)

// ChannelLimit is the pacing of one channel's sender number.
type ChannelLimit struct {
	// Sender names the number fleet-wide ("white:<phone_number_id>", "grey:<instance>").
	Sender string
	// Rate is messages per second for the whole fleet (HERALD_WHITE_MPS, HERALD_GREY_MPS).
	Rate float64
	// Jitter stretches each gap at random by up to this fraction (grey: never a burst).
	Jitter float64
	// PairInterval is the least gap between two messages to one recipient.
	PairInterval time.Duration
	// RecipientDailyMax caps bulk messages to one recipient per moving 24 h.
	RecipientDailyMax int
	// SenderDailyMax caps the number's messages per moving 24 h (grey).
	SenderDailyMax int
	// UniqueDailyMax is the messaging tier: distinct recipients of business-initiated
	// template messages per moving 24 h (white).
	UniqueDailyMax int
	// Portfolio and PortfolioDailyMax are the Meta business portfolio whose messaging limit
	// (distinct business-initiated recipients per moving 24 h) the number shares with the
	// portfolio's other numbers (white; 0: none).
	Portfolio         string
	PortfolioDailyMax int
}

// Pacing horizons: bulk reserves send slots at most bulkHorizon ahead, so a transactional
// job, which may reserve up to transHorizon ahead, always finds a slot within about
// bulkHorizon however large the bulk backlog. That is the whole priority mechanism at the
// number's throughput; the lanes' slot shares keep bulk from filling the worker itself.
const (
	bulkHorizon  = 250 * time.Millisecond
	transHorizon = 5 * time.Second
)

// paceRate is the rate Herald reserves slots at: a little under the configured cap (98.5%,
// and at least half a message a second under it), so that the variable delay between a slot
// and the provider's receipt (the claim, rendering, the HTTP call: milliseconds) never makes
// the provider see more than the cap in any one-second window. At 20/s the half message
// leaves 25 ms of such delay before a 21st send could fall into a second, and a pool of
// numbers at 20/s still carries 97.5% of their sum.
func paceRate(cap float64) float64 {
	if cap <= 2 {
		return cap * 0.985
	}
	return min(cap*0.985, cap-0.5)
}

// pairInterval adds a margin to the pair interval, for the same reason as paceRate: the
// provider sees each send a few milliseconds after its slot, not at it.
func pairInterval(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d + min(d/20, 100*time.Millisecond)
}

// probeStore clears storeDown when Redis answers again.
func (w *Worker) probeStore(ctx context.Context, log *slog.Logger) {
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if w.store.Ping(pctx) == nil && w.storeDown.CompareAndSwap(true, false) {
		log.Info("state store reachable again: resuming")
	}
}

// lateSlotOf is how late after its reserved slot a send under l may still go: half the time
// the pacing margin buys (1.5% of a second, or one slot at low rates), and at least 5 ms.
// Sends up to that late bunch at most half the margin's worth of messages into a second; the
// other half absorbs the jitter of the path from the worker to the provider (the claim, the
// HTTP call), which the slot cannot see. Later than that, the slot is taken again.
func lateSlotOf(l ChannelLimit) time.Duration {
	if l.Rate <= 0 {
		return time.Hour
	}
	margin := time.Duration((1 - paceRate(l.Rate)/l.Rate) * float64(time.Second))
	return max(5*time.Millisecond, margin/2)
}

// errStopping means the worker is stopping while the job waited for a slot.
var errStopping = errors.New("worker stopping")

// errBusy means no slot was free at once (paceIfFree).
var errBusy = errors.New("no slot free at once")

// pacer is one worker's local side of a sender's limit: bulk jobs take turns asking Redis
// (one asker per sender and worker, smoothed with x/time/rate at the fleet rate), so a
// large backlog costs Redis a few calls per slot, not one per waiting job.
type pacer struct {
	turn  chan struct{}
	local *rate.Limiter
	// idle is set while the sender's slots are free at once (the last reservation needed no
	// wait): jobs then claim first and take their slot right before the call (see paceNow).
	idle atomic.Bool
}

type pacers struct {
	mu sync.Mutex
	m  map[string]*pacer
}

func (p *pacers) get(l ChannelLimit) *pacer {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]*pacer{}
	}
	pc, ok := p.m[l.Sender]
	if !ok {
		pc = &pacer{turn: make(chan struct{}, 1), local: rate.NewLimiter(rate.Limit(paceRate(l.Rate)), 1)}
		p.m[l.Sender] = pc
	}
	return pc
}

// paceMode is how a delivery asks for a slot.
type paceMode int

const (
	// paceUnclaimed: before the claim. An outage of the limiter's store is an error: nothing
	// holds the job, so it simply comes again later.
	paceUnclaimed paceMode = iota
	// paceClaimed: under the claim. An outage is waited out, the message kept alive: giving
	// the message back would leave the claim to expire into "unknown".
	paceClaimed
	// paceIfFree: under a claim just taken, only a slot free within lateSlot, and errBusy if
	// there is none (the sender is busy now, or a per-recipient rule waits).
	paceIfFree
)

// pace is the one place a delivery waits for a rate-limit slot for cascade[idx]. It returns
// the slot's time once the send may go, a *heldError when a limit makes the job wait long (a
// daily cap, the tier: the caller parks it), errStopping when the worker is stopping,
// errBusy (paceIfFree), or an infrastructure error (fail closed: never send unlimited).
// Waiting uses up no attempt.
//
// The first channel's last reservation travels in d.slot: an allowed one that this send will
// not use (the claim made it late) is replaced by the next ask, which takes back its pair and
// daily entries (ratelimit.Request.Replaces), and the reservation pace settles on is written
// back.
func (w *Worker) pace(ctx context.Context, d *delivery, idx int, windowOpen bool, how paceMode) (time.Time, error) {
	c := w.routeFor(ctx, d, idx)
	if c.err != nil || c.r.pacer == nil || w.cfg.Limiter == nil {
		return time.Now(), nil
	}
	r := c.r
	var slot *ratelimit.Decision
	if idx == 0 {
		slot = &d.slot
		if slot.Allowed && d.slotRoute != r {
			*slot = ratelimit.Decision{} // reserved on another sender: nothing to replace here
		}
		d.slotRoute = r
	}
	req := request(r, d.job, windowOpen)
	if slot != nil && slot.Allowed {
		prev := *slot
		req.Replaces = &prev
	}
	if how == paceIfFree {
		return w.slotIfFree(ctx, d, r, req, slot)
	}
	return w.waitSlot(ctx, d, r, req, slot, how == paceClaimed)
}

// slotIfFree takes a slot only if one is free within lateSlot, and waits for it: the order
// for a sender that is not busy, under a claim taken just before. A slot taken before the
// claim would be late by the claim's round trip, which on a loaded machine is often more than
// lateSlot and would cost a second reservation for nothing. An allowed reservation is written
// to slot even when it goes unused (woken up late): the next ask replaces it.
func (w *Worker) slotIfFree(ctx context.Context, d *delivery, r *route, req ratelimit.Request, slot *ratelimit.Decision) (time.Time, error) {
	l, pc := r.Limit, r.pacer
	req.Horizon = lateSlotOf(l)
	dec, err := w.cfg.Limiter.Reserve(ctx, req)
	if err != nil {
		return time.Time{}, fmt.Errorf("rate limiter: %w", err)
	}
	r.learn(dec)
	if !dec.Allowed {
		if dec.Reason == ratelimit.ReasonRate {
			pc.idle.Store(false)
		}
		return time.Time{}, errBusy
	}
	if slot != nil {
		*slot = dec
	}
	due := time.Now().Add(dec.Delay)
	if err := w.sleep(ctx, d.msg, dec.Delay, false); err != nil {
		return time.Time{}, err
	}
	if time.Since(due) > lateSlotOf(l) {
		// Woken up late (CPU starved): the slot is spent.
		w.cfg.Metrics.Count(ctx, func(m *telemetry.Metrics) metricCounter { return m.LimiterWaits }, "sender", r.ID, "reason", "late_slot")
		return time.Time{}, errBusy
	}
	return due, nil
}

// waitSlot asks for a slot until one is allowed and waits for it. Bulk jobs take turns per
// sender in this worker (see pacer); the turn is released by a deferred release that is safe
// to call twice, and given up early while a job waits for one recipient.
func (w *Worker) waitSlot(ctx context.Context, d *delivery, r *route, req ratelimit.Request, slot *ratelimit.Decision, claimed bool) (time.Time, error) {
	l, pc := r.Limit, r.pacer
	bulk := d.job.Priority == job.PriorityBulk
	late := lateSlotOf(l)
	start, waited := time.Now(), false
	defer func() {
		if waited {
			w.cfg.Metrics.Record(ctx, func(m *telemetry.Metrics) float64Histogram { return m.LimiterWait }, time.Since(start).Seconds(), "sender", r.ID)
		}
	}()
	tn := &turn{pc: pc}
	defer tn.release()
	for {
		tn.release()
		// The local limiter spaces this worker's bulk asks at the fleet rate; an ask Redis
		// denies for a recipient (pair, penalty) gives its token back, so waits for one
		// customer never slow the number down.
		var local *rate.Reservation
		var localWait time.Duration
		if bulk {
			if err := w.takeTurn(ctx, d.msg, tn); err != nil {
				return time.Time{}, err
			}
			local = pc.local.Reserve()
			localWait = local.Delay()
			if err := w.sleep(ctx, d.msg, localWait, true); err != nil {
				local.Cancel()
				return time.Time{}, err
			}
		}
		dec, err := w.cfg.Limiter.Reserve(ctx, req)
		if err == nil {
			r.learn(dec)
		}
		if err == nil && !dec.Allowed && dec.Reason != ratelimit.ReasonRate && local != nil {
			local.Cancel()
		}
		if err != nil {
			tn.release()
			if !claimed {
				return time.Time{}, fmt.Errorf("rate limiter: %w", err)
			}
			if w.storeDown.CompareAndSwap(false, true) {
				d.log.Warn("rate limiter unavailable: waiting for it, nothing is sent meanwhile", "err", err)
			}
			if err := w.sleep(ctx, d.msg, time.Second, false); err != nil {
				return time.Time{}, err
			}
			select {
			case <-w.stopping:
				return time.Time{}, errStopping
			default:
			}
			continue
		}
		if dec.Allowed {
			tn.release()
			// Idle: the slot was free at once, and this worker's own asks (bulk) were not
			// spaced out by the local limiter, so the number is not running at its cap.
			pc.idle.Store(dec.Delay <= late && localWait == 0)
			unused := dec
			req.Replaces = &unused // if this reservation goes unused, the next ask replaces it
			due := time.Now().Add(dec.Delay)
			if err := w.sleep(ctx, d.msg, dec.Delay, bulk); err != nil {
				return time.Time{}, err
			}
			// Redis went away while this job waited: do not send on an old reservation; wait
			// for Redis to come back and reserve again (fail closed).
			if w.storeDown.Load() {
				// Probe here too: the lanes (which also probe) may be blocked for a long time.
				w.probeStore(ctx, d.log)
				if w.storeDown.Load() {
					if err := w.sleep(ctx, d.msg, time.Second, bulk); err != nil {
						return time.Time{}, err
					}
				}
				continue
			}
			// A slot this process woke up late for (CPU starved, a GC pause) is given up:
			// sending late would bunch with the next slots at the provider.
			if time.Since(due) > late {
				w.cfg.Metrics.Count(ctx, func(m *telemetry.Metrics) metricCounter { return m.LimiterWaits }, "sender", r.ID, "reason", "late_slot")
				continue
			}
			if slot != nil {
				*slot = dec
			}
			return due, nil
		}
		reason := string(dec.Reason)
		if !waited {
			waited = true
			w.cfg.Metrics.Count(ctx, func(m *telemetry.Metrics) metricCounter { return m.LimiterWaits }, "sender", r.ID, "reason", reason)
		}
		wait := dec.RetryAfter
		if dec.Reason == ratelimit.ReasonRecipientDaily || dec.Reason == ratelimit.ReasonSenderDaily ||
			dec.Reason == ratelimit.ReasonTier || wait > w.cfg.AckWait/3 {
			return time.Time{}, &heldError{until: w.cfg.Now().Add(wait), reason: reason}
		}
		// A pair or penalty wait concerns one recipient: wait without holding the sender's
		// turn, and without a concurrency slot. A rate wait keeps the turn: this job is next.
		if dec.Reason != ratelimit.ReasonRate {
			tn.release()
		}
		w.cfg.Metrics.Add(ctx, func(m *telemetry.Metrics) metricUpDown { return m.Waiting }, 1, "reason", reason)
		wait += rand.N(wait/10 + time.Millisecond)
		unpark := func() error { return nil }
		if dec.Reason != ratelimit.ReasonRate {
			unpark = parkFor(d.msg, wait)
		}
		err = w.sleep(ctx, d.msg, wait, bulk)
		if uerr := unpark(); err == nil {
			err = uerr
		}
		w.cfg.Metrics.Add(ctx, func(m *telemetry.Metrics) metricUpDown { return m.Waiting }, -1, "reason", reason)
		if err != nil {
			return time.Time{}, err
		}
	}
}

// turn is a bulk job's turn at its sender's pacer in this worker.
type turn struct {
	pc   *pacer
	held bool
}

// release gives the turn back if it is held; safe to call any number of times.
func (t *turn) release() {
	if t.held {
		t.held = false
		<-t.pc.turn
	}
}

// request is the limiter request for sending j through r.
func request(r *route, j *job.Job, windowOpen bool) ratelimit.Request {
	l := r.Limit
	req := ratelimit.Request{
		Sender: l.Sender, Rate: paceRate(l.Rate), Jitter: l.Jitter, Horizon: transHorizon,
		Recipient: j.To, PairInterval: pairInterval(l.PairInterval), SenderDailyMax: l.SenderDailyMax,
		UniqueDailyMax: l.UniqueDailyMax, Portfolio: l.Portfolio, PortfolioDailyMax: l.PortfolioDailyMax,
		// Business-initiated: a template outside the customer-service window.
		CountsUnique: r.Channel == job.ChannelWhite && j.Template != "" && !windowOpen,
	}
	if r.DailyCap != nil {
		req.SenderDailyMax = max(r.DailyCap(time.Now()), 1)
	}
	if j.Priority == job.PriorityBulk {
		req.Horizon = bulkHorizon
		req.RecipientDailyMax = l.RecipientDailyMax
	}
	return req
}

// idle tells whether the sender of c had its slots free at once lately, so that a plain
// delivery may claim first and take its slot right before the call (paceNow). A sender
// without limits (or no sender) is always idle.
func (w *Worker) idle(c *choice) bool {
	if c.err != nil || c.r.pacer == nil || w.cfg.Limiter == nil {
		return true
	}
	return c.r.pacer.idle.Load()
}

// learn records what a reservation said of r's next free slot, for the next picks.
func (r *route) learn(dec ratelimit.Decision) {
	now := time.Now()
	switch {
	case dec.Allowed:
		r.seen(now.Add(dec.Delay + time.Duration(float64(time.Second)/max(r.Limit.Rate, 1e-3))))
	case dec.Reason == ratelimit.ReasonRate:
		r.seen(now.Add(dec.RetryAfter + bulkHorizon))
	}
}

// liveMsg is a delivery that tells JetStream it is still being worked on while it waits
// (for a rate-limit slot, a turn, Redis): a long wait is not taken for a dead worker, whose
// redelivery would waste a slot. The heartbeat starts with the first wait and covers every
// later one, however short each is; close stops it.
type liveMsg struct {
	jetstream.Msg
	every time.Duration
	once  sync.Once
	done  chan struct{}
	// slot is the concurrency slot the delivery runs in (nil outside a lane: tests).
	slot *slot
}

// slot is a delivery's share of the worker's concurrency. A job that must wait for one
// recipient parks: it gives its slot to other jobs and takes a parking place instead (if one
// is free), and takes a slot again before it goes on.
type slot struct {
	mu      sync.Mutex
	held    bool
	parked  bool
	acquire func() bool // blocks; false when the worker is stopping
	release func()
	parking chan struct{}
}

// park gives the slot up for a parking place; false (slot kept) when parking is full.
func (s *slot) park() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.held || s.parking == nil {
		return false
	}
	select {
	case s.parking <- struct{}{}:
	default:
		return false
	}
	s.release()
	s.held, s.parked = false, true
	return true
}

// unpark takes a slot again (the message is kept alive meanwhile by its heartbeat).
func (s *slot) unpark() error {
	s.mu.Lock()
	if !s.parked {
		s.mu.Unlock()
		return nil
	}
	<-s.parking
	s.parked = false
	s.mu.Unlock()
	if !s.acquire() {
		return errStopping
	}
	s.mu.Lock()
	s.held = true
	s.mu.Unlock()
	return nil
}

// done releases whatever the delivery still holds.
func (s *slot) done() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held {
		s.release()
		s.held = false
	}
	if s.parked {
		<-s.parking
		s.parked = false
	}
}

// parkFor parks msg's slot around a wait of d for one recipient; the returned function takes
// the slot back.
func parkFor(msg jetstream.Msg, d time.Duration) func() error {
	m, ok := msg.(*liveMsg)
	if !ok || m.slot == nil || d < 200*time.Millisecond || !m.slot.park() {
		return func() error { return nil }
	}
	return m.slot.unpark
}

func newLiveMsg(m jetstream.Msg, ackWait time.Duration) *liveMsg {
	return &liveMsg{Msg: m, every: ackWait / 3, done: make(chan struct{})}
}

func (m *liveMsg) keep() {
	m.once.Do(func() {
		go func() {
			t := time.NewTicker(m.every)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					_ = m.InProgress()
				case <-m.done:
					return
				}
			}
		}()
	})
}

func (m *liveMsg) close() {
	m.once.Do(func() {}) // no heartbeat after this
	select {
	case <-m.done:
	default:
		close(m.done)
	}
}

// keepAlive starts msg's heartbeat when it is a liveMsg.
func keepAlive(msg jetstream.Msg) {
	if m, ok := msg.(*liveMsg); ok {
		m.keep()
	}
}

// sleep waits d, keeping the message alive. A waiting bulk job gives up when the worker
// starts stopping (its message is handed back); a transactional one keeps its slot.
func (w *Worker) sleep(ctx context.Context, msg jetstream.Msg, d time.Duration, bulk bool) error {
	if d <= 0 {
		return nil
	}
	keepAlive(msg)
	t := time.NewTimer(d)
	defer t.Stop()
	var stopping <-chan struct{}
	if bulk {
		stopping = w.stopping
	}
	select {
	case <-t.C:
		return nil
	case <-stopping:
		return errStopping
	case <-ctx.Done():
		return ctx.Err()
	}
}

// takeTurn waits for the sender's turn in this worker, keeping the message alive meanwhile.
func (w *Worker) takeTurn(ctx context.Context, msg jetstream.Msg, t *turn) error {
	select {
	case t.pc.turn <- struct{}{}:
		t.held = true
		return nil
	default:
	}
	keepAlive(msg)
	select {
	case t.pc.turn <- struct{}{}:
		t.held = true
		return nil
	case <-w.stopping:
		return errStopping
	case <-ctx.Done():
		return ctx.Err()
	}
}

// feedback slows a sender down after WhatsApp said it went too fast: 130429 (the number's
// throughput) halves its fleet rate for a minute, 131056 (pair rate) holds that recipient.
func (w *Worker) feedback(ctx context.Context, r *route, j *job.Job, code string, log *slog.Logger) {
	if r == nil || w.cfg.Limiter == nil || r.Limit.Rate <= 0 {
		return
	}
	l := r.Limit
	var err error
	switch code {
	case "130429":
		err = w.cfg.Limiter.SlowSender(ctx, l.Sender, 0.5, time.Minute)
		if m := w.cfg.Metrics; m != nil {
			m.SenderRate.Record(ctx, l.Rate*0.5, telemetry.Attrs("sender", r.ID))
			time.AfterFunc(time.Minute, func() {
				m.SenderRate.Record(context.Background(), l.Rate, telemetry.Attrs("sender", r.ID))
			})
		}
		log.Warn("provider rate limit hit: sender slowed to half its rate for a minute", "sender", r.ID)
	case "131056":
		err = w.cfg.Limiter.HoldRecipient(ctx, l.Sender, j.To, time.Minute)
		log.Info("pair rate limit hit: recipient held for a minute", "sender", r.ID)
	default:
		return
	}
	w.cfg.Metrics.Count(ctx, func(m *telemetry.Metrics) metricCounter { return m.LimiterWaits }, "sender", r.ID, "reason", "provider_"+code)
	if err != nil {
		log.Warn("rate feedback not recorded", "err", err)
	}
}
