package worker

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/telemetry"
)

// action is what becomes of a delivery's message.
type action int

const (
	// actAck acknowledges the message once what the delivery published is stored (see
	// ackStored).
	actAck action = iota
	// actNak hands the message back at once (the worker is stopping, or a wait was cut short).
	actNak
	// actLater hands the message back for redelivery after delay.
	actLater
	// actStoreDown hands it back after an infrastructure error and pauses the lanes until
	// Redis answers (fail closed: never send without a claim).
	actStoreDown
	// actDeadLetter publishes the job to the DLQ, then terminates the message.
	actDeadLetter
	// actLeave does nothing: a hard stop left the message to JetStream's redelivery, and the
	// claim (if any) to expire.
	actLeave
)

// outcome is how a step ends a delivery: every step of the pipeline returns one (or nil to
// go on), and dispose alone carries it out.
type outcome struct {
	act   action
	delay time.Duration // actLater
	err   error         // actStoreDown: the cause, logged once
	// event and deadline (actAck) are the status event and delivery deadline published for
	// the job; the message is acknowledged once they are stored (nil: none).
	event, deadline jetstream.PubAckFuture
	letter          letter // actDeadLetter
	// count is the herald_jobs outcome to count once the disposition is carried out ("":
	// none), on channel.
	count, channel string
}

// letter is a dead letter: the job's id and tenant (when it has a usable id), why it could
// not be sent, and the Nats-Msg-Id that makes repeated letters of one failure a single letter.
type letter struct {
	id, tenant, reason, detail, msgID string
}

// ack, later, storeDown and leave are the common outcomes.
func ack(count, channel string, event, deadline jetstream.PubAckFuture) *outcome {
	return &outcome{act: actAck, count: count, channel: channel, event: event, deadline: deadline}
}

func later(d time.Duration) *outcome { return &outcome{act: actLater, delay: d} }

func storeDown(err error) *outcome { return &outcome{act: actStoreDown, err: err} }

func nak() *outcome { return &outcome{act: actNak} }

func leave() *outcome { return &outcome{act: actLeave} }

// deadLetter is the outcome of a job that can never be sent.
func deadLetter(l letter, count, channel string) *outcome {
	return &outcome{act: actDeadLetter, letter: l, count: count, channel: channel}
}

