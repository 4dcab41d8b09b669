package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/provider"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/telemetry"
	"github.com/herald-notify/herald/internal/templates"
)

// deliver walks the cascade from the record's current channel: for each channel it paces,
// renders, sends and records, until a send is recorded, a retry is due later, or every
// channel failed.
func (w *Worker) deliver(ctx context.Context, d *delivery, adm admission) *outcome {
	rec := adm.Record
	idx, attempts := rec.ChannelIdx, rec.Attempts
	moves := 0 // senders given up within one channel's pool (bounded by the pool)
	for idx < len(d.cascade) {
		ch := d.cascade[idx]
		if idx > rec.ChannelIdx && moves == 0 {
			_ = d.msg.InProgress() // a fallback: the next channel gets the whole ack wait
		}
		c := w.routeFor(ctx, d, idx)
		if c.err == nil {
			if o := w.paceClaimed(ctx, d, idx, adm); o != nil {
				return o
			}
		}
		// A wait for a slot can be long: an operator may have canceled the campaign meanwhile.
		if w.canceled(d.job) {
			return w.settleUnsent(ctx, d, status.Canceled, "campaign "+d.job.Campaign+" canceled")
		}
		// ...and the sender may have left the pool meanwhile: the job moves to another one.
		if c.err == nil && moves < len(w.pools.byID) {
			if ok, _, why := w.usable(c.r, d.job); !ok {
				d.log.Info("sender left the pool while the job waited: routing again", "sender", c.r.ID, "reason", why)
				d.forget(idx)
				moves++
				continue
			}
		}
		res, err := w.send(ctx, d, idx, c, windowOf(c, adm.Admission))
		if err == nil {
			o, fallBack := w.recordSent(ctx, d, idx, attempts, res)
			if !fallBack {
				return o
			}
			attempts, moves = 0, 0
			idx++
			continue
		}
		if ctx.Err() != nil {
			// Hard stop during the call: the outcome is unknown; the claim stays and expires
			// into 'unknown' rather than risking a second send.
			return leave()
		}
		pe := provider.Classify(err)
		w.sendMetric(ctx, c, ch, pe)
		if c.r != nil {
			w.feedback(ctx, c.r, d.job, pe.Code, d.log)
		}
		if pe.Kind == provider.Sender && c.r != nil && ch != job.ChannelGrey {
			// The provider refused the sender itself: it leaves the pool (every worker's), and
			// the job tries another sender of the channel before it falls back. Nothing was
			// sent, so no attempt is used. A grey instance has its circuit breaker instead
			// (with probes): once open, the pool leaves the instance alone (usable).
			w.stopSender(ctx, c.r, pe, d.log)
			if moves < len(w.pools.byID) && w.routeFor(ctx, forgotten(d, idx), idx).err == nil {
				moves++
				continue
			}
		}
		o, next := w.recordFailure(ctx, d, idx, attempts+1, pe)
		if !next {
			return o
		}
		attempts, moves = 0, 0
		idx++
	}
	// Only a cascade with no channel left to try gets here.
	ch := ""
	if len(d.cascade) > 0 {
		ch = d.cascade[len(d.cascade)-1]
	}
	none := &provider.Error{Kind: provider.Channel, Reason: "every channel failed, last: no channel in the cascade"}
	return w.fail(ctx, d, ch, len(d.cascade)-1, attempts, none, "exhausted")
}

// forgotten is d with channel idx's route forgotten, so that it is picked again.
func forgotten(d *delivery, idx int) *delivery {
	d.forget(idx)
	return d
}

// windowOf tells whether the customer's 24-hour window with c's sender is open: what the
// pick read of that number's window, else what the claim read.
func windowOf(c *choice, adm status.Admission) bool {
	if c.windowKnown {
		return c.window
	}
	return adm.WindowOpen
}

// paceClaimed waits, under the claim, for channel idx's slot, unless admit already holds it.
// A long wait parks the job; a stop gives the claim back.
func (w *Worker) paceClaimed(ctx context.Context, d *delivery, idx int, adm admission) *outcome {
	c := w.routeFor(ctx, d, idx)
	if c.err != nil || (idx == 0 && adm.paced && d.slotRoute == c.r) {
		return nil
	}
	_, err := w.pace(ctx, d, idx, windowOf(c, adm.Admission), paceClaimed)
	var held *heldError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &held):
		return w.park(ctx, d, d.owner, held.until, held.reason)
	default: // stopping
		return w.giveBack(ctx, d)
	}
}

