// Package status keeps each notification's record in Redis: its state, the claim that makes
// a send happen at most once across the fleet, and the history of every channel attempt.
// All changes go through Lua scripts (lua/*.lua, see scripts.go), so concurrent workers,
// redelivered messages and out-of-order webhooks never corrupt a record or move it backwards.
//
// record.go holds the record and its states, codec.go its JSON and the scripts' replies,
// scripts.go the scripts and their arguments, store.go the Store, campaign.go the
// campaign counters and archive.go the history: finished records leave Redis for a
// JetStream bucket after HERALD_HOT_TTL, and reads fall back to it.
package status

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-notify/herald/internal/job"
)

// ErrNotFound is returned when no record exists for a job (of that tenant).
var ErrNotFound = errors.New("notification not found")

// ErrBusy is returned by Settle when another delivery holds a live claim on the job.
var ErrBusy = errors.New("notification is being sent by another delivery")

// Keys used in Redis. Braces keep a record and its index on one Redis Cluster slot where
// both are named in one script.
const (
	keyRecord  = "herald:n:{%s}"
	keyMessage = "herald:m:{%s}"
	// KeySuppressed is the deployment-wide suppression set, which only an operator changes;
	// each tenant has its own beside it (SuppressedKey).
	KeySuppressed = "herald:suppressed"
	keyWindow     = "herald:win:%s"
)

// RecordKey returns the Redis key of the record of a job ref (job.Ref: "<tenant>/<id>"):
// one tenant's id never names another tenant's record.
func RecordKey(ref string) string { return fmt.Sprintf(keyRecord, ref) }

// SuppressedKey is the set of the recipients who opted out of tenant's messages: consent is
// given to a business, so a STOP to one tenant does not silence another.
func SuppressedKey(tenant string) string { return KeySuppressed + ":tenant:" + job.TenantOr(tenant) }

// MarketingKey is the set of the recipients who stopped tenant's marketing messages (Meta's
// user_preferences; "" the deployment-wide set): a marketing template message to one of them
// is suppressed.
func MarketingKey(tenant string) string {
	if tenant == "" {
		return KeySuppressed + ":marketing:_"
	}
	return KeySuppressed + ":marketing:" + tenant
}

// messageKey is the key of the index from a provider message id to its job ref.
func messageKey(msgID string) string { return fmt.Sprintf(keyMessage, msgID) }

// WindowKey returns the Redis key marking an open 24-hour window between a business number
// (its Cloud API phone number id; "" for a store that serves no particular number) and a
// recipient: the window belongs to the conversation with that number, not to the customer.
func WindowKey(business, to string) string {
	if business == "" {
		return fmt.Sprintf(keyWindow, to)
	}
	return fmt.Sprintf(keyWindow, business+":"+to)
}

// Store reads and changes records.
type Store struct {
	rdb redis.UniversalClient
	sc  redis.Scripter // runs the scripts: rdb, or an autopipeliner on it (see Pipelined)
	// business is the WhatsApp number (phone number id) whose windows the claim reads.
	business string
	ttl      time.Duration
	now      func() time.Time
	// arch, when set, is the history finished records move to, hot how long they stay in
	// Redis after (see archive.go).
	arch *Archive
	hot  time.Duration
}

// NewStore returns a Store keeping records for ttl. now is the clock for record times
// (nil: time.Now); leases use the Redis server's clock.
func NewStore(rdb redis.UniversalClient, ttl time.Duration, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{rdb: rdb, sc: rdb, ttl: ttl, now: now}
}

// ForBusiness returns a copy of s whose claims and Window read the 24-hour windows with the
// business number id (the Cloud API phone number id the workers send from).
func (s *Store) ForBusiness(id string) *Store {
	c := *s
	c.business = id
	return &c
}

// WithArchive returns a copy of s that moves finished records (Finished) to the history a
// and keeps them in Redis for hot only (HERALD_HOT_TTL, at most the store's TTL), leaving a
// tombstone that keeps their ids idempotent for the store's TTL; its reads fall back to the
// history. Without it records stay in Redis for the whole TTL.
func (s *Store) WithArchive(a *Archive, hot time.Duration) *Store {
	c := *s
	if hot <= 0 {
		hot = s.ttl
	}
	c.arch, c.hot = a, min(hot, s.ttl)
	return &c
}

