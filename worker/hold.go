package worker

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/streams"
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

// park holds the job until at (quiet hours, a daily cap, the messaging tier): it stores a
// schedule that releases it then, records why, and lets go of the claim if owner (this
// delivery's claim, or "" when it holds none) has it. Waiting uses up no attempt.
func (w *Worker) park(ctx context.Context, d *delivery, owner string, at time.Time, reason string) *outcome {
	// The schedule runs on the server's clock: convert the worker's (injectable) clock into a
	// delay. Schedules have second precision: round up, never early.
	release := time.Now().Add(at.Sub(w.cfg.Now())).Truncate(time.Second).Add(time.Second)
	sm := scheduleMsg(streams.WaitSubject(d.job.Ref()), d.msg.Data(), d.job, release)
	sm.Header.Set(streams.HeaderWait, reason)
	// One schedule per job and release time, however often this delivery is repeated.
	sm.Header.Set(streams.HeaderMsgID, "wait:"+d.job.Ref()+":"+strconv.FormatInt(release.Unix(), 10))
	for k, v := range d.msg.Headers() {
		if k == "traceparent" || k == "tracestate" {
			sm.Header[k] = v
		}
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := w.js.PublishMsg(pctx, sm); err != nil {
		// Not parked: let go of the claim, so the redelivered copy is not taken for a crash
		// mid-send.
		if owner != "" && !w.release(ctx, d) {
			return leave()
		}
		return storeDown(fmt.Errorf("park until %s: %w", release.Format(time.RFC3339), err))
	}
	old, rec, err := w.store.Settle(ctx, d.job, owner, status.Scheduled, reason+" until "+at.UTC().Format(time.RFC3339), d.cascade)
	if err != nil {
		// The schedule is stored: the job will come back; this copy is done either way.
		d.log.Warn("held job's record not updated", "err", err)
	} else if old != rec.State {
		w.events.publish(ctx, rec)
	}
	d.log.Info("job held", "reason", reason, "until", at.UTC())
	return ack("held", reason, nil, nil)
}

// reportsDelivery tells whether a channel sends delivery reports Herald can wait for.
func reportsDelivery(ch string) bool { return ch == job.ChannelWhite || ch == job.ChannelGrey }

// parkDeadline stores the delivery-deadline schedule of a job just sent on cascade[idx].
// Without HERALD_FALLBACK_AFTER the schedule still parks the job (for a day), so that a
// failed status report can move it on; it then fires as a no-op check.
// It returns the publish's future (nil when there is no next channel).
func (w *Worker) parkDeadline(ctx context.Context, d *delivery, idx int) jetstream.PubAckFuture {
	if idx+1 >= len(d.cascade) || !reportsDelivery(d.cascade[idx]) {
		return nil
	}
	after, deadline := w.cfg.FallbackAfter, "1"
	if after <= 0 {
		after, deadline = 24*time.Hour, "0"
	}
	sm := scheduleMsg(streams.DeadlineSubject(d.job.Ref()), d.msg.Data(), d.job, time.Now().Add(after))
	sm.Header.Set(streams.HeaderCheck, strconv.Itoa(idx))
	sm.Header.Set(streams.HeaderDeadline, deadline)
	sm.Header.Set(streams.HeaderMsgID, "deadline:"+d.job.Ref()+":"+strconv.Itoa(idx))
	// Published without blocking; the job is acknowledged once it is stored (see ackStored),
	// so a worker that dies first leaves the job to a redelivery, which parks it again.
	f, err := w.js.PublishMsgAsync(sm)
	if err != nil {
		d.log.Warn("delivery deadline not published: the job is delivered again later", "err", err)
		return failedPublish(sm, err)
	}
	return f
}

// doneAgain ends a delivery of a job that a worker already settled. On a redelivery, the
// delivery that settled it may have died (or its publish failed) before what it published was
// stored, so it is published again before the delivery is acknowledged (a duplicate of a
// stored one is dropped by its Nats-Msg-Id): a send not yet reported delivered gets its status
// event and delivery deadline, a failed job its event and its DLQ letter, a job suppressed,
// canceled or expired its event. A first delivery is a duplicate publish of the job: its own
// first message was not acknowledged before all that was stored.
//
// A check delivery parks the deadline again only for a send it made itself (on a later
// channel than the one it checks): finding its own channel's send still undelivered, it is
// that send's deadline (or a report's release), and parking again would repeat it forever. A
// failed job gets its letter again only if its worker dead-lettered it (a job failed by a
// provider report has none).
func (w *Worker) doneAgain(ctx context.Context, d *delivery, rec *status.Record) *outcome {
	duplicate := ack("duplicate", "", nil, nil)
	if md, err := d.msg.Metadata(); err != nil || md.NumDelivered <= 1 {
		return duplicate
	}
	switch rec.State {
	case status.Failed:
		if rec.DeadLetter != "" {
			w.events.publish(ctx, rec)
			return deadLetter(failedLetter(rec), "duplicate", "")
		}
	case status.Sent:
		if (d.check != nil && rec.ChannelIdx <= d.check.Idx) || rec.Resume || rec.ChannelIdx >= len(d.cascade) || rec.Channel != d.cascade[rec.ChannelIdx] {
			break
		}
		duplicate.event, duplicate.deadline = w.events.publish(ctx, rec), w.parkDeadline(ctx, d, rec.ChannelIdx)
	case status.Suppressed, status.Canceled, status.Expired:
		duplicate.event = w.events.publish(ctx, rec)
	}
	return duplicate
}

// checkOf reads the fallback-check headers of a delivery.
func checkOf(h nats.Header, fallbackAfter time.Duration) *status.Check {
	idx, err := strconv.Atoi(h.Get(streams.HeaderCheck))
	if err != nil || idx < 0 {
		return &status.Check{Idx: -1}
	}
	c := &status.Check{Idx: idx, Deadline: h.Get(streams.HeaderDeadline) == "1"}
	c.Reason = "not delivered within " + fallbackAfter.String()
	return c
}

// heldError is pace's answer when a limit makes the job wait long (a daily cap, the tier, a
// long penalty): the job is parked until then instead of waiting in the worker.
type heldError struct {
	until  time.Time
	reason string
}

func (e *heldError) Error() string {
	return "held for " + e.reason + " until " + e.until.UTC().Format(time.RFC3339)
}
