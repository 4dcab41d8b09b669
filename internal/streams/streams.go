// Package streams names Herald's JetStream resources and provisions them idempotently:
// every process calls Ensure at start, and CreateOrUpdate makes that safe to run from any
// number of processes at once and to re-run after a configuration change.
package streams

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Names of streams, subjects, consumers and buckets: the contract in docs/contracts.md.
const (
	JobsStream   = "HERALD_JOBS"
	EventsStream = "HERALD_EVENTS"
	DLQStream    = "HERALD_DLQ"
	// OptOutStream is the log of opt-out changes on herald.events.optout, for the business
	// systems that follow it. It is bounded (OptOutLogMaxAge, OptOutLogMaxMsgs) once its
	// events are in ConsentKV, which holds the truth.
	OptOutStream = "HERALD_OPTOUT"
	// ConsentKV holds consent as the latest event per number (key: the number's digits;
	// "marketing.<scope>.<digits>" for marketing preferences): bounded by the numbers there
	// are, however many events a sender floods it with.
	ConsentKV = "herald-consent"
	// ConsentMigrated is the ConsentKV key written once every event of the unbounded
	// HERALD_OPTOUT of earlier versions is in the bucket: from then on the log is bounded.
	ConsentMigrated = "migrated"
	TemplatesKV     = "herald-templates"
	// CampaignsKV holds campaign metadata (template, jobs queued, canceled), watched by workers.
	CampaignsKV = "herald-campaigns"
	// HistoryKV is the durable history of finished notification records (internal/status,
	// archive.go): n.<tenant>.<id> → the record's JSON, m.<message id> → its job ref, each
	// kept HistoryMaxAge after its last write. Redis keeps a finished record HERALD_HOT_TTL
	// only; readers find it here after.
	HistoryKV = "herald-history"

	SubjectTransactional = "herald.jobs.transactional"
	SubjectBulk          = "herald.jobs.bulk"
	SubjectDelayedPrefix = "herald.delayed."
	// SubjectHoldPrefix holds Herald's own schedules for a job: the delivery deadline
	// (herald.hold.deadline.<id>) and waits for quiet hours or a daily limit
	// (herald.hold.wait.<id>). They live apart from herald.delayed.<id> so that no job id can
	// name another job's schedule.
	SubjectHoldPrefix   = "herald.hold."
	SubjectStatusPrefix = "herald.events.status."
	SubjectInbound      = "herald.events.inbound"
	SubjectOptOut       = "herald.events.optout"
	SubjectDLQPrefix    = "herald.dlq."

	ConsumerTransactional = "herald-transactional"
	ConsumerBulk          = "herald-bulk"
)

// Message headers Herald sets.
const (
	HeaderMsgID          = "Nats-Msg-Id"
	HeaderSchedule       = "Nats-Schedule"
	HeaderScheduleTarget = "Nats-Schedule-Target"
	HeaderReason         = "Herald-Reason"
	HeaderError          = "Herald-Error"
	HeaderAttempts       = "Herald-Attempts"
	HeaderJobID          = "Herald-Job-Id"
	// HeaderTenant names a dead letter's tenant, so that a tenant's view shows only its own.
	HeaderTenant  = "Herald-Tenant"
	HeaderSubject = "Herald-Subject"
	// HeaderReplay marks a job replayed from the DLQ.
	HeaderReplay = "Herald-Replay"
	// HeaderCheck marks a fallback check: the cascade index of the attempt it is about.
	HeaderCheck = "Herald-Check"
	// HeaderDeadline ("1") makes a check the delivery deadline: not delivered yet, fall back.
	HeaderDeadline = "Herald-Deadline"
	// HeaderWait names why a job was held (quiet_hours, tier, recipient_daily...).
	HeaderWait = "Herald-Wait"
)

// Options size the resources.
type Options struct {
	// Replicas of every stream and the bucket: 1 on one node, 3 in a cluster.
	Replicas int
	// DuplicateWindow is how long JetStream remembers a Nats-Msg-Id on HERALD_JOBS.
	DuplicateWindow time.Duration
	// EventsMaxAge and DLQMaxAge bound retention (7 and 30 days by default).
	EventsMaxAge, DLQMaxAge time.Duration
	// AckWait is how long a worker holds a job before JetStream redelivers it; it must exceed
	// the longest send plus the idempotency lease.
	AckWait time.Duration
	// MaxAckPending bounds the jobs in flight per consumer across the fleet.
	MaxAckPending int
	// CampaignsMaxAge is how long a campaign's entry in CampaignsKV lives after its last
	// change (HERALD_STATUS_TTL, as its jobs' records; 30 days by default).
	CampaignsMaxAge time.Duration
	// HistoryMaxAge is how long HistoryKV keeps a record after its last write
	// (HERALD_STATUS_TTL; 30 days by default).
	HistoryMaxAge time.Duration
}