// Pipelined returns a copy of s whose scripts run through sc, normally go-redis's
// autopipeliner on the same client (rdb.AutoPipeline()): the claims and outcomes of many
// concurrent jobs then share round trips, which at thousands of jobs a second costs Redis
// and the worker a fraction of the CPU of one round trip each. The caller closes sc after
// the last use of the copy.
func (s *Store) Pipelined(sc redis.Scripter) *Store {
	c := *s
	c.sc = sc
	return &c
}

func (s *Store) stamp() string { return s.now().UTC().Format(time.RFC3339Nano) }

// Verdict is what Begin decided.
type Verdict string

// Begin verdicts.
const (
	// Claimed: this delivery holds the job; send it.
	Claimed Verdict = "claimed"
	// Done: the job was handled before (sent, or final); ack the duplicate delivery.
	Done Verdict = "done"
	// Busy: another delivery holds a live claim; try again after Wait.
	Busy Verdict = "busy"
	// Ambiguous: a previous holder died during its provider call; the attempt is recorded as
	// unknown and the job is not resent.
	Ambiguous Verdict = "ambiguous"
	// SuppressedVerdict: the recipient opted out; the record is now suppressed.
	SuppressedVerdict Verdict = "suppressed"
)

// Admission is the result of Begin.
type Admission struct {
	Verdict    Verdict
	Record     *Record
	Wait       time.Duration
	WindowOpen bool
}

// Begin runs the per-recipient admission checks and claims the job in one round trip:
// already handled, claimed by another delivery, opted out; and whether the 24-hour window is
// open. owner must be unique per delivery.
func (s *Store) Begin(ctx context.Context, j *job.Job, owner string, lease time.Duration, channels []string) (Admission, error) {
	return s.begin(ctx, j, owner, lease, channels, false, nil)
}

// BeginReplay is Begin for a job replayed from the DLQ: a failed or rejected record that no
// attempt ever reached the customer with starts its cascade again.
func (s *Store) BeginReplay(ctx context.Context, j *job.Job, owner string, lease time.Duration, channels []string) (Admission, error) {
	return s.begin(ctx, j, owner, lease, channels, true, nil)
}

// Check makes a delivery a fallback check on one attempt (see BeginCheck).
type Check struct {
	// Idx is the cascade index of the attempt the check was set for.
	Idx int
	// Deadline: the attempt is still only 'sent' after HERALD_FALLBACK_AFTER, so the job
	// moves to the next channel. Without it the check only carries a fallback that a failed
	// status report already decided (the record has Resume set).
	Deadline bool
	// Reason is recorded with the deadline fallback.
	Reason string
}

// BeginCheck is Begin for a fallback check: the delivery deadline firing, or the job
// re-published after a failed status report. It claims the job only when the record has a
// fallback to carry out (Resume set), or, for a deadline, when the attempt at c.Idx is still
// the current one and not delivered; otherwise the verdict is Done.
func (s *Store) BeginCheck(ctx context.Context, j *job.Job, owner string, lease time.Duration, channels []string, c Check) (Admission, error) {
	return s.begin(ctx, j, owner, lease, channels, false, &c)
}

