package worker

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/telemetry"
)

// maxRepace is how many times a plain delivery gives its claim back because the claim made
// its slot late, before it waits for a new slot under the claim: a CPU-starved worker must
// still make progress.
const maxRepace = 2

// admit decides whether this delivery may send, and takes the job's claim if so.
//
// A claim is held only around the provider call, never through a wait, so that a killed
// worker leaves in doubt only the calls it was making (an expired claim reads as "died during
// the call", and such a job is never resent on that channel). So a plain delivery for a busy
// sender waits for quiet hours and its first channel's slot before it claims, and gives the
// claim back if the claim made the slot late; one for a sender whose slots are free at once
// claims first and takes its slot right after (a slot taken first would be late by the
// claim's round trip). Replays and fallback checks claim first: they carry a history.
func (w *Worker) admit(ctx context.Context, d *delivery) (admission, *outcome) {
	claimFirst := d.mode == modePlain && len(d.cascade) > 0 && w.idle(w.routeFor(ctx, d, 0))
	for try := 0; ; try++ {
		var due time.Time
		if d.mode == modePlain && !claimFirst && !d.job.Expired(w.cfg.Now()) && !w.canceled(d.job) {
			if o := w.quietHours(ctx, d, false); o != nil {
				return admission{}, o
			}
			var o *outcome
			if due, o = w.paceFirst(ctx, d); o != nil {
				return admission{}, o
			}
		}
		adm, o := w.claim(ctx, d)
		if o != nil {
			return admission{}, o
		}
		if d.mode != modePlain || claimFirst {
			// A fallback found at night waits for the morning too, and so does a plain job
			// that claimed before it paced.
			if o := w.quietHours(ctx, d, true); o != nil {
				return admission{}, o
			}
		}
		if adm.Record.ChannelIdx != 0 || len(d.cascade) == 0 || w.routeFor(ctx, d, 0).err != nil {
			return admission{adm, false}, nil // no slot to hold for the first channel
		}
		if claimFirst {
			ok, o := w.slotNow(ctx, d, adm)
			if o != nil || ok {
				return admission{adm, ok}, o
			}
			// The sender is busy (or this recipient must wait): give the claim back and pace
			// first, as for a busy sender.
			claimFirst = false
			if !w.release(ctx, d) {
				return admission{}, leave()
			}
			continue
		}
		// The slot holds if the claim did not make the send late (it would bunch with the next
		// slots at the provider). After maxRepace tries the delivery paces under its claim.
		first := w.routeFor(ctx, d, 0).r
		late := time.Since(due) > lateSlotOf(first.Limit)
		if due.IsZero() || !late || d.mode != modePlain || try >= maxRepace {
			return admission{adm, !due.IsZero() && !late}, nil
		}
		w.cfg.Metrics.Count(ctx, func(m *telemetry.Metrics) metricCounter { return m.LimiterWaits },
			"sender", first.ID, "reason", "late_claim")
		if !w.release(ctx, d) {
			return admission{}, leave()
		}
	}
}

// admission is a claimed delivery's admission: the claim script's answer, and whether the
// first channel's slot, taken before or right after the claim, still holds.
type admission struct {
	status.Admission
	paced bool
}

// paceFirst waits, before any claim, for the first channel's rate-limit slot and returns its
// time (zero when the channel has no sender here).
func (w *Worker) paceFirst(ctx context.Context, d *delivery) (time.Time, *outcome) {
	if len(d.cascade) == 0 {
		return time.Time{}, nil
	}
	c := w.routeFor(ctx, d, 0)
	if c.err != nil {
		return time.Time{}, nil
	}
	due, err := w.pace(ctx, d, 0, w.windowForTier(ctx, c, d.job), paceUnclaimed)
	var held *heldError
	switch {
	case err == nil:
		return due, nil
	case errors.As(err, &held):
		return time.Time{}, w.park(ctx, d, "", held.until, held.reason)
	case errors.Is(err, errStopping), ctx.Err() != nil:
		return time.Time{}, nak()
	default:
		return time.Time{}, storeDown(err)
	}
}

// slotNow takes the first channel's slot right after the claim, only if one is free at once.
// False with no outcome: none is, and the caller gives the claim back and paces first.
func (w *Worker) slotNow(ctx context.Context, d *delivery, adm status.Admission) (bool, *outcome) {
	_, err := w.pace(ctx, d, 0, windowOf(w.routeFor(ctx, d, 0), adm), paceIfFree)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, errBusy):
		return false, nil
	}
	// The limiter's store is failing, or the worker is stopping hard: give the claim back
	// and let the job come again later, as one that paces first would.
	released := w.release(ctx, d)
	if ctx.Err() != nil {
		return false, nak()
	}
	if !released {
		return false, leave()
	}
	return false, storeDown(err)
}