// recordSent records a send. It reports true when the job must go on to its next channel at
// once: the provider reported the message failed before the send was recorded.
func (w *Worker) recordSent(ctx context.Context, d *delivery, idx, attempts int, res Result) (*outcome, bool) {
	ch := d.cascade[idx]
	old, rec, err := w.record(ctx, d, status.Outcome{Mode: status.ModeSent, Channel: ch, ChannelIdx: idx,
		Attempts: attempts + 1, ProviderMessageID: res.MessageID, Segments: res.Segments})
	if err != nil {
		// Stopping with the send still unrecorded: keep the claim (it expires into 'unknown',
		// never a second send) and let JetStream redeliver.
		d.log.Error("sent, but recording failed", "channel", ch, "err", err)
		return later(w.cfg.AckWait), false
	}
	o := ack("sent", ch, nil, nil)
	if old != rec.State {
		o.event = w.events.publish(ctx, rec)
	}
	if rec.Resume && rec.ChannelIdx == idx+1 {
		// Under a fresh claim; if that cannot be taken, the parked deadline carries the
		// fallback.
		adm, err := w.store.BeginCheck(ctx, d.job, d.owner, w.cfg.AckWait+10*time.Second, d.cascade, status.Check{Idx: idx})
		if err == nil && adm.Verdict == status.Claimed {
			d.log.Info("failed report came before the record: falling back", "from", ch, "to", d.cascade[idx+1])
			return nil, true
		}
	}
	o.deadline = w.parkDeadline(ctx, d, idx)
	d.log.Debug("sent", "channel", ch, "provider_message_id", res.MessageID)
	return o, false
}

// recordFailure records a failed call on channel idx (attempt is its number on the channel)
// and decides what follows: a retry later, the next channel now (true), or the job's end.
func (w *Worker) recordFailure(ctx context.Context, d *delivery, idx, attempt int, pe *provider.Error) (*outcome, bool) {
	ch := d.cascade[idx]
	spent := attempt - 1 // attempts used on the channel: a permanent error uses none
	if pe.Kind == provider.Retry {
		spent = attempt
		if attempt < w.cfg.RetryMaxAttempts {
			if _, _, err := w.record(ctx, d, status.Outcome{Mode: status.ModeRetry, Channel: ch,
				ChannelIdx: idx, Attempts: attempt, Code: pe.Code, Reason: pe.Reason}); err != nil {
				return storeDown(err), false
			}
			delay := w.backoff(attempt, pe.After)
			d.log.Info("send failed, retrying later", "channel", ch, "code", pe.Code, "attempt", attempt, "delay", delay)
			w.cfg.Metrics.Count(ctx, func(m *telemetry.Metrics) metricCounter { return m.Retries }, "channel", ch, "code", pe.Code)
			return later(delay), false
		}
		pe = &provider.Error{Kind: provider.Channel, Code: pe.Code, Reason: fmt.Sprintf("%d attempts failed, last: %s", attempt, pe.Reason)}
	}
	if pe.Kind == provider.Job {
		return w.fail(ctx, d, ch, idx, spent, pe, "rejected"), false
	}
	// Permanent for the channel, or every sender of the pool refused (deliver stopped each).
	if idx == len(d.cascade)-1 {
		final := &provider.Error{Kind: provider.Channel, Code: pe.Code, Reason: "every channel failed, last: " + pe.Reason}
		return w.fail(ctx, d, ch, idx, spent, final, "exhausted"), false
	}
	if _, _, err := w.record(ctx, d, status.Outcome{Mode: status.ModeFallback, Channel: ch,
		ChannelIdx: idx + 1, Code: pe.Code, Reason: pe.Reason, NextChannel: d.cascade[idx+1]}); err != nil {
		return storeDown(err), false
	}
	d.log.Info("falling back", "from", ch, "to", d.cascade[idx+1], "code", pe.Code, "reason", pe.Reason)
	w.cfg.Metrics.Count(ctx, func(m *telemetry.Metrics) metricCounter { return m.Fallbacks }, "channel", ch, "reason", pe.Kind.String())
	return nil, true
}

// fail records the job as failed and dead-letters it; its event goes out before the letter,
// so it is on its way when the message is terminated (a redelivery after a failed letter
// publishes both again: doneAgain).
func (w *Worker) fail(ctx context.Context, d *delivery, ch string, idx, attempts int, pe *provider.Error, reason string) *outcome {
	old, rec, err := w.record(ctx, d, status.Outcome{Mode: status.ModeFailed, Channel: ch,
		ChannelIdx: max(idx, 0), Attempts: attempts, Code: pe.Code, Reason: pe.Reason, DeadLetter: reason})
	if err != nil {
		return storeDown(err)
	}
	d.log.Warn("job failed", "reason", reason, "code", pe.Code, "detail", pe.Reason)
	if old != rec.State {
		w.events.publish(ctx, rec)
	}
	return deadLetter(letter{id: d.job.ID, tenant: rec.Tenant, reason: reason, detail: pe.Reason, msgID: failedLetter(rec).msgID}, "failed", ch)
}