func (s *Store) begin(ctx context.Context, j *job.Job, owner string, lease time.Duration, channels []string, replay bool, check *Check) (Admission, error) {
	a := beginArgs{
		Record:           RecordKey(j.Ref()),
		Suppressed:       KeySuppressed,
		Window:           WindowKey(s.business, j.To),
		TenantSuppressed: SuppressedKey(j.Tenant),
		Marketing:        MarketingKey(j.Tenant),
		MarketingAll:     MarketingKey(""),
		Done:             doneKey(j.Ref()),
		IsMarketing:      j.Marketing,
		Owner:            owner,
		LeaseMS:          lease.Milliseconds(),
		Initial:          marshalRecord(NewRecord(j, Queued, channels, s.now())),
		To:               j.To,
		TTLMS:            s.ttl.Milliseconds(),
		Now:              s.stamp(),
		Replay:           replay,
	}
	if check != nil {
		a.CheckIdx, a.Deadline, a.DeadlineReason = strconv.Itoa(check.Idx), check.Deadline, check.Reason
	}
	res, err := run(ctx, s.sc, &a).Slice()
	if err != nil {
		return Admission{}, fmt.Errorf("status begin: %w", err)
	}
	if v, _ := res[0].(string); v == "gone" {
		state, _ := res[1].(string)
		if st := tombstoneState(state); replay && a.Restored == "" && s.arch != nil && (st == Failed || st == Rejected) {
			// A dead letter replayed after its record left Redis: the replay starts from the
			// history's copy, so the rules that keep a replay from sending twice (no attempt
			// may have reached the customer) read the whole history, as they would have here.
			raw, _, err := s.arch.get(ctx, ArchiveKey(j.Ref()))
			if err != nil {
				return Admission{}, fmt.Errorf("status begin: the replayed job's record in the history: %w", err)
			}
			a.Restored = raw
			if res, err = run(ctx, s.sc, &a).Slice(); err != nil {
				return Admission{}, fmt.Errorf("status begin: %w", err)
			}
		}
	}
	if v, _ := res[0].(string); v == "gone" {
		state, _ := res[1].(string)
		return Admission{Verdict: Done, Record: s.archived(ctx, j.Ref(), state)}, nil
	}
	adm, err := beginReply(res)
	if err == nil && adm.Verdict != Done {
		raw, _ := res[1].(string)
		s.retire(ctx, raw, adm.Record)
	}
	return adm, err
}

// Mode of an attempt outcome.
type Mode string

// Attempt modes.
const (
	ModeSent     Mode = "sent"
	ModeRetry    Mode = "retry"
	ModeFallback Mode = "fallback"
	ModeFailed   Mode = "failed"
)

// Outcome describes one send attempt for Attempt.
type Outcome struct {
	Mode              Mode
	Channel           string
	ChannelIdx        int
	Attempts          int
	ProviderMessageID string
	Code              string
	Reason            string
	// NextChannel is the channel a fallback moves to.
	NextChannel string
	// Segments is the number of SMS parts a sent message was billed as (0: not an SMS).
	Segments int
	// DeadLetter is, for ModeFailed, the DLQ reason the worker dead-letters the job with.
	DeadLetter string
}

// Attempt records the outcome of a send attempt on the job ref (job.Ref) and returns the
// state before and the record after.
func (s *Store) Attempt(ctx context.Context, ref, owner string, o Outcome) (old string, rec *Record, err error) {
	a := attemptArgs{
		Record:            RecordKey(ref),
		Message:           messageKey(o.ProviderMessageID),
		Owner:             owner,
		Mode:              o.Mode,
		Channel:           o.Channel,
		ChannelIdx:        o.ChannelIdx,
		ProviderMessageID: o.ProviderMessageID,
		Code:              o.Code,
		Reason:            o.Reason,
		Now:               s.stamp(),
		TTLMS:             s.ttl.Milliseconds(),
		Attempts:          o.Attempts,
		JobRef:            ref,
		NextChannel:       o.NextChannel,
		Segments:          o.Segments,
		DeadLetter:        o.DeadLetter,
	}
	res, err := run(ctx, s.sc, &a).StringSlice()
	if err != nil {
		return "", nil, fmt.Errorf("status attempt: %w", err)
	}
	old, rec, err = attemptReply(res)
	if err == nil {
		s.retire(ctx, res[1], rec)
	}
	return old, rec, err
}