func (o *Options) defaults() {
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.DuplicateWindow == 0 {
		o.DuplicateWindow = time.Hour
	}
	if o.EventsMaxAge == 0 {
		o.EventsMaxAge = 7 * 24 * time.Hour
	}
	if o.DLQMaxAge == 0 {
		o.DLQMaxAge = 30 * 24 * time.Hour
	}
	if o.AckWait == 0 {
		o.AckWait = time.Minute
	}
	if o.MaxAckPending == 0 {
		o.MaxAckPending = 20000
	}
	if o.CampaignsMaxAge == 0 {
		o.CampaignsMaxAge = 30 * 24 * time.Hour
	}
	if o.HistoryMaxAge == 0 {
		o.HistoryMaxAge = 30 * 24 * time.Hour
	}
}

// HistoryConfig is the HistoryKV bucket: one revision per key (a record's latest copy is all
// a reader wants), compressed (records are repetitive JSON), kept HistoryMaxAge.
func HistoryConfig(o Options) jetstream.KeyValueConfig {
	o.defaults()
	return jetstream.KeyValueConfig{
		Bucket:      HistoryKV,
		Description: "Herald finished notification records: n.<tenant>.<id> → record, m.<message id> → job ref",
		History:     1,
		TTL:         o.HistoryMaxAge,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
		Compression: true,
	}
}

// campaignMarkerTTL is how long the marker of an expired campaign entry stays, so that
// watchers (and one reconnecting within the hour) see the entry go.
const campaignMarkerTTL = time.Hour

// JobsConfig is the HERALD_JOBS stream: a work queue whose messages are deleted once acked;
// message schedules deliver delayed jobs (herald.delayed.<id> → herald.jobs.<priority>).
func JobsConfig(o Options) jetstream.StreamConfig {
	o.defaults()
	return jetstream.StreamConfig{
		Name:              JobsStream,
		Description:       "Herald notification jobs (work queue) and their schedules",
		Subjects:          []string{SubjectTransactional, SubjectBulk, SubjectDelayedPrefix + ">", SubjectHoldPrefix + ">"},
		Retention:         jetstream.WorkQueuePolicy,
		Storage:           jetstream.FileStorage,
		Replicas:          o.Replicas,
		Duplicates:        o.DuplicateWindow,
		Discard:           jetstream.DiscardOld,
		AllowMsgSchedules: true,
		AllowMsgTTL:       true,
	}
}

// Bounds of the opt-out log once ConsentKV holds the truth: a flood of STOP and START
// messages churns the log instead of growing it.
const (
	OptOutLogMaxAge  = 30 * 24 * time.Hour
	OptOutLogMaxMsgs = 1_000_000
)

// OptOutConfig is the HERALD_OPTOUT stream: unbounded until the consent bucket holds its
// events (migrated), bounded after.
func OptOutConfig(o Options, migrated bool) jetstream.StreamConfig {
	o.defaults()
	c := jetstream.StreamConfig{
		Name:        OptOutStream,
		Description: "Herald opt-out events: the truth the Redis suppression set is rebuilt from",
		Subjects:    []string{SubjectOptOut},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
		Duplicates:  2 * time.Minute,
	}
	if migrated {
		c.Description = "Herald opt-out changes (a log for business systems; the truth is " + ConsentKV + ")"
		c.MaxAge, c.MaxMsgs, c.Discard = OptOutLogMaxAge, OptOutLogMaxMsgs, jetstream.DiscardOld
	}
	return c
}

// BoundOptOutLog applies the bounds to an existing HERALD_OPTOUT, keeping the rest of its
// configuration: consent calls it once the migration into ConsentKV is done.
func BoundOptOutLog(ctx context.Context, js jetstream.JetStream) error {
	st, err := js.Stream(ctx, OptOutStream)
	if err != nil {
		return fmt.Errorf("bound stream %s: %w", OptOutStream, err)
	}
	c := st.CachedInfo().Config
	c.Description = "Herald opt-out changes (a log for business systems; the truth is " + ConsentKV + ")"
	c.MaxAge, c.MaxMsgs, c.Discard = OptOutLogMaxAge, OptOutLogMaxMsgs, jetstream.DiscardOld
	if _, err := js.UpdateStream(ctx, c); err != nil {
		return fmt.Errorf("bound stream %s: %w", OptOutStream, err)
	}
	return nil
}

