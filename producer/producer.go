// Package producer publishes Herald notification jobs to JetStream from any Go service.
//
// Jobs are validated with exactly the rules the worker and the HTTP API apply, so a job
// that Publish accepts will not be rejected later for its shape. The job id is the
// idempotency key end to end: it is sent as Nats-Msg-Id, so a re-publish inside the stream's
// duplicate window is reported as a duplicate instead of being queued twice, and the workers'
// claim in Redis stops any copy that gets past that window.
//
// A job with send_at in the future is published as a JetStream message schedule
// (Nats-Schedule: @at ...) on herald.delayed.<id>; the server moves it to the job subject at
// that time. The OpenTelemetry trace context of ctx travels in the message headers, so a
// job's trace continues in the worker and the provider call.
package producer

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/streams"
)

// Job is the notification job (version 1 of the contract). docs/contracts.md describes every field.
type Job = job.Job

// Media is a job's attached file.
type Media = job.Media

// ValidationError lists every invalid field of a rejected job.
type ValidationError = job.ValidationError

// FieldError names one invalid field of a rejected job (ValidationError.Fields).
type FieldError = job.FieldError

// JobOptions are the validation defaults a Job's Validate method takes (WithDefaults sets
// the producer's own).
type JobOptions = job.Options

// ErrInvalid matches (errors.Is) every validation error: the job can never be sent as it is.
var ErrInvalid = job.ErrInvalid

// Priority lanes of a Job: bulk never delays transactional.
const (
	PriorityTransactional = job.PriorityTransactional
	PriorityBulk          = job.PriorityBulk
)

// Channel names a Job's Channels may list.
const (
	ChannelWhite = job.ChannelWhite
	ChannelGrey  = job.ChannelGrey
	ChannelSMS   = job.ChannelSMS
)

// Media types of a Job's Media.
const (
	MediaImage    = job.MediaImage
	MediaVideo    = job.MediaVideo
	MediaDocument = job.MediaDocument
)

// Publisher is the part of jetstream.JetStream the producer uses.
type Publisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
	PublishMsgAsync(msg *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
}

var _ Publisher = (jetstream.JetStream)(nil)

// Producer publishes jobs. It is safe for concurrent use.
type Producer struct {
	js       Publisher
	opts     job.Options
	inFlight int
	now      func() time.Time
	tracer   trace.Tracer
}

// Option configures a Producer.
type Option func(*Producer)

// WithDefaults sets the validation defaults: the region for national phone formats and the
// template language when a job names none (HERALD_DEFAULT_REGION, HERALD_DEFAULT_LANGUAGE;
// RU and ru when not set).
func WithDefaults(region, language string) Option {
	return func(p *Producer) { p.opts = job.Options{DefaultRegion: region, DefaultLanguage: language} }
}

// WithMaxInFlight bounds the asynchronous publishes PublishBatch keeps waiting for
// acknowledgements (default 4096).
func WithMaxInFlight(n int) Option { return func(p *Producer) { p.inFlight = max(n, 1) } }

// WithClock sets the clock deciding whether send_at is in the future (tests).
func WithClock(now func() time.Time) Option { return func(p *Producer) { p.now = now } }

