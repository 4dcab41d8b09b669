package worker

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"

	"github.com/herald-notify/herald/internal/grey"
	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/provider"
	"github.com/herald-notify/herald/internal/quiet"
	"github.com/herald-notify/herald/internal/ratelimit"
	"github.com/herald-notify/herald/internal/sms"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/telemetry"
	"github.com/herald-notify/herald/internal/templates"
	"github.com/herald-notify/herald/internal/white"
)

// The worker's API is built on types that live in internal packages, shared with the API
// and the tools. Another module cannot import those, so every one of them that the API
// reaches is re-exported here under a public name, as an alias: a value is the same type
// inside Herald and out, and an outside implementation of Store, Templates, Sender or
// Limiter names exactly what the worker passes it. TestExportedAPINamesNoInternalType keeps
// this list complete.

// Jobs.

// Job is the notification job (version 1 of the contract); producer.Job is the same type.
type Job = job.Job

// Media is a file attached to a job: a template's media header, a media message, a link.
type Media = job.Media

// JobOptions are the deployment defaults job validation applies (region, language).
type JobOptions = job.Options

// Channel names, as a job's channels and Config.Channels list them.
const (
	ChannelWhite = job.ChannelWhite
	ChannelGrey  = job.ChannelGrey
	ChannelSMS   = job.ChannelSMS
)

// Priority lanes of a job: bulk never delays transactional.
const (
	PriorityTransactional = job.PriorityTransactional
	PriorityBulk          = job.PriorityBulk
)

// Templates.

// DefaultTenant is the tenant of a job that names none.
const DefaultTenant = job.DefaultTenant

// JobRef is a job's tenant-qualified id, "<tenant>/<id>" (Job.Ref): what keys its record and
// claim, and what the Store's Attempt is given. One tenant's id never names another's job.
func JobRef(tenant, id string) string { return job.Ref(tenant, id) }

// BreakerState is a grey instance's circuit breaker state (Grey.Breaker).
type BreakerState = grey.BreakerState

// Definition is one WhatsApp template in one language, in the Graph API's JSON format. A
// Definition built in Go must be compiled with its Validate method before it is rendered.
type Definition = templates.Definition

// WABAReview is Meta's review of a Definition in one WhatsApp Business Account.
type WABAReview = templates.WABAReview

// TemplateComponent is a HEADER, BODY, FOOTER or BUTTONS part of a Definition.
type TemplateComponent = templates.Component

// TemplateButton is one button of a BUTTONS component.
type TemplateButton = templates.Button

// TemplateExample holds the sample values Meta's review requires for every variable.
type TemplateExample = templates.Example

// NamedExample is the sample value of one named template variable.
type NamedExample = templates.NamedExample

// TemplateInput is what a job gives its template when rendered: params, media, buttons.
type TemplateInput = templates.Input

// WhiteTemplate is a rendered Cloud API "template" object (Definition.RenderWhite).
type WhiteTemplate = templates.WhiteTemplate

// TemplateLanguage is the language of a rendered WhiteTemplate.
type TemplateLanguage = templates.Language

// SendComponent is one component of a rendered WhiteTemplate, with its parameters.
type SendComponent = templates.SendComponent

// SendParameter is one parameter of a SendComponent.
type SendParameter = templates.SendParameter

// MediaLink is a media header given by URL in a SendParameter.
type MediaLink = templates.MediaLink

// Values of a Definition a Templates implementation needs to build one in Go.
const (
	// TemplateApproved is the status Templates.Lookup requires: only an approved
	// template goes to WhatsApp.
	TemplateApproved = templates.StatusApproved
	ComponentHeader  = templates.ComponentHeader
	ComponentBody    = templates.ComponentBody
	ComponentFooter  = templates.ComponentFooter
	ComponentButtons = templates.ComponentButtons
)

// Errors a Templates implementation returns (wrapped, with detail). The worker tells them
// apart: ErrNotApproved rules out the white channel only (grey and SMS need no approval);
// any other error fails the job.
var (
	// ErrUnknownTemplate: no template of that name in any language.
	ErrUnknownTemplate = templates.ErrUnknownTemplate
	// ErrUnknownLanguage: the template exists, not in the requested language.
	ErrUnknownLanguage = templates.ErrUnknownLanguage
	// ErrNotApproved: the template exists but its status is not APPROVED.
	ErrNotApproved = templates.ErrNotApproved
)

// ParseDefinition parses and compiles a definition in the Graph API's JSON format.
func ParseDefinition(data []byte) (*Definition, error) { return templates.ParseDefinition(data) }

// Status records: what a Store keeps and answers.

// Record is the status of one notification: its state, claim and attempt history.
type Record = status.Record

// Attempt is one channel attempt (or one retry of it) in a Record's history. Its State is
// sent, delivered, read, failed, retry (a passing failure) or unknown (the worker died
// during the provider call).
type Attempt = status.Attempt

// StatusChange is one provider report that changed an Attempt's state, with its time.
type StatusChange = status.StatusChange

// Claim is the lease one delivery holds on a job while it sends it.
type Claim = status.Claim

// Admission is a Store's answer to Begin, BeginReplay and BeginCheck.
type Admission = status.Admission

// Verdict is what an Admission decided.
type Verdict = status.Verdict