// claim runs the claim script for this delivery and turns every verdict but Claimed into the
// outcome that ends the delivery; for a claimed job it also decides cancellation and expiry,
// while holding the claim, so that neither races a delivery sending the same job.
func (w *Worker) claim(ctx context.Context, d *delivery) (status.Admission, *outcome) {
	lease := w.cfg.AckWait + 10*time.Second
	var adm status.Admission
	var err error
	switch d.mode {
	case modeReplay:
		adm, err = w.store.BeginReplay(ctx, d.job, d.owner, lease, d.cascade)
	case modeCheck:
		adm, err = w.store.BeginCheck(ctx, d.job, d.owner, lease, d.cascade, *d.check)
	default:
		adm, err = w.store.Begin(ctx, d.job, d.owner, lease, d.cascade)
	}
	if err != nil {
		return adm, storeDown(err)
	}
	switch adm.Verdict {
	case status.Done:
		return adm, w.doneAgain(ctx, d, adm.Record)
	case status.Busy:
		return adm, later(adm.Wait + 100*time.Millisecond)
	case status.Ambiguous:
		return adm, w.ambiguous(ctx, d, adm.Record)
	case status.SuppressedVerdict:
		return adm, w.settledAck(ctx, status.Queued, adm.Record, "suppressed")
	}
	if w.canceled(d.job) {
		return adm, w.settleUnsent(ctx, d, status.Canceled, "campaign "+d.job.Campaign+" canceled")
	}
	if d.job.Expired(w.cfg.Now()) {
		return adm, w.settleUnsent(ctx, d, status.Expired, "expires_at passed before sending")
	}
	return adm, nil
}

// ambiguous ends a delivery that found an earlier one died during its provider call: the job
// is not resent on that channel. A send that may have left is not given up either: unless
// the provider reports it delivered (a report by job id names the attempt in doubt) within
// HERALD_FALLBACK_AFTER, the deadline moves the job to its next channel, as for a send that
// was recorded, so a message that never left is not lost.
func (w *Worker) ambiguous(ctx context.Context, d *delivery, rec *status.Record) *outcome {
	d.log.Warn("previous delivery died during its provider call: not resending", "channel", rec.Channel)
	ev := w.events.publish(ctx, rec)
	var deadline jetstream.PubAckFuture
	if rec.State == status.Sent {
		deadline = w.parkDeadline(ctx, d, rec.ChannelIdx)
	}
	return ack("unknown", rec.Channel, ev, deadline)
}

// quietHours parks a job that must not go out at this hour in the recipient's time zone until
// the hours allow it. claimed says whether this delivery holds the claim (it is released).
func (w *Worker) quietHours(ctx context.Context, d *delivery, claimed bool) *outcome {
	if !w.quietApplies(d.job) {
		return nil
	}
	now := w.cfg.Now()
	at := w.quietOf(d.job).Next(now, d.job.To)
	if !at.After(now) {
		return nil
	}
	owner := ""
	if claimed {
		owner = d.owner
	}
	return w.park(ctx, d, owner, at, "quiet_hours")
}

// quietApplies: bulk jobs respect quiet hours, transactional ones do not, unless the job says
// otherwise.
func (w *Worker) quietApplies(j *job.Job) bool {
	if !w.quietOf(j).On() {
		return false
	}
	if j.QuietHours != nil {
		return *j.QuietHours
	}
	return j.Priority == job.PriorityBulk
}

// quietOf is the quiet hours of j's tenant.
func (w *Worker) quietOf(j *job.Job) QuietHours {
	if h, ok := w.cfg.TenantQuietHours[job.TenantOr(j.Tenant)]; ok {
		return h
	}
	return w.cfg.QuietHours
}

// canceled tells whether the job's campaign was canceled by its own tenant: campaigns are
// per tenant, so another tenant's cancel of the same name never stops it.
func (w *Worker) canceled(j *job.Job) bool {
	return j.Campaign != "" && w.cfg.Campaigns != nil && w.cfg.Campaigns.Canceled(job.TenantOr(j.Tenant), j.Campaign)
}

// windowForTier tells, before the claim, whether the customer's 24-hour window is open, when
// it matters to the first channel's slot: with a messaging tier configured, a template to a
// customer in the window is not business-initiated and must not count against it. Without a
// tier nothing asks Redis (the claim reads the window anyway). An error counts as closed: the
// tier is then over-counted, never exceeded.
func (w *Worker) windowForTier(ctx context.Context, c *choice, j *job.Job) bool {
	r := c.r
	if r.Channel != job.ChannelWhite || j.Template == "" || (r.Limit.UniqueDailyMax <= 0 && r.Limit.PortfolioDailyMax <= 0) {
		return false
	}
	if c.windowKnown {
		return c.window
	}
	open, _, err := w.store.Window(ctx, r.PhoneNumberID, j.To)
	return err == nil && open
}

// settleUnsent ends a claimed job that will not be sent (canceled, expired: state with
// reason); if Redis does not answer, the job is delivered again later.
func (w *Worker) settleUnsent(ctx context.Context, d *delivery, state, reason string) *outcome {
	old, rec, err := w.store.Settle(ctx, d.job, d.owner, state, reason, d.cascade)
	if err != nil {
		return storeDown(err)
	}
	return w.settledAck(ctx, old, rec, state)
}

// settledAck acknowledges a job that reached a final state without a send, once its event is
// stored.
func (w *Worker) settledAck(ctx context.Context, old string, rec *status.Record, count string) *outcome {
	o := ack(count, "", nil, nil)
	if old != rec.State {
		o.event = w.events.publish(ctx, rec)
	}
	return o
}