// New returns a Producer publishing through js (a jetstream.JetStream). The streams must
// exist: `herald api`, `herald worker` and `herald dev` create them at start, and a service
// running without them creates them with worker.EnsureStreams.
func New(js Publisher, opts ...Option) *Producer {
	p := &Producer{js: js, opts: job.Options{DefaultRegion: "RU", DefaultLanguage: "ru"}, inFlight: 4096, now: time.Now,
		tracer: otel.Tracer("github.com/herald-notify/herald/producer")}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Result is the outcome of publishing one job.
type Result struct {
	// ID is the job id.
	ID string `json:"id"`
	// Duplicate is true when JetStream already had a job with this id in its duplicate
	// window: nothing new was queued.
	Duplicate bool `json:"duplicate,omitempty"`
	// Scheduled is true when the job waits for its send_at in a message schedule.
	Scheduled bool `json:"scheduled,omitempty"`
	// Sequence is the stream sequence of the stored message.
	Sequence uint64 `json:"sequence,omitempty"`
	// Err is set, in batch results, when this job was not published.
	Err error `json:"-"`
}

// Validate checks and normalises j in place with the producer's defaults, exactly as Publish
// does; the error is a *ValidationError naming every bad field.
func (p *Producer) Validate(j *Job) error { return j.Validate(p.opts) }

// Decode parses and validates an encoded job, rejecting unknown fields.
func (p *Producer) Decode(data []byte) (*Job, error) { return job.Decode(data, p.opts) }

// Publish validates j (normalising it in place) and publishes it, waiting for JetStream's
// acknowledgement.
func (p *Producer) Publish(ctx context.Context, j *Job) (Result, error) {
	data, err := j.ValidateEncode(p.opts)
	if err != nil {
		return Result{ID: j.ID}, err
	}
	ctx, span := p.tracer.Start(ctx, "herald.publish", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("herald.job_id", j.ID), attribute.String("herald.priority", j.Priority)))
	defer span.End()
	msg, scheduled := p.message(ctx, j, data)
	ack, err := p.js.PublishMsg(ctx, msg)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "publish failed")
		return Result{ID: j.ID}, fmt.Errorf("publish job %s: %w", j.ID, err)
	}
	return Result{ID: j.ID, Duplicate: ack.Duplicate, Scheduled: scheduled, Sequence: ack.Sequence}, nil
}

// PublishBatch validates and publishes many jobs with up to WithMaxInFlight publishes in
// flight, and returns one Result per job in order. A job that fails validation or
// publishing has Err set; the others are published regardless. The error is non-nil only
// when ctx ended before every acknowledgement came back.
func (p *Producer) PublishBatch(ctx context.Context, jobs []*Job) ([]Result, error) {
	results := make([]Result, len(jobs))
	type pending struct {
		i   int
		f   jetstream.PubAckFuture
		sch bool
	}
	window := make([]pending, 0, max(1, min(p.inFlight, len(jobs))))
	drain := func(keep int) error {
		for len(window) > keep {
			pd := window[0]
			window = window[1:]
			select {
			case ack := <-pd.f.Ok():
				results[pd.i] = Result{ID: jobs[pd.i].ID, Duplicate: ack.Duplicate, Scheduled: pd.sch, Sequence: ack.Sequence}
			case err := <-pd.f.Err():
				results[pd.i] = Result{ID: jobs[pd.i].ID, Err: fmt.Errorf("publish job %s: %w", jobs[pd.i].ID, err)}
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	ctx, span := p.tracer.Start(ctx, "herald.publish_batch", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.Int("herald.jobs", len(jobs))))
	defer span.End()
	for i, j := range jobs {
		results[i].ID = j.ID
		data, err := j.ValidateEncode(p.opts)
		if err != nil {
			results[i].Err = err
			continue
		}
		msg, sch := p.message(ctx, j, data)
		f, err := p.js.PublishMsgAsync(msg)
		if err != nil {
			results[i].Err = fmt.Errorf("publish job %s: %w", j.ID, err)
			continue
		}
		window = append(window, pending{i: i, f: f, sch: sch})
		if len(window) >= p.inFlight {
			if err := drain(p.inFlight / 2); err != nil {
				return results, err
			}
		}
	}
	return results, drain(0)
}

// message builds the JetStream message of a valid job from its encoding: the subject of its
// priority, or a schedule on herald.delayed.<id> when send_at is in the future.
func (p *Producer) message(ctx context.Context, j *Job, data []byte) (*nats.Msg, bool) {
	subject := streams.SubjectFor(j.Priority)
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	msg.Header.Set(streams.HeaderMsgID, j.Ref())
	scheduled := j.SendAt != nil && j.SendAt.After(p.now())
	if scheduled {
		msg.Subject = streams.DelayedSubject(j.Ref())
		msg.Header.Set(streams.HeaderSchedule, "@at "+j.SendAt.UTC().Format(time.RFC3339))
		msg.Header.Set(streams.HeaderScheduleTarget, subject)
	}
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(msg.Header))
	return msg, scheduled
}