// Admission verdicts.
const (
	// VerdictClaimed: this delivery now holds the job; the worker sends it.
	VerdictClaimed = status.Claimed
	// VerdictDone: the job was handled before (sent, or final): the delivery is a duplicate.
	VerdictDone = status.Done
	// VerdictBusy: another delivery holds a live claim; the worker tries again after
	// Admission.Wait.
	VerdictBusy = status.Busy
	// VerdictAmbiguous: the previous holder's claim ran out during its provider call; the
	// attempt is recorded as unknown and the job is never resent on that channel.
	VerdictAmbiguous = status.Ambiguous
	// VerdictSuppressed: the recipient opted out; the record is now suppressed.
	VerdictSuppressed = status.SuppressedVerdict
)

// Check makes a delivery a fallback check on one attempt (Store.BeginCheck).
type Check = status.Check

// Outcome is the result of one send attempt, recorded with Store.Attempt.
type Outcome = status.Outcome

// Mode is the kind of an Outcome.
type Mode = status.Mode

// Outcome modes.
const (
	ModeSent     = status.ModeSent
	ModeRetry    = status.ModeRetry
	ModeFallback = status.ModeFallback
	ModeFailed   = status.ModeFailed
)

// Notification states, a Record's State.
const (
	StateQueued     = status.Queued
	StateScheduled  = status.Scheduled
	StateSent       = status.Sent
	StateDelivered  = status.Delivered
	StateRead       = status.Read
	StateFailed     = status.Failed
	StateExpired    = status.Expired
	StateSuppressed = status.Suppressed
	StateRejected   = status.Rejected
	StateCanceled   = status.Canceled
)

// Errors of the Store contract.
var (
	// ErrRecordNotFound: Store.Attempt found no record for the job (Redis lost it); the
	// worker claims the job again to write it back.
	ErrRecordNotFound = status.ErrNotFound
	// ErrBusy: Store.Settle found another delivery holding a live claim on the job.
	ErrBusy = status.ErrBusy
)

// IsTerminal tells whether a state is final: failed, expired, suppressed, rejected, canceled.
func IsTerminal(state string) bool { return status.Terminal(state) }

// NewRecord is the first record of a job, in state with the cascade channels, as the Redis
// store writes it when a job is first claimed or settled: an outside Store starts from it.
func NewRecord(j *Job, state string, channels []string, now time.Time) *Record {
	return status.NewRecord(j, state, channels, now)
}

// RedisStore is the Redis implementation of Store (NewRedisStore).
type RedisStore = status.Store

// History is the durable history finished records move to (RedisStore.WithArchive): the
// herald-history JetStream bucket, opened with NewHistory. An embedding service that gives
// its store one keeps Redis to the records still moving, as herald worker does.
type History = status.Archive

// NewHistory returns the history in kv (the herald-history bucket, created by Herald's
// provisioning) with its archivers, which stop when ctx ends; log reports records that could
// not be archived (they keep their full TTL in Redis).
func NewHistory(ctx context.Context, kv jetstream.KeyValue, log *slog.Logger) *History {
	return status.NewArchive(ctx, kv, log)
}

// StatusReport is a provider's status report on one message (RedisStore.Apply).
type StatusReport = status.Report

// CampaignCounters are a campaign's counters (RedisStore.Campaign).
type CampaignCounters = status.CampaignCounters

// Sends.

// ProviderError is a classified send failure: what a Sender returns (possibly wrapped) to
// tell the worker to retry, fall back or fail the job. Any other error is retried.
type ProviderError = provider.Error

// ErrorKind classifies a ProviderError.
type ErrorKind = provider.Kind

// Failure kinds, from the most to the least hopeful.
const (
	// KindRetry: a passing failure; the same channel is tried again after a backoff.
	KindRetry = provider.Retry
	// KindChannel: this channel can never deliver this job; the next channel is tried now.
	KindChannel = provider.Channel
	// KindSender: the sender itself is unusable (account, token); the channel is stopped
	// for every job for a while and jobs fall back.
	KindSender = provider.Sender
	// KindJob: the job can never be delivered anywhere; it is dead-lettered.
	KindJob = provider.Job
)

// WhiteMessage is what White hands its WhiteClient: a rendered Cloud API send.
type WhiteMessage = white.Message

// GreyMessage is what Grey hands its GreyClient.
type GreyMessage = grey.Message

// SMSMessage is what SMS hands its SMSClient.
type SMSMessage = sms.Message

// Pacing.

// LimitRequest is one intended send, as the worker asks a Limiter to reserve it.
type LimitRequest = ratelimit.Request

// LimitDecision is a Limiter's answer to a LimitRequest.
type LimitDecision = ratelimit.Decision

// LimitReason says which rule denied a LimitRequest.
type LimitReason = ratelimit.Reason

// Reasons a LimitDecision that is not allowed carries. The worker waits out a short denial
// and parks the job in a schedule for a daily cap or the tier.
const (
	ReasonRate           = ratelimit.ReasonRate
	ReasonPair           = ratelimit.ReasonPair
	ReasonRecipientDaily = ratelimit.ReasonRecipientDaily
	ReasonSenderDaily    = ratelimit.ReasonSenderDaily
	ReasonTier           = ratelimit.ReasonTier
	ReasonPenalty        = ratelimit.ReasonPenalty
)

// QuietHours is a daily quiet period in the recipient's local time; the zero value never
// holds a job.
type QuietHours = quiet.Hours

// ParseQuietHours reads "21:00-09:00" or "off" (HERALD_QUIET_HOURS).
func ParseQuietHours(s string) (QuietHours, error) { return quiet.Parse(s) }

// Telemetry.

// Metrics are Herald's OpenTelemetry instruments; a nil *Metrics records nothing.
type Metrics = telemetry.Metrics

// NewMetrics creates Herald's instruments on meter, for Config.Metrics.
func NewMetrics(meter metric.Meter) (*Metrics, error) { return telemetry.NewMetrics(meter) }