// dispose carries out a delivery's outcome: it is the only place where a message is
// acknowledged, handed back, terminated or dead-lettered.
func (w *Worker) dispose(ctx context.Context, msg jetstream.Msg, log *slog.Logger, o *outcome) {
	switch o.act {
	case actAck:
		w.ackStored(ctx, msg, log, o.event, o.deadline)
	case actNak:
		_ = msg.Nak()
	case actLater:
		_ = msg.NakWithDelay(o.delay)
	case actStoreDown:
		if w.storeDown.CompareAndSwap(false, true) {
			log.Warn("state store unavailable: pausing until it answers; job delayed", "err", o.err)
		}
		_ = msg.NakWithDelay(2*time.Second + rand.N(time.Second))
	case actDeadLetter:
		if !w.publishLetter(ctx, msg, log, o.letter) {
			_ = msg.NakWithDelay(5 * time.Second)
			return // not counted: the job comes again
		}
		_ = msg.TermWithReason(o.letter.reason)
	case actLeave:
		return
	}
	if o.count != "" {
		w.count(ctx, o.count, o.channel)
	}
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
// status event (nil: none) is waited for up to eventWait and then let go.
func (w *Worker) ackStored(ctx context.Context, msg jetstream.Msg, log *slog.Logger, event, deadline jetstream.PubAckFuture) {
	if deadline != nil {
		t := time.NewTimer(max(w.cfg.AckWait/3, time.Second))
		defer t.Stop()
		select {
		case <-deadline.Ok():
		case err := <-deadline.Err():
			log.Warn("delivery deadline not stored: the job is delivered again later", "err", err)
			_ = msg.NakWithDelay(time.Second)
			return
		case <-t.C:
			log.Warn("delivery deadline not acknowledged in time: the job is delivered again later")
			_ = msg.NakWithDelay(time.Second)
			return
		case <-ctx.Done():
			return // stopping hard: not acknowledged, so delivered again
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
			return
		}
	}
	_ = msg.Ack()
}

// publishLetter publishes the original job to herald.dlq.<reason> with why it failed; false
// when the DLQ did not take it (the message is then delivered again later).
func (w *Worker) publishLetter(ctx context.Context, msg jetstream.Msg, log *slog.Logger, l letter) bool {
	var attempts uint64
	if md, _ := msg.Metadata(); md != nil {
		attempts = md.NumDelivered
	}
	dl := &nats.Msg{Subject: streams.DLQSubject(l.reason), Data: msg.Data(), Header: nats.Header{}}
	dl.Header.Set(streams.HeaderReason, l.reason)
	dl.Header.Set(streams.HeaderError, truncate(l.detail, 1000))
	dl.Header.Set(streams.HeaderAttempts, strconv.FormatUint(attempts, 10))
	dl.Header.Set(streams.HeaderSubject, msg.Subject())
	if l.id != "" {
		dl.Header.Set(streams.HeaderJobID, l.id)
		dl.Header.Set(streams.HeaderTenant, job.TenantOr(l.tenant))
	}
	dl.Header.Set(streams.HeaderMsgID, l.msgID)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := w.js.PublishMsg(pctx, dl); err != nil {
		log.Error("DLQ publish failed; job will be redelivered", "job", l.id, "err", err)
		return false
	}
	w.cfg.Metrics.Count(ctx, func(m *telemetry.Metrics) metricCounter { return m.DeadLetts }, "reason", l.reason)
	return true
}

// streamLetter is the letter of a message that failed before it had a record (invalid,
// panic): one per stream message and id.
func streamLetter(msg jetstream.Msg, id, tenant, reason, detail string) letter {
	seq := "0"
	if md, _ := msg.Metadata(); md != nil {
		seq = strconv.FormatUint(md.Sequence.Stream, 10)
	}
	return letter{id: id, tenant: tenant, reason: reason, detail: detail, msgID: "dlq:" + seq + ":" + id}
}

// failedLetter is the letter of a failed job: one per failure of the job (a replayed job that
// fails again has a longer history), the same for every delivery that writes it (see
// doneAgain).
func failedLetter(rec *status.Record) letter {
	return letter{id: rec.ID, tenant: rec.Tenant, reason: rec.DeadLetter, detail: rec.Reason,
		msgID: "dlq:" + rec.Ref() + ":" + strconv.Itoa(len(rec.History))}
}

// release gives back this delivery's claim on a job it has not sent: before it waits for a
// slot, when a wait is cut short, or when the job could not be parked. It is the one way a
// claim is given back. Until Redis has answered the claim may or may not be held, and neither
// waiting under it (a kill would leave the job in doubt) nor sending without it is safe, so it
// is retried, the message kept alive, until Redis answers. The first try runs even when the
// worker is stopping hard, so that the redelivered copy is not taken for a crash mid-send.
// False: the claim could not be given back before the hard stop.
func (w *Worker) release(ctx context.Context, d *delivery) bool {
	delay := 200 * time.Millisecond
	for failed := false; ; failed = true {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		_, _, err := w.store.Settle(tctx, d.job, d.owner, "", "", d.cascade)
		cancel()
		if err == nil {
			if failed && w.storeDown.CompareAndSwap(true, false) {
				d.log.Info("state store reachable again: resuming")
			}
			return true
		}
		if w.storeDown.CompareAndSwap(false, true) {
			d.log.Warn("state store unavailable: retrying to give a claim back", "err", err)
		}
		if err := w.sleep(ctx, d.msg, delay, false); err != nil {
			return false
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// giveBack releases the claim of a delivery whose wait was cut short (the worker is
// stopping) and hands its message back.
func (w *Worker) giveBack(ctx context.Context, d *delivery) *outcome {
	w.release(ctx, d)
	return nak()
}

// truncate cuts s to at most n bytes, on a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
