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
	for ; idx < len(d.cascade); idx++ {
		ch := d.cascade[idx]
		if idx > rec.ChannelIdx {
			_ = d.msg.InProgress() // a fallback: the next channel gets the whole ack wait
		}
		if o := w.paceClaimed(ctx, d, idx, adm); o != nil {
			return o
		}
		// A wait for a slot can be long: an operator may have canceled the campaign meanwhile.
		if w.canceled(d.job) {
			return w.settleUnsent(ctx, d, status.Canceled, "campaign "+d.job.Campaign+" canceled")
		}
		res, err := w.send(ctx, ch, d.job, adm.WindowOpen)
		if err == nil {
			o, fallBack := w.recordSent(ctx, d, idx, attempts, res)
			if !fallBack {
				return o
			}
			attempts = 0
			continue
		}
		if ctx.Err() != nil {
			// Hard stop during the call: the outcome is unknown; the claim stays and expires
			// into 'unknown' rather than risking a second send.
			return leave()
		}
		pe := provider.Classify(err)
		w.sendMetric(ctx, ch, pe)
		w.feedback(ctx, ch, d.job, pe.Code, d.log)
		o, next := w.recordFailure(ctx, d, idx, attempts+1, pe)
		if !next {
			return o
		}
		attempts = 0
	}
	// Only a cascade with no channel left to try gets here.
	ch := ""
	if len(d.cascade) > 0 {
		ch = d.cascade[len(d.cascade)-1]
	}
	none := &provider.Error{Kind: provider.Channel, Reason: "every channel failed, last: no channel in the cascade"}
	return w.fail(ctx, d, ch, len(d.cascade)-1, attempts, none, "exhausted")
}

// paceClaimed waits, under the claim, for channel idx's slot, unless admit already holds it.
// A long wait parks the job; a stop gives the claim back.
func (w *Worker) paceClaimed(ctx context.Context, d *delivery, idx int, adm admission) *outcome {
	ch := d.cascade[idx]
	if _, ok := w.senders[ch]; !ok || (idx == 0 && adm.paced) {
		return nil
	}
	_, err := w.pace(ctx, d, idx, adm.WindowOpen, paceClaimed)
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
	// Permanent for the channel, or the sender refused. The grey adapter has its own circuit
	// breaker (with probes); the others stop here.
	if pe.Kind == provider.Sender && ch != job.ChannelGrey {
		w.stopSender(ctx, ch, pe, d.log)
	}
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

// send renders j for ch and sends it.
func (w *Worker) send(ctx context.Context, ch string, j *job.Job, windowOpen bool) (Result, error) {
	s, ok := w.senders[ch]
	if !ok || s == nil {
		return Result{}, &provider.Error{Kind: provider.Channel, Code: "not_configured", Reason: ch + " channel is not configured"}
	}
	if until, ok := w.senderDown.Load(ch); ok && time.Now().Before(until.(time.Time)) {
		return Result{}, &provider.Error{Kind: provider.Channel, Code: "sender_stopped",
			Reason: ch + " sender stopped after an account error; retried from " + until.(time.Time).UTC().Format(time.RFC3339)}
	}
	m, err := w.render(ch, j, windowOpen)
	if err != nil {
		return Result{}, err
	}
	sctx, cancel := context.WithTimeout(ctx, w.cfg.SendTimeout)
	defer cancel()
	start := time.Now()
	res, err := s.Send(sctx, m)
	if mt := w.cfg.Metrics; mt != nil {
		mt.SendTime.Record(ctx, time.Since(start).Seconds(), telemetry.Attrs("channel", ch))
	}
	if err == nil {
		w.cfg.Metrics.Count(ctx, func(m *telemetry.Metrics) metricCounter { return m.Sends }, "channel", ch, "outcome", "ok", "code", "")
	}
	return res, err
}

// render looks j's template up for ch: white needs an approved one, grey and SMS any version.
// A template that is not approved (paused, disabled) blocks only the channels that need
// approval; anything else is the job's fault.
func (w *Worker) render(ch string, j *job.Job, windowOpen bool) (Message, error) {
	m := Message{Job: j, WindowOpen: windowOpen}
	if j.Template == "" {
		return m, nil
	}
	lookup := w.templates.Lookup
	if ch != job.ChannelWhite {
		lookup = w.templates.Definition
	}
	def, err := lookup(job.TenantOr(j.Tenant), j.Template, j.Language)
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

func (w *Worker) sendMetric(ctx context.Context, ch string, pe *provider.Error) {
	w.cfg.Metrics.Count(ctx, func(m *telemetry.Metrics) metricCounter { return m.Sends }, "channel", ch, "outcome", pe.Kind.String(), "code", pe.Code)
}

func (w *Worker) count(ctx context.Context, outcome, ch string) {
	w.cfg.Metrics.Count(ctx, func(m *telemetry.Metrics) metricCounter { return m.Jobs }, "outcome", outcome, "channel", ch)
}
