package worker

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/telemetry"
)

// Herald's own schedules. A job that must wait long (quiet hours, a daily limit) is parked
// in a JetStream message schedule on herald.hold.wait.<id> instead of being Nak'd: JetStream
// releases it at the right time, no worker holds it meanwhile, and it does not count
// against the consumer's pending limit. A job sent on a channel that reports delivery
// (white, grey) with a next channel left is parked on herald.hold.deadline.<id>: if it has
// not been delivered by then, the copy that fires falls back; a delivered webhook purges it;
// a failed webhook has the API release it at once.

// scheduleMsg builds a schedule that publishes the job data to its priority subject at at.
func scheduleMsg(subject string, data []byte, j *job.Job, at time.Time) *nats.Msg {
	m := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	m.Header.Set(streams.HeaderSchedule, "@at "+at.UTC().Format(time.RFC3339))
	m.Header.Set(streams.HeaderScheduleTarget, streams.SubjectFor(j.Priority))
	return m
}

// waitFor parks the job until at (quiet hours, a daily cap, the messaging tier), records
// why, releases the claim and acks this delivery. Waiting uses up no attempt.
func (w *Worker) waitFor(ctx context.Context, msg jetstream.Msg, j *job.Job, owner string, cascade []string, at time.Time, reason string, log *slog.Logger) {
	// The schedule runs on the server's clock: convert the worker's (injectable) clock into a
	// delay. Schedules have second precision: round up, never early.
	release := time.Now().Add(at.Sub(w.cfg.Now())).Truncate(time.Second).Add(time.Second)
	sm := scheduleMsg(streams.WaitSubject(j.ID), msg.Data(), j, release)
	sm.Header.Set(streams.HeaderWait, reason)
	// One schedule per job and release time, however often this delivery is repeated.
	sm.Header.Set(streams.HeaderMsgID, "wait:"+j.ID+":"+strconv.FormatInt(release.Unix(), 10))
	for k, v := range msg.Headers() {
		if k == "traceparent" || k == "tracestate" {
			sm.Header[k] = v
		}
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := w.js.PublishMsg(pctx, sm); err != nil {
		// Not parked: let go of the claim (if this delivery holds one), so the redelivered
		// copy is not taken for a crash mid-send.
		if owner != "" {
			_, _, _ = w.store.Settle(ctx, j, owner, "", "", cascade)
		}
		w.retryLater(msg, log, fmt.Errorf("park until %s: %w", release.Format(time.RFC3339), err))
		return
	}
	old, rec, err := w.store.Settle(ctx, j, owner, status.Scheduled, reason+" until "+at.UTC().Format(time.RFC3339), cascade)
	if err != nil {
		// The schedule is stored: the job will come back; this copy is done either way.
		log.Warn("held job's record not updated", "err", err)
	} else if old != rec.State {
		w.events.publish(ctx, rec)
	}
	log.Info("job held", "reason", reason, "until", at.UTC())
	w.cfg.Metrics.Count(ctx, func(m *telemetry.Metrics) metricCounter { return m.Jobs }, "outcome", "held", "channel", reason)
	_ = msg.Ack()
}

// reportsDelivery tells whether a channel sends delivery reports Herald can wait for.
func reportsDelivery(ch string) bool { return ch == job.ChannelWhite || ch == job.ChannelGrey }

// parkDeadline stores the delivery-deadline schedule of a job just sent on cascade[idx].
// Without HERALD_FALLBACK_AFTER the schedule still parks the job (for a day), so that a
// failed status report can move it on; it then fires as a no-op check.
// It returns the publish's future (nil when there is no next channel or the publish could not
// be sent).
func (w *Worker) parkDeadline(ctx context.Context, msg jetstream.Msg, j *job.Job, cascade []string, idx int, log *slog.Logger) jetstream.PubAckFuture {
	if idx+1 >= len(cascade) || !reportsDelivery(cascade[idx]) {
		return nil
	}
	after, deadline := w.cfg.FallbackAfter, "1"
	if after <= 0 {
		after, deadline = 24*time.Hour, "0"
	}
	sm := scheduleMsg(streams.DeadlineSubject(j.ID), msg.Data(), j, time.Now().Add(after))
	sm.Header.Set(streams.HeaderCheck, strconv.Itoa(idx))
	sm.Header.Set(streams.HeaderDeadline, deadline)
	sm.Header.Set(streams.HeaderMsgID, "deadline:"+j.ID+":"+strconv.Itoa(idx))
	// Published without blocking; the caller acknowledges the job once it is stored (see
	// ackStored), so a worker that dies first leaves the job to a redelivery, which parks it
	// again. A failure also reaches the async error handler, which retries.
	f, err := w.js.PublishMsgAsync(sm)
	if err != nil {
		log.Warn("delivery deadline not published: the job is delivered again later", "err", err)
		return failedPublish(sm, err)
	}
	return f
}

// eventWait bounds how long a delivery waits for its status event to be stored before it is
// acknowledged anyway: events are best effort (the record is the truth), and an events
// stream that is down must not stop the sending.
const eventWait = time.Second

// ackStored acknowledges the delivery once what it published is stored, so that none of it
// depends on this process outliving its publishes: a worker that dies first leaves the job to
// a redelivery, which finds it settled and publishes again under the same Nats-Msg-Id (see
// doneAgain). The delivery deadline (nil: none) is the SMS fallback: if it fails, or is not
// acknowledged within a third of the ack wait, the delivery is given back for later. The
// status event (nil: none) is waited for up to eventWait and then let go. It reports whether
// the delivery was acknowledged.
func (w *Worker) ackStored(ctx context.Context, msg jetstream.Msg, log *slog.Logger, event, deadline jetstream.PubAckFuture) bool {
	if deadline != nil {
		t := time.NewTimer(max(w.cfg.AckWait/3, time.Second))
		defer t.Stop()
		select {
		case <-deadline.Ok():
		case err := <-deadline.Err():
			log.Warn("delivery deadline not stored: the job is delivered again later", "err", err)
			_ = msg.NakWithDelay(time.Second)
			return false
		case <-t.C:
			log.Warn("delivery deadline not acknowledged in time: the job is delivered again later")
			_ = msg.NakWithDelay(time.Second)
			return false
		case <-ctx.Done():
			return false // stopping hard: not acknowledged, so delivered again
		}
	}
	if event != nil {
		t := time.NewTimer(eventWait)
		defer t.Stop()
		select {
		case <-event.Ok():
		case err := <-event.Err():
			log.Warn("status event not stored", "err", err)
		case <-t.C:
			log.Warn("status event not acknowledged in time")
		case <-ctx.Done():
			return false
		}
	}
	_ = msg.Ack()
	return true
}

// doneAgain handles a plain delivery of a job that a worker already settled. On a
// redelivery, the delivery that settled it may have died (or its publish failed) before what
// it published was stored, so it is published again before the delivery is acknowledged (a
// duplicate of a stored one is dropped by its Nats-Msg-Id): a send not yet reported
// delivered gets its status event and delivery deadline, a failed job its event and its DLQ
// letter, a job suppressed, canceled or expired its event. A first delivery is a duplicate
// publish of the job: its own first message was not acknowledged before all that was stored.
//
// check is the fallback check the delivery carries (nil: the job's own message or a
// replay). A check delivery parks the deadline again only for a send it made itself (on a
// later channel than the one it checks): finding its own channel's send still undelivered,
// it is that send's deadline (or a report's release), and parking again would repeat it
// forever. A failed job gets its letter again only if its worker dead-lettered it (a job
// failed by a provider report has none).
func (w *Worker) doneAgain(ctx context.Context, msg jetstream.Msg, j *job.Job, cascade []string, rec *status.Record, check *status.Check, log *slog.Logger) {
	if md, err := msg.Metadata(); err != nil || md.NumDelivered <= 1 {
		_ = msg.Ack()
		return
	}
	switch rec.State {
	case status.Failed:
		if rec.DeadLetter == "" {
			break
		}
		w.events.publish(ctx, rec)
		w.deadLetterAs(ctx, msg, j.ID, rec.DeadLetter, rec.Reason, failedLetterID(rec))
		return
	case status.Sent:
		if (check != nil && rec.ChannelIdx <= check.Idx) || rec.Resume || rec.ChannelIdx >= len(cascade) || rec.Channel != cascade[rec.ChannelIdx] {
			break
		}
		w.ackStored(ctx, msg, log, w.events.publish(ctx, rec), w.parkDeadline(ctx, msg, j, cascade, rec.ChannelIdx, log))
		return
	case status.Suppressed, status.Canceled, status.Expired:
		w.ackStored(ctx, msg, log, w.events.publish(ctx, rec), nil)
		return
	}
	_ = msg.Ack()
}

// checkOf reads the fallback-check headers of a delivery (nil for a plain job).
func checkOf(h nats.Header, fallbackAfter time.Duration) *status.Check {
	v := h.Get(streams.HeaderCheck)
	if v == "" {
		return nil
	}
	idx, err := strconv.Atoi(v)
	if err != nil || idx < 0 {
		return &status.Check{Idx: -1}
	}
	c := &status.Check{Idx: idx, Deadline: h.Get(streams.HeaderDeadline) == "1"}
	c.Reason = "not delivered within " + fallbackAfter.String()
	return c
}