// Ensure creates or updates the streams, the two worker consumers and the buckets.
func Ensure(ctx context.Context, js jetstream.JetStream, o Options) error {
	o.defaults()
	// The consent bucket first: whether its migration mark is there decides the opt-out
	// log's bounds (an unmigrated log still holds the only copy of some consent).
	consent, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      ConsentKV,
		Description: "Herald consent: the latest opt-out event per number",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
	})
	if err != nil {
		return fmt.Errorf("ensure key-value bucket %s: %w", ConsentKV, err)
	}
	_, err = consent.Get(ctx, ConsentMigrated)
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("key-value bucket %s: %w", ConsentKV, err)
	}
	migrated := err == nil
	cfgs := []jetstream.StreamConfig{
		JobsConfig(o),
		{
			Name:        EventsStream,
			Description: "Herald status and inbound events",
			Subjects:    []string{SubjectStatusPrefix + ">", SubjectInbound},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    o.Replicas,
			MaxAge:      o.EventsMaxAge,
			Duplicates:  2 * time.Minute,
		},
		OptOutConfig(o, migrated),
		{
			Name:        DLQStream,
			Description: "Herald dead letters: the original job with its reason and attempts",
			Subjects:    []string{SubjectDLQPrefix + ">"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    o.Replicas,
			MaxAge:      o.DLQMaxAge,
			Duplicates:  2 * time.Minute,
		},
	}
	for _, c := range cfgs {
		if _, err := js.CreateOrUpdateStream(ctx, c); err != nil {
			return fmt.Errorf("ensure stream %s: %w", c.Name, err)
		}
	}
	for _, c := range []struct{ name, subject string }{
		{ConsumerTransactional, SubjectTransactional},
		{ConsumerBulk, SubjectBulk},
	} {
		if _, err := js.CreateOrUpdateConsumer(ctx, JobsStream, ConsumerConfig(c.name, c.subject, o)); err != nil {
			return fmt.Errorf("ensure consumer %s: %w", c.name, err)
		}
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      TemplatesKV,
		Description: "Herald template catalogue: <name>.<language> → definition",
		History:     10,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
	}); err != nil {
		return fmt.Errorf("ensure key-value bucket %s: %w", TemplatesKV, err)
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      CampaignsKV,
		Description: "Herald campaigns: t=<tenant>.<name> → template, jobs queued, canceled",
		History:     5,
		// Bounded: a campaign is forgotten with its jobs' records, and its expiry leaves a
		// marker that watchers apply.
		TTL:            o.CampaignsMaxAge,
		LimitMarkerTTL: campaignMarkerTTL,
		Storage:        jetstream.FileStorage,
		Replicas:       o.Replicas,
	}); err != nil {
		return fmt.Errorf("ensure key-value bucket %s: %w", CampaignsKV, err)
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, HistoryConfig(o)); err != nil {
		return fmt.Errorf("ensure key-value bucket %s: %w", HistoryKV, err)
	}
	return nil
}

// ConsumerConfig is a worker's durable pull consumer on one priority subject. Deliveries are
// unlimited (MaxDeliver -1) because waiting for a rate limit is not a failure: Herald counts
// send attempts itself, per channel, in the status record.
func ConsumerConfig(name, subject string, o Options) jetstream.ConsumerConfig {
	o.defaults()
	return jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "Herald workers: " + subject,
		FilterSubject: subject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: o.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		Replicas:      o.Replicas,
	}
}

// SubjectFor returns the job subject of a priority.
func SubjectFor(priority string) string {
	if priority == "bulk" {
		return SubjectBulk
	}
	return SubjectTransactional
}

// StatusSubject returns the event subject of a notification state.
func StatusSubject(state string) string { return SubjectStatusPrefix + state }

// DLQSubject returns the dead-letter subject of a reason.
func DLQSubject(reason string) string { return SubjectDLQPrefix + reason }

// DeadlineSubject is the subject of the delivery-deadline schedule of a job ref
// ("<tenant>/<id>", job.Ref): herald.hold.deadline.<tenant>.<id>, so that no tenant's id names
// another tenant's schedule.
func DeadlineSubject(ref string) string { return SubjectHoldPrefix + "deadline." + refSubject(ref) }

// WaitSubject is the subject of the schedule that releases a held job (by ref):
// herald.hold.wait.<tenant>.<id>.
func WaitSubject(ref string) string { return SubjectHoldPrefix + "wait." + refSubject(ref) }

// DelayedSubject is the subject of a producer's send_at schedule for a job ref:
// herald.delayed.<tenant>.<id>.
func DelayedSubject(ref string) string { return SubjectDelayedPrefix + refSubject(ref) }

// refSubject turns a ref's tenant into a subject token of its own (tenant names have no dot).
func refSubject(ref string) string { return strings.Replace(ref, "/", ".", 1) }
