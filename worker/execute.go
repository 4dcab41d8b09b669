package worker

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/phone"
	"github.com/herald-notify/herald/internal/ratelimit"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/templates"
)

// One delivery of a job message goes through four steps, each a function returning the
// outcome that ends the delivery (nil: go on):
//
//	open    decode the job, or dead-letter it          (this file)
//	admit   quiet hours, slot, claim, verdict,         (admit.go)
//	        cancellation and expiry
//	deliver per channel of the cascade:                (deliver.go)
//	        pace, render, send, record
//	dispose ack, nak, terminate or dead-letter         (dispose.go: the only place that does)

// mode is how a delivery came to the worker.
type mode int

const (
	// modePlain is a job's own message (or a producer's schedule firing).
	modePlain mode = iota
	// modeReplay is a job re-queued from the DLQ by an operator.
	modeReplay
	// modeCheck is a fallback check: the delivery deadline firing, or a failed report
	// releasing the job to its next channel.
	modeCheck
)

// delivery is one delivery of one job: what every step of the pipeline works on.
type delivery struct {
	msg     *liveMsg
	job     *job.Job
	cascade []string
	// owner names this delivery in the job's claim: worker, stream sequence, delivery count.
	owner string
	mode  mode
	check *status.Check // the fallback check (modeCheck)
	log   *slog.Logger
	// slot is the first channel's last rate-limit reservation: one that goes unused (the
	// claim made it late) is replaced by the next ask, so the send is not held back by its own
	// pair or daily entries.
	slot ratelimit.Decision
	// slotRoute is the sender slot was reserved on.
	slotRoute *route
	// routes are the senders picked for the cascade's channels, by index (nil: not yet).
	routes []*choice
}

// handle processes one delivery. It never panics on input: a job it cannot decode goes to
// the DLQ, and so does one whose handling panicked (a bug must not take the fleet down).
func (w *Worker) handle(ctx context.Context, msg jetstream.Msg, sl *slot) {
	if m := w.cfg.Metrics; m != nil {
		m.InFlight.Add(ctx, 1)
		defer m.InFlight.Add(ctx, -1)
	}
	ctx = otel.GetTextMapPropagator().Extract(ctx, propagation.HeaderCarrier(msg.Headers()))
	ctx, span := w.tracer.Start(ctx, "herald.process", trace.WithSpanKind(trace.SpanKindConsumer))
	defer span.End()
	log := w.log
	defer func() {
		if r := recover(); r != nil {
			log.Error("worker: panic while handling a job", "panic", fmt.Sprint(r))
			w.dispose(ctx, msg, log, deadLetter(streamLetter(msg, "", "", "panic", fmt.Sprintf("worker panic: %v", r)), "", ""))
		}
	}()
	d, o := w.open(ctx, msg, sl)
	if d != nil {
		defer d.msg.close()
		msg, log = d.msg, d.log
		span.SetAttributes(attribute.String("herald.job_id", d.job.ID))
	}
	if o == nil {
		var adm admission
		if adm, o = w.admit(ctx, d); o == nil {
			o = w.deliver(ctx, d, adm)
		}
	}
	if o.act == actDeadLetter && o.letter.reason == "invalid" {
		span.SetStatus(codes.Error, "invalid job")
	}
	w.dispose(ctx, msg, log, o)
}

// open decodes the job and sets the delivery up; a job that cannot be decoded or validated
// is settled rejected (when it has a usable id) and dead-lettered.
func (w *Worker) open(ctx context.Context, msg jetstream.Msg, sl *slot) (*delivery, *outcome) {
	md, err := msg.Metadata()
	if err != nil {
		// Not a JetStream delivery (a custom consumer's message): it cannot be redelivered,
		// so it is dead-lettered with its data rather than dropped without a trace.
		id, tenant := bestEffortID(msg.Data())
		w.log.Warn("message without JetStream metadata: dead-lettered", "job", id, "err", err)
		return nil, deadLetter(streamLetter(msg, id, tenant, "invalid", "no JetStream metadata: "+err.Error()), "rejected", "")
	}
	if md.NumDelivered > 1 {
		w.log.Debug("redelivery", "delivered", md.NumDelivered, "stream_seq", md.Sequence.Stream)
	}
	j, err := job.Decode(msg.Data(), w.cfg.Jobs)
	if err != nil {
		id, tenant := bestEffortID(msg.Data())
		return nil, w.reject(ctx, msg, id, tenant, err)
	}
	// A marketing template honours the customer's marketing stop (the claim checks it): the
	// category is the catalogue's, never the producer's word.
	if j.Template != "" {
		if def, err := w.templates.Definition(job.TenantOr(j.Tenant), j.Template, j.Language); err == nil && def.Category == templates.CategoryMarketing {
			j.Marketing = true
		}
	}
	lm := newLiveMsg(msg, w.cfg.AckWait)
	lm.slot = sl
	d := &delivery{
		msg: lm, job: j, cascade: w.route(j),
		owner: w.owner + ":" + strconv.FormatUint(md.Sequence.Stream, 10) + ":" + strconv.FormatUint(md.NumDelivered, 10),
		log:   w.log.With("job", j.ID, "to", phone.Mask(j.To)),
	}
	switch {
	case msg.Headers().Get(streams.HeaderCheck) != "":
		d.mode, d.check = modeCheck, checkOf(msg.Headers(), w.cfg.FallbackAfter)
	case msg.Headers().Get(streams.HeaderReplay) != "":
		d.mode = modeReplay
	}
	return d, nil
}

// reject settles an invalid job rejected (when its id is usable, so that a status lookup
// says why) and dead-letters it.
func (w *Worker) reject(ctx context.Context, msg jetstream.Msg, id, tenant string, verr error) *outcome {
	w.log.Warn("invalid job", "job", id, "err", verr.Error())
	if id != "" {
		if old, rec, err := w.store.Settle(ctx, &job.Job{ID: id, Tenant: tenant}, "", status.Rejected, verr.Error(), nil); err == nil && old != rec.State {
			w.events.publish(ctx, rec)
		}
	}
	return deadLetter(streamLetter(msg, id, tenant, "invalid", verr.Error()), "rejected", "")
}

// bestEffortID is the id and tenant of an undecodable job when its id is a valid one (they
// name the record).
func bestEffortID(data []byte) (id, tenant string) {
	id, tenant = job.Peek(data)
	if (&job.Job{ID: id}).ValidateID() != nil {
		return "", ""
	}
	return id, tenant
}

// route returns the job's cascade: its own channels, else its tenant's, else the default.
func (w *Worker) route(j *job.Job) []string {
	if len(j.Channels) > 0 {
		return j.Channels
	}
	if chs, ok := w.cfg.TenantChannels[job.TenantOr(j.Tenant)]; ok {
		return chs
	}
	return w.cfg.Channels
}