// record records the outcome of a provider call (sent, retry, fallback, failed). If Redis
// does not answer it keeps trying (the message kept alive) until it does or the worker stops
// hard: giving up would leave the claim to expire into 'unknown' although the outcome is
// known.
func (w *Worker) record(ctx context.Context, d *delivery, o status.Outcome) (string, *status.Record, error) {
	delay := 200 * time.Millisecond
	for {
		old, rec, err := w.store.Attempt(ctx, d.job.Ref(), d.owner, o)
		if err == nil {
			return old, rec, nil
		}
		if errors.Is(err, status.ErrNotFound) {
			// Redis came back without its data (no persistence): write the record again,
			// under this delivery's claim, so the send is known and never repeated.
			if _, berr := w.store.Begin(ctx, d.job, d.owner, w.cfg.AckWait+10*time.Second, d.cascade); berr == nil {
				continue
			}
		}
		if w.storeDown.CompareAndSwap(false, true) {
			d.log.Warn("state store unavailable: retrying the record of the provider's answer", "mode", string(o.Mode), "err", err)
		}
		if err := w.sleep(ctx, d.msg, delay, false); err != nil {
			return "", nil, err
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// send renders d's job for channel idx and sends it through the route picked for it (c).
func (w *Worker) send(ctx context.Context, d *delivery, idx int, c *choice, windowOpen bool) (Result, error) {
	if c.err != nil {
		return Result{}, c.err
	}
	r, j := c.r, d.job
	if until, ok := w.senderDown.Load(r.Limit.Sender); ok && time.Now().Before(until.(time.Time)) {
		return Result{}, &provider.Error{Kind: provider.Channel, Code: "sender_stopped",
			Reason: r.ID + " sender stopped after an account error; retried from " + until.(time.Time).UTC().Format(time.RFC3339)}
	}
	m, err := w.render(r, j, windowOpen)
	if err != nil {
		return Result{}, err
	}
	sctx, cancel := context.WithTimeout(ctx, w.cfg.SendTimeout)
	defer cancel()
	start := time.Now()
	res, err := r.Sender.Send(sctx, m)
	if mt := w.cfg.Metrics; mt != nil {
		mt.SendTime.Record(ctx, time.Since(start).Seconds(), telemetry.Attrs("channel", r.Channel, "sender", r.ID))
	}
	if err == nil {
		w.cfg.Metrics.Count(ctx, func(m *telemetry.Metrics) metricCounter { return m.Sends }, "channel", r.Channel, "sender", r.ID, "outcome", "ok", "code", "")
		w.stick(ctx, d, idx, c)
	}
	return res, err
}

// stick keeps the customer on the sender that just messaged them, when the pool has a choice
// (best effort: a failure only loses the preference).
func (w *Worker) stick(ctx context.Context, d *delivery, idx int, c *choice) {
	if w.cfg.Affinity == nil || c.sticky == c.r.ID || len(w.pools.pool(job.TenantOr(d.job.Tenant), c.r.Channel)) < 2 {
		return
	}
	if err := w.cfg.Affinity.Stick(ctx, job.TenantOr(d.job.Tenant), d.cascade[idx], d.job.To, c.r.ID); err != nil {
		d.log.Debug("sticky sender not kept", "sender", c.r.ID, "err", err)
	}
}

// render looks j's template up for r: white needs one approved in r's WABA, grey and SMS any
// version. A template that is not approved (paused, disabled) blocks only the channels that
// need approval; anything else is the job's fault.
func (w *Worker) render(r *route, j *job.Job, windowOpen bool) (Message, error) {
	m := Message{Job: j, WindowOpen: windowOpen}
	if j.Template == "" {
		return m, nil
	}
	tenant := job.TenantOr(j.Tenant)
	var def *Definition
	var err error
	if r.Channel == job.ChannelWhite {
		def, err = w.templates.LookupIn(tenant, j.Template, j.Language, r.WABA)
	} else {
		def, err = w.templates.Definition(tenant, j.Template, j.Language)
	}
	if err != nil {
		kind := provider.Job
		if errors.Is(err, templates.ErrNotApproved) {
			kind = provider.Channel
		}
		return m, &provider.Error{Kind: kind, Code: "template", Reason: err.Error(), Err: err}
	}
	m.Template = def
	return m, nil
}

// backoff is exponential with full jitter, at least what the provider asked for.
func (w *Worker) backoff(attempt int, after time.Duration) time.Duration {
	d := w.cfg.RetryBaseDelay << min(attempt-1, 20)
	if d > w.cfg.RetryMaxDelay || d <= 0 {
		d = w.cfg.RetryMaxDelay
	}
	d = d/2 + rand.N(d/2+1)
	return max(d, after)
}

func (w *Worker) sendMetric(ctx context.Context, c *choice, ch string, pe *provider.Error) {
	sender := ""
	if c.r != nil {
		sender = c.r.ID
	}
	w.cfg.Metrics.Count(ctx, func(m *telemetry.Metrics) metricCounter { return m.Sends }, "channel", ch, "sender", sender, "outcome", pe.Kind.String(), "code", pe.Code)
}

func (w *Worker) count(ctx context.Context, outcome, ch string) {
	w.cfg.Metrics.Count(ctx, func(m *telemetry.Metrics) metricCounter { return m.Jobs }, "outcome", outcome, "channel", ch)
}
