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
	Reserve(ctx context.Context, r ratelimit.Request) (ratelimit.Decision, error)
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
// and at least one message a second under it), so that the variable delay between a slot
// and the provider's receipt (the claim, rendering, the HTTP call: milliseconds) never makes
// the provider see more than the cap in any one-second window.
func paceRate(cap float64) float64 {
	if cap <= 2 {
		return cap * 0.985
	}
	return min(cap*0.985, cap-1)
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

// lateSlot is how late after its reserved slot a send on ch may still go: half the time the
// pacing margin buys (1.5% of a second, or one slot at low rates), and at least 5 ms. Sends
// up to that late bunch at most half the margin's worth of messages into a second; the other
// half absorbs the jitter of the path from the worker to the provider (the claim, the HTTP
// call), which the slot cannot see. Later than that, the slot is taken again.
func (w *Worker) lateSlot(ch string) time.Duration {
	l, ok := w.cfg.Limits[ch]
	if !ok || l.Rate <= 0 {
		return time.Hour
	}
	margin := time.Duration((1 - paceRate(l.Rate)/l.Rate) * float64(time.Second))
	return max(5*time.Millisecond, margin/2)
}

// errHeld means pace parked the job (a long wait): the delivery is finished.
var errHeld = errors.New("job held until a limit allows it")

// errStopping means the worker is stopping while the job waited for a slot.
var errStopping = errors.New("worker stopping")

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

// pace waits until the channel's limits allow sending j. It returns nil when the send may
// go now, errHeld when the job was parked in a schedule (long waits: daily caps, the tier),
// errStopping when the worker is stopping, or an infrastructure error (the limiter's store
// is unreachable: fail closed, never send unlimited). Waiting uses up no attempt. It
// returns the time of the reserved slot.
//
// A plain delivery paces its first channel before it claims the job: a worker killed while
// its jobs wait for slots then leaves no claims behind (an expired claim reads as "died
// during the provider call", and such a job is never resent). When the caller holds the
// claim (claimed), an outage is waited out here instead, with the message kept alive:
// giving it back would leave the claim to expire into "unknown".
//
// slot, when not nil, carries the send's last reservation in and out: an allowed one given
// in is one this send will not use (its pair and daily entries are taken back, see
// ratelimit.Request.Replaces), and the reservation pace settles on is written back.
func (w *Worker) pace(ctx context.Context, msg jetstream.Msg, ch string, j *job.Job, windowOpen bool, owner string, cascade []string, log *slog.Logger, claimed bool, slot *ratelimit.Decision) (time.Time, error) {
	l, ok := w.cfg.Limits[ch]
	if !ok || w.cfg.Limiter == nil || l.Rate <= 0 {
		return time.Now(), nil
	}
	bulk := j.Priority == job.PriorityBulk
	req := request(l, ch, j, windowOpen)
	if slot != nil && slot.Allowed {
		prev := *slot
		req.Replaces = &prev
	}
	pc := w.pacers.get(l)
	start := time.Now()
	waited := ""
	defer func() {
		if waited != "" {
			w.cfg.Metrics.Record(ctx, func(m *telemetry.Metrics) float64Histogram { return m.LimiterWait }, time.Since(start).Seconds(), "sender", l.Sender)
		}
	}()
	for attempt := 0; ; attempt++ {
		if bulk {
			if err := w.takeTurn(ctx, msg, pc); err != nil {
				return time.Time{}, err
			}
		}
		// The local limiter spaces this worker's asks at the fleet rate; an ask Redis denies
		// for a recipient (pair, penalty) gives its token back, so waits for one customer
		// never slow the number down.
		var local *rate.Reservation
		var localWait time.Duration
		if bulk {
			local = pc.local.Reserve()
			localWait = local.Delay()
			if err := w.sleep(ctx, msg, localWait, true); err != nil {
				local.Cancel()
				<-pc.turn
				return time.Time{}, err
			}
		}
		d, err := w.cfg.Limiter.Reserve(ctx, req)
		if err == nil && !d.Allowed && d.Reason != ratelimit.ReasonRate && local != nil {
			local.Cancel()
		}
		if err != nil {
			if bulk {
				<-pc.turn
			}
			if !claimed {
				return time.Time{}, fmt.Errorf("rate limiter: %w", err)
			}
			if w.storeDown.CompareAndSwap(false, true) {
				log.Warn("rate limiter unavailable: waiting for it, nothing is sent meanwhile", "err", err)
			}
			if err := w.sleep(ctx, msg, time.Second, false); err != nil {
				return time.Time{}, err
			}
			select {
			case <-w.stopping:
				return time.Time{}, errStopping
			default:
			}
			continue
		}
		if d.Allowed {
			if bulk {
				<-pc.turn
			}
			// Idle: the slot was free at once, and this worker's own asks (bulk) were not
			// spaced out by the local limiter, so the number is not running at its cap.
			pc.idle.Store(d.Delay <= w.lateSlot(ch) && localWait == 0)
			unused := d
			req.Replaces = &unused // if this reservation goes unused, the next ask replaces it
			due := time.Now().Add(d.Delay)
			if err := w.sleep(ctx, msg, d.Delay, bulk); err != nil {
				return time.Time{}, err
			}
			// Redis went away while this job waited: do not send on an old reservation; wait
			// for Redis to come back and reserve again (fail closed).
			if w.storeDown.Load() {
				// Probe here too: the lanes (which also probe) may be blocked for a long time.
				w.probeStore(ctx, log)
				if w.storeDown.Load() {
					if err := w.sleep(ctx, msg, time.Second, bulk); err != nil {
						return time.Time{}, err
					}
				}
				continue
			}
			// A slot this process woke up late for (CPU starved, a GC pause) is given up:
			// sending late would bunch with the next slots at the provider.
			if late := time.Since(due); late > w.lateSlot(ch) {
				w.cfg.Metrics.Count(ctx, func(m *telemetry.Metrics) metricCounter { return m.LimiterWaits }, "sender", l.Sender, "reason", "late_slot")
				continue
			}
			if slot != nil {
				*slot = d
			}
			return due, nil
		}
		reason := string(d.Reason)
		if waited == "" {
			waited = reason
			w.cfg.Metrics.Count(ctx, func(m *telemetry.Metrics) metricCounter { return m.LimiterWaits }, "sender", l.Sender, "reason", reason)
		}
		wait := d.RetryAfter
		long := d.Reason == ratelimit.ReasonRecipientDaily || d.Reason == ratelimit.ReasonSenderDaily ||
			d.Reason == ratelimit.ReasonTier || wait > w.cfg.AckWait/3
		if long {
			if bulk {
				<-pc.turn
			}
			w.waitFor(ctx, msg, j, owner, cascade, w.cfg.Now().Add(wait), reason, log)
			return time.Time{}, errHeld
		}
		// A pair or penalty wait concerns one recipient: wait without holding the sender's
		// turn. A rate wait keeps the turn: this job is next in line here.
		if bulk && d.Reason != ratelimit.ReasonRate {
			<-pc.turn
		}
		w.cfg.Metrics.Add(ctx, func(m *telemetry.Metrics) metricUpDown { return m.Waiting }, 1, "reason", reason)
		wait += rand.N(wait/10 + time.Millisecond)
		unpark := func() error { return nil }
		if d.Reason != ratelimit.ReasonRate {
			unpark = parkFor(msg, wait)
		}
		err = w.sleep(ctx, msg, wait, bulk)
		if uerr := unpark(); err == nil {
			err = uerr
		}
		w.cfg.Metrics.Add(ctx, func(m *telemetry.Metrics) metricUpDown { return m.Waiting }, -1, "reason", reason)
		if bulk && d.Reason == ratelimit.ReasonRate {
			<-pc.turn
		}
		if err != nil {
			return time.Time{}, err
		}
	}
}

// request is the limiter request for sending j on ch under l.
func request(l ChannelLimit, ch string, j *job.Job, windowOpen bool) ratelimit.Request {
	req := ratelimit.Request{
		Sender: l.Sender, Rate: paceRate(l.Rate), Jitter: l.Jitter, Horizon: transHorizon,
		Recipient: j.To, PairInterval: pairInterval(l.PairInterval), SenderDailyMax: l.SenderDailyMax,
		UniqueDailyMax: l.UniqueDailyMax,
		// Business-initiated: a template outside the customer-service window.
		CountsUnique: ch == job.ChannelWhite && j.Template != "" && !windowOpen,
	}
	if j.Priority == job.PriorityBulk {
		req.Horizon = bulkHorizon
		req.RecipientDailyMax = l.RecipientDailyMax
	}
	return req
}

// idleSender tells whether ch's sender had its slots free at once lately, so that a plain
// delivery may claim first and take its slot right before the call (paceNow). A channel
// without limits is always idle.
func (w *Worker) idleSender(ch string) bool {
	l, ok := w.cfg.Limits[ch]
	if !ok || w.cfg.Limiter == nil || l.Rate <= 0 {
		return true
	}
	return w.pacers.get(l).idle.Load()
}

// paceNow takes a slot on ch for j only if one is free within lateSlot, and waits for it: the
// order for a sender that is not busy, under a claim taken just before. Taking the slot before
// the claim would make it late by the claim's round trip, which on a loaded machine is often
// more than lateSlot and would cost a second reservation for nothing. It reports false when
// no slot is free that soon (the sender is busy now, or a per-recipient rule waits): the
// caller gives the claim back and paces first. An error is the limiter's store failing.
//
// An allowed reservation is written to slot, also when it goes unused (woken up late): the
// caller's next pace replaces it.
func (w *Worker) paceNow(ctx context.Context, msg jetstream.Msg, ch string, j *job.Job, windowOpen bool, slot *ratelimit.Decision) (bool, error) {
	l, ok := w.cfg.Limits[ch]
	if !ok || w.cfg.Limiter == nil || l.Rate <= 0 {
		return true, nil
	}
	pc := w.pacers.get(l)
	req := request(l, ch, j, windowOpen)
	req.Horizon = w.lateSlot(ch)
	d, err := w.cfg.Limiter.Reserve(ctx, req)
	if err != nil {
		return false, fmt.Errorf("rate limiter: %w", err)
	}
	if !d.Allowed {
		if d.Reason == ratelimit.ReasonRate {
			pc.idle.Store(false)
		}
		return false, nil
	}
	*slot = d
	due := time.Now().Add(d.Delay)
	if err := w.sleep(ctx, msg, d.Delay, false); err != nil {
		return false, err
	}
	if time.Since(due) > w.lateSlot(ch) {
		// Woken up late (CPU starved): the slot is spent.
		w.cfg.Metrics.Count(ctx, func(m *telemetry.Metrics) metricCounter { return m.LimiterWaits }, "sender", l.Sender, "reason", "late_slot")
		return false, nil
	}
	return true, nil
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
func (w *Worker) takeTurn(ctx context.Context, msg jetstream.Msg, pc *pacer) error {
	select {
	case pc.turn <- struct{}{}:
		return nil
	default:
	}
	keepAlive(msg)
	select {
	case pc.turn <- struct{}{}:
		return nil
	case <-w.stopping:
		return errStopping
	case <-ctx.Done():
		return ctx.Err()
	}
}

// feedback slows a sender down after WhatsApp said it went too fast: 130429 (the number's
// throughput) halves its fleet rate for a minute, 131056 (pair rate) holds that recipient.
func (w *Worker) feedback(ctx context.Context, ch string, j *job.Job, code string, log *slog.Logger) {
	l, ok := w.cfg.Limits[ch]
	if !ok || w.cfg.Limiter == nil {
		return
	}
	var err error
	switch code {
	case "130429":
		err = w.cfg.Limiter.SlowSender(ctx, l.Sender, 0.5, time.Minute)
		if m := w.cfg.Metrics; m != nil {
			m.SenderRate.Record(ctx, l.Rate*0.5, telemetry.Attrs("sender", l.Sender))
			time.AfterFunc(time.Minute, func() {
				m.SenderRate.Record(context.Background(), l.Rate, telemetry.Attrs("sender", l.Sender))
			})
		}
		log.Warn("provider rate limit hit: sender slowed to half its rate for a minute", "sender", l.Sender)
	case "131056":
		err = w.cfg.Limiter.HoldRecipient(ctx, l.Sender, j.To, time.Minute)
		log.Info("pair rate limit hit: recipient held for a minute", "sender", l.Sender)
	default:
		return
	}
	w.cfg.Metrics.Count(ctx, func(m *telemetry.Metrics) metricCounter { return m.LimiterWaits }, "sender", l.Sender, "reason", "provider_"+code)
	if err != nil {
		log.Warn("rate feedback not recorded", "err", err)
	}
}