// Settle moves a record (created if missing from j) to a final state that involves no send:
// expired, rejected, canceled. With state "" it only releases owner's claim.
func (s *Store) Settle(ctx context.Context, j *job.Job, owner, state, reason string, channels []string) (old string, rec *Record, err error) {
	a := settleArgs{
		Record: RecordKey(j.Ref()),
		Done:   doneKey(j.Ref()),
		// Read the clock for Initial before Now: a new record's created_at never follows
		// its updated_at.
		Initial: marshalRecord(NewRecord(j, Queued, channels, s.now())),
		Owner:   owner,
		State:   state,
		Reason:  reason,
		Now:     s.stamp(),
		TTLMS:   s.ttl.Milliseconds(),
	}
	res, err := run(ctx, s.sc, &a).StringSlice()
	if err != nil {
		return "", nil, fmt.Errorf("status settle: %w", err)
	}
	if res[2] == "gone" {
		rec := s.archived(ctx, j.Ref(), res[0])
		return rec.State, rec, nil
	}
	old, rec, err = settleReply(res)
	if err == nil {
		s.retire(ctx, res[1], rec)
	}
	return old, rec, err
}

// Create stores the first record of an accepted job unless one exists; it returns the
// existing record when it does (a repeated id). The record is counted in its campaign in
// the same script, so a retried Create or a worker that created the record first never
// counts it twice or not at all.
func (s *Store) Create(ctx context.Context, rec *Record) (created bool, existing *Record, err error) {
	res, err := run(ctx, s.rdb, s.createArgs(rec)).Slice()
	if err != nil {
		return false, nil, fmt.Errorf("status create: %w", err)
	}
	created, raw, gone, err := createReply(res)
	if err != nil || created {
		return created, rec, err
	}
	if gone != "" {
		return false, s.archived(ctx, rec.Ref(), gone), nil
	}
	existing, err = decode(raw)
	return false, existing, err
}

func (s *Store) createArgs(rec *Record) *createArgs {
	a := &createArgs{Record: RecordKey(rec.Ref()), Done: doneKey(rec.Ref()), Initial: marshalRecord(rec), TTLMS: s.ttl.Milliseconds(), State: rec.State}
	if rec.Campaign != "" {
		a.Campaign = CampaignKey(rec.Tenant, rec.Campaign)
	}
	return a
}

// Get returns the record of a job ref (job.Ref: "<tenant>/<id>"), or ErrNotFound: from
// Redis, else (a finished record past HERALD_HOT_TTL) from the history.
func (s *Store) Get(ctx context.Context, ref string) (*Record, error) {
	raw, err := s.rdb.Get(ctx, RecordKey(ref)).Result()
	if errors.Is(err, redis.Nil) {
		if s.arch == nil {
			return nil, ErrNotFound
		}
		raw, _, err = s.arch.get(ctx, ArchiveKey(ref))
	}
	if err != nil {
		return nil, fmt.Errorf("status get: %w", err)
	}
	rec, err := unmarshalRecord(raw)
	if err != nil {
		return nil, fmt.Errorf("status get %s: %w", ref, err)
	}
	return rec, nil
}

// GetMany returns the records of refs in one round trip to Redis, nil where a ref has
// none. The same round trip reads the tombstones: only a ref whose record left Redis for
// the history (it has a tombstone) is read from the bucket, so a batch of new ids costs no
// bucket lookup at all.
func (s *Store) GetMany(ctx context.Context, refs []string) ([]*Record, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	n := len(refs)
	if s.arch != nil {
		n *= 2
	}
	keys := make([]string, 0, n)
	for _, ref := range refs {
		keys = append(keys, RecordKey(ref))
	}
	if s.arch != nil {
		for _, ref := range refs {
			keys = append(keys, doneKey(ref))
		}
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("status get: %w", err)
	}
	out := make([]*Record, len(refs))
	for i := range refs {
		raw, ok := vals[i].(string)
		if !ok && s.arch != nil && vals[len(refs)+i] != nil {
			raw, _, err = s.arch.get(ctx, ArchiveKey(refs[i]))
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			ok = true
		}
		if !ok {
			continue
		}
		rec, err := unmarshalRecord(raw)
		if err != nil {
			return nil, fmt.Errorf("status get %s: %w", refs[i], err)
		}
		out[i] = rec
	}
	return out, nil
}

// RefForMessage returns the job ref of a provider message id, or ErrNotFound: from Redis,
// else from the history's index (a message of a record that left Redis).
func (s *Store) RefForMessage(ctx context.Context, msgID string) (string, error) {
	ref, err := s.rdb.Get(ctx, messageKey(msgID)).Result()
	if errors.Is(err, redis.Nil) {
		if s.arch == nil {
			return "", ErrNotFound
		}
		ref, _, err = s.arch.get(ctx, archiveMessageKey(msgID))
		return ref, err
	}
	if err != nil {
		return "", fmt.Errorf("status message index: %w", err)
	}
	return ref, nil
}

// Report is a provider's status report on one message.
type Report struct {
	// JobRef is the job's ref (job.Ref) when the report names the job (the Cloud API echoes
	// it in biz_opaque_callback_data, a Kannel report in its signed dlr-url); else the record
	// is found by MessageID.
	JobRef    string
	MessageID string
	State     string
	Code      string
	Reason    string
	// Fallback: a failed report moves the job on to its next channel (the record gets
	// Resume set) instead of failing it, when the cascade has one.
	Fallback bool
	// Channel is the channel the reported message went out on (white, grey, sms). A report
	// is only ever applied to an attempt on that channel.
	Channel string
}

// Apply records a provider status report, forward only. It returns the record state before
// and after, and whether anything changed; unknown messages give ErrNotFound.
func (s *Store) Apply(ctx context.Context, r Report) (old string, rec *Record, changed bool, err error) {
	ref := r.JobRef
	if ref == "" {
		if ref, err = s.RefForMessage(ctx, r.MessageID); err != nil {
			return "", nil, false, err
		}
	}
	a := statusArgs{
		Record:    RecordKey(ref),
		MessageID: r.MessageID,
		State:     r.State,
		Code:      r.Code,
		Reason:    r.Reason,
		Now:       s.stamp(),
		TTLMS:     s.ttl.Milliseconds(),
		Fallback:  r.Fallback,
		Channel:   r.Channel,
	}
	res, err := run(ctx, s.sc, &a).StringSlice()
	if err != nil {
		return "", nil, false, fmt.Errorf("status apply: %w", err)
	}
	if res[2] == "missing" && s.arch != nil {
		// A report on a record that left Redis: applied to its copy in the history.
		return s.applyArchived(ctx, ref, a)
	}
	old, rec, changed, err = statusReply(res)
	if err == nil && changed {
		s.retire(ctx, res[1], rec)
	}
	return old, rec, changed, err
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }

// CreateMany stores the first records of many accepted jobs in one pipeline (create.lua
// each: SET NX and the campaign count together); existing records are left as they are, so
// a retry after an error creates only what is missing.
func (s *Store) CreateMany(ctx context.Context, recs []*Record) error {
	if len(recs) == 0 {
		return nil
	}
	// The pipeline runs the script by its hash: load it first, so that no EVALSHA of it
	// meets NOSCRIPT (a restarted or flushed Redis).
	if err := scriptCreate.Load(ctx, s.rdb).Err(); err != nil {
		return fmt.Errorf("status create: %w", err)
	}
	pipe := s.rdb.Pipeline()
	for _, r := range recs {
		a := s.createArgs(r)
		a.script().EvalSha(ctx, pipe, a.keys(), a.argv()...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("status create: %w", err)
	}
	return nil
}

// OpenWindow marks the 24-hour customer-service window between the business number id
// ("" for the store's own, see ForBusiness) and to as open for d (an inbound message to that
// number opens or renews it).
func (s *Store) OpenWindow(ctx context.Context, business, to string, d time.Duration) error {
	if business == "" {
		business = s.business
	}
	return s.rdb.Set(ctx, WindowKey(business, to), s.stamp(), d).Err()
}

// Window tells whether the 24-hour customer-service window between the business number id
// ("" for the store's own, see ForBusiness) and to is open, and until when.
func (s *Store) Window(ctx context.Context, business, to string) (open bool, until time.Time, err error) {
	if business == "" {
		business = s.business
	}
	ttl, err := s.rdb.PTTL(ctx, WindowKey(business, to)).Result()
	if err != nil {
		return false, time.Time{}, fmt.Errorf("status window: %w", err)
	}
	if ttl <= 0 {
		return false, time.Time{}, nil
	}
	return true, s.now().Add(ttl).UTC().Truncate(time.Second), nil
}
