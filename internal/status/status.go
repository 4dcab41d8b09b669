// Package status keeps each notification's record in Redis: its state, the claim that makes
// a send happen at most once across the fleet, and the history of every channel attempt.
// All changes go through Lua scripts (see lua.go), so concurrent workers, redelivered
// messages and out-of-order webhooks never corrupt a record or move it backwards.
package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/jsonw"
)

// Notification states (DESIGN.md).
const (
	Queued     = "queued"
	Scheduled  = "scheduled"
	Sent       = "sent"
	Delivered  = "delivered"
	Read       = "read"
	Failed     = "failed"
	Expired    = "expired"
	Suppressed = "suppressed"
	Rejected   = "rejected"
	Canceled   = "canceled"
)

// ErrNotFound is returned when no record exists for an id.
var ErrNotFound = errors.New("notification not found")

// ErrBusy is returned by Settle when another delivery holds a live claim on the job.
var ErrBusy = errors.New("notification is being sent by another delivery")

// Terminal tells whether a state is final.
func Terminal(state string) bool {
	switch state {
	case Failed, Expired, Suppressed, Rejected, Canceled:
		return true
	}
	return false
}

// Attempt is one channel attempt (or one retry of it) in a record's history.
type Attempt struct {
	Channel           string `json:"channel"`
	ProviderMessageID string `json:"provider_message_id,omitempty"`
	// State: sent, delivered, read, failed, retry (a passing failure, retried later) or
	// unknown (the worker died during the provider call).
	State    string `json:"state"`
	Code     string `json:"code,omitempty"`
	Reason   string `json:"reason,omitempty"`
	At       string `json:"at"`
	StatusAt string `json:"status_at,omitempty"`
}

// Claim is a worker's lease on a job while it sends.
type Claim struct {
	Owner   string `json:"owner"`
	Until   int64  `json:"until"`
	Channel string `json:"channel,omitempty"`
}

// Record is the status of one notification.
type Record struct {
	ID                string            `json:"id"`
	State             string            `json:"state"`
	Reason            string            `json:"reason,omitempty"`
	To                string            `json:"to,omitempty"`
	Template          string            `json:"template,omitempty"`
	Priority          string            `json:"priority,omitempty"`
	Campaign          string            `json:"campaign,omitempty"`
	Tenant            string            `json:"tenant,omitempty"`
	Channels          []string          `json:"channels,omitempty"`
	Channel           string            `json:"channel,omitempty"`
	ChannelIdx        int               `json:"channel_idx"`
	Attempts          int               `json:"attempts"`
	ProviderMessageID string            `json:"provider_message_id,omitempty"`
	SendAt            string            `json:"send_at,omitempty"`
	CreatedAt         string            `json:"created_at,omitempty"`
	UpdatedAt         string            `json:"updated_at,omitempty"`
	History           []Attempt         `json:"history,omitempty"`
	Metadata          map[string]string `json:"metadata,omitempty"`
	Claim             *Claim            `json:"claim,omitempty"`
	Resume            bool              `json:"resume,omitempty"`
	Early             map[string]string `json:"early,omitempty"`
	// EarlyChannels names the channel of each parked report in Early (by message id).
	EarlyChannels map[string]string `json:"early_ch,omitempty"`
	// Op names the last outcome recorded (delivery, mode, channel index, attempts) and OpOld
	// the state before it, so that recording it again answers as the first time.
	Op    string `json:"op,omitempty"`
	OpOld string `json:"op_old,omitempty"`
	// DeadLetter is the DLQ reason of a failed job whose worker dead-letters it (empty for a
	// job failed by a provider report, which has no letter): a redelivery writes the letter
	// again if the first publish was lost.
	DeadLetter string `json:"dlq,omitempty"`
}

// UnmarshalJSON accepts the empty object cjson writes for an empty Lua table in place of an
// empty array or map.
func (r *Record) UnmarshalJSON(b []byte) error {
	if rec, ok := parseRecord(string(b)); ok {
		*r = *rec
		return nil
	}
	return r.unmarshalSlow(b)
}

// unmarshalSlow is UnmarshalJSON through encoding/json: the reference parseRecord must
// agree with, and the path for any input parseRecord leaves to it.
func (r *Record) unmarshalSlow(b []byte) error {
	type plain Record
	var aux struct {
		plain
		History  json.RawMessage `json:"history,omitempty"`
		Channels json.RawMessage `json:"channels,omitempty"`
		Early    json.RawMessage `json:"early,omitempty"`
		EarlyCh  json.RawMessage `json:"early_ch,omitempty"`
		Metadata json.RawMessage `json:"metadata,omitempty"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*r = Record(aux.plain)
	for _, f := range []struct {
		raw json.RawMessage
		dst any
	}{{aux.History, &r.History}, {aux.Channels, &r.Channels}, {aux.Early, &r.Early}, {aux.EarlyCh, &r.EarlyChannels}, {aux.Metadata, &r.Metadata}} {
		if len(f.raw) == 0 || string(f.raw) == "{}" || string(f.raw) == "[]" || string(f.raw) == "null" {
			continue
		}
		if err := json.Unmarshal(f.raw, f.dst); err != nil {
			return err
		}
	}
	return nil
}

// Keys used in Redis. Braces keep a record and its index on one Redis Cluster slot where
// both are named in one script.
const (
	keyRecord     = "herald:n:{%s}"
	keyMessage    = "herald:m:{%s}"
	KeySuppressed = "herald:suppressed"
	keyWindow     = "herald:win:%s"
)

// RecordKey returns the Redis key of a notification record.
func RecordKey(id string) string { return fmt.Sprintf(keyRecord, id) }

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

func (s *Store) ttlMS() string { return strconv.FormatInt(s.ttl.Milliseconds(), 10) }

// NewRecord is the first record of a job.
func NewRecord(j *job.Job, state string, channels []string, now time.Time) *Record {
	r := &Record{
		ID: j.ID, State: state, To: j.To, Template: j.Template, Priority: j.Priority,
		Campaign: j.Campaign, Tenant: j.Tenant, Channels: channels, Metadata: j.Metadata,
		CreatedAt: now.UTC().Format(time.RFC3339Nano),
	}
	if len(channels) > 0 {
		r.Channel = channels[0]
	}
	if j.SendAt != nil {
		r.SendAt = j.SendAt.UTC().Format(time.RFC3339)
	}
	r.UpdatedAt = r.CreatedAt
	return r
}

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

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func (s *Store) begin(ctx context.Context, j *job.Job, owner string, lease time.Duration, channels []string, replay bool, check *Check) (Admission, error) {
	rp := boolArg(replay)
	idx, deadline, reason := "", "0", ""
	if check != nil {
		idx, deadline, reason = strconv.Itoa(check.Idx), boolArg(check.Deadline), check.Reason
	}
	initial := marshalRecord(NewRecord(j, Queued, channels, s.now()))
	res, err := scriptBegin.Run(ctx, s.sc,
		[]string{RecordKey(j.ID), KeySuppressed, WindowKey(s.business, j.To)},
		owner, lease.Milliseconds(), initial, j.To, s.ttlMS(), s.stamp(), rp, idx, deadline, reason).Slice()
	if err != nil {
		return Admission{}, fmt.Errorf("status begin: %w", err)
	}
	rec, err := decode(res[1])
	if err != nil {
		return Admission{}, err
	}
	return Admission{
		Verdict:    Verdict(res[0].(string)),
		Record:     rec,
		Wait:       time.Duration(res[2].(int64)) * time.Millisecond,
		WindowOpen: res[3].(int64) == 1,
	}, nil
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

// Attempt records the outcome of a send attempt and returns the state before and the record
// after.
func (s *Store) Attempt(ctx context.Context, id, owner string, o Outcome) (old string, rec *Record, err error) {
	msgKey := fmt.Sprintf(keyMessage, o.ProviderMessageID)
	res, err := scriptAttempt.Run(ctx, s.sc, []string{RecordKey(id), msgKey},
		owner, string(o.Mode), o.Channel, o.ChannelIdx, o.ProviderMessageID, o.Code, o.Reason,
		s.stamp(), s.ttlMS(), o.Attempts, id, o.NextChannel, o.Segments, o.DeadLetter).StringSlice()
	if err != nil {
		return "", nil, fmt.Errorf("status attempt: %w", err)
	}
	if res[1] == "" {
		return "", nil, ErrNotFound
	}
	rec, err = decode(res[1])
	return res[0], rec, err
}

// Settle moves a record (created if missing from j) to a final state that involves no send:
// expired, rejected, canceled. With state "" it only releases owner's claim.
func (s *Store) Settle(ctx context.Context, j *job.Job, owner, state, reason string, channels []string) (old string, rec *Record, err error) {
	initial := marshalRecord(NewRecord(j, Queued, channels, s.now()))
	res, err := scriptSettle.Run(ctx, s.sc, []string{RecordKey(j.ID)},
		owner, state, reason, s.stamp(), s.ttlMS(), initial).StringSlice()
	if err != nil {
		return "", nil, fmt.Errorf("status settle: %w", err)
	}
	rec, err = decode(res[1])
	if err == nil && res[2] == "busy" {
		err = ErrBusy
	}
	return res[0], rec, err
}

// Create stores the first record of an accepted job unless one exists; it returns the
// existing record when it does (a repeated id).
func (s *Store) Create(ctx context.Context, rec *Record) (created bool, existing *Record, err error) {
	ok, err := s.rdb.SetNX(ctx, RecordKey(rec.ID), marshalRecord(rec), s.ttl).Result()
	if err != nil {
		return false, nil, fmt.Errorf("status create: %w", err)
	}
	if ok {
		if rec.Campaign != "" {
			pipe := s.rdb.Pipeline()
			s.countNew(ctx, pipe, rec)
			if _, err := pipe.Exec(ctx); err != nil {
				return true, rec, fmt.Errorf("status create: campaign counter: %w", err)
			}
		}
		return true, rec, nil
	}
	existing, err = s.Get(ctx, rec.ID)
	return false, existing, err
}

// Get returns the record of id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (*Record, error) {
	b, err := s.rdb.Get(ctx, RecordKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("status get: %w", err)
	}
	if rec, ok := parseRecord(string(b)); ok {
		return rec, nil
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("status get %s: %w", id, err)
	}
	return &r, nil
}

// JobIDForMessage returns the job id of a provider message id, or ErrNotFound.
func (s *Store) JobIDForMessage(ctx context.Context, msgID string) (string, error) {
	id, err := s.rdb.Get(ctx, fmt.Sprintf(keyMessage, msgID)).Result()
	if errors.Is(err, redis.Nil) {
		return "", ErrNotFound
	}
	return id, err
}

// Report is a provider's status report on one message.
type Report struct {
	// JobID, when the provider echoes it (biz_opaque_callback_data); else found by MessageID.
	JobID     string
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
	id := r.JobID
	if id == "" {
		if id, err = s.JobIDForMessage(ctx, r.MessageID); err != nil {
			return "", nil, false, err
		}
	}
	res, err := scriptStatus.Run(ctx, s.sc, []string{RecordKey(id)},
		r.MessageID, r.State, r.Code, r.Reason, s.stamp(), s.ttlMS(), boolArg(r.Fallback), r.Channel).StringSlice()
	if err != nil {
		return "", nil, false, fmt.Errorf("status apply: %w", err)
	}
	if res[2] == "missing" {
		return "", nil, false, ErrNotFound
	}
	rec, err = decode(res[1])
	return res[0], rec, res[2] == "changed", err
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }

func decode(v any) (*Record, error) {
	s, _ := v.(string)
	if rec, ok := parseRecord(s); ok {
		return rec, nil
	}
	var r Record
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return nil, fmt.Errorf("status: bad record: %w", err)
	}
	return &r, nil
}

// CreateMany stores the first records of many accepted jobs in one pipeline (SET NX each);
// existing records are left as they are.
func (s *Store) CreateMany(ctx context.Context, recs []*Record) error {
	if len(recs) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.BoolCmd, len(recs))
	for i, r := range recs {
		cmds[i] = pipe.SetNX(ctx, RecordKey(r.ID), marshalRecord(r), s.ttl)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("status create: %w", err)
	}
	pipe = s.rdb.Pipeline()
	n := 0
	for i, r := range recs {
		if r.Campaign != "" && cmds[i].Val() {
			s.countNew(ctx, pipe, r)
			n++
		}
	}
	if n > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("status create: campaign counters: %w", err)
		}
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

// CampaignKey is the Redis hash of a campaign's counters: s:<state> (records in each state),
// c:<channel> (messages sent per channel), first_sent and last_sent (Unix ms).
func CampaignKey(name string) string { return "herald:camp:" + name }

// countNew counts a record created outside the scripts (the API's Create).
func (s *Store) countNew(ctx context.Context, pipe redis.Pipeliner, rec *Record) {
	pipe.HIncrBy(ctx, CampaignKey(rec.Campaign), "s:"+rec.State, 1)
	pipe.PExpire(ctx, CampaignKey(rec.Campaign), s.ttl)
}

// CampaignCounters are a campaign's counters in Redis.
type CampaignCounters struct {
	// States counts the campaign's records by state.
	States map[string]int64
	// Channels counts messages sent per channel (fallbacks count on each channel used).
	Channels map[string]int64
	// Parts counts the billed parts of the messages sent per channel: SMS segments. A
	// channel without parts is billed per message.
	Parts map[string]int64
	// FirstSent and LastSent bound the sends (zero when none yet).
	FirstSent, LastSent time.Time
}

// Campaign reads a campaign's counters.
func (s *Store) Campaign(ctx context.Context, name string) (CampaignCounters, error) {
	m, err := s.rdb.HGetAll(ctx, CampaignKey(name)).Result()
	if err != nil {
		return CampaignCounters{}, fmt.Errorf("status campaign: %w", err)
	}
	c := CampaignCounters{States: map[string]int64{}, Channels: map[string]int64{}, Parts: map[string]int64{}}
	for k, v := range m {
		n, _ := strconv.ParseInt(v, 10, 64)
		switch {
		case strings.HasPrefix(k, "s:"):
			if n != 0 {
				c.States[k[2:]] = n
			}
		case strings.HasPrefix(k, "c:"):
			c.Channels[k[2:]] = n
		case strings.HasPrefix(k, "p:"):
			c.Parts[k[2:]] = n
		case k == "first_sent":
			c.FirstSent = time.UnixMilli(n).UTC()
		case k == "last_sent":
			c.LastSent = time.UnixMilli(n).UTC()
		}
	}
	return c, nil
}

// parseRecord decodes a record as cjson and encoding/json write it, without reflection and
// with its strings sharing the input's memory: the scripts answer with the record on every
// call, and encoding/json spent more CPU on it than anything else in the worker. ok is false
// for anything outside that written form (whitespace, null, an unknown or repeated key, a
// surrogate escape, invalid UTF-8, a number that is not a plain integer, malformed JSON):
// the caller then decodes with encoding/json, which gives the same Record for every input
// parseRecord accepts (TestParseRecordMatchesEncodingJSON, FuzzParseRecord).
func parseRecord(s string) (*Record, bool) {
	p := recParser{s: s}
	r := &Record{}
	// encoding/json matches keys case-insensitively and merges a repeated object key into
	// the same value: object leaves both to it (unknown or repeated keys fail).
	ok := p.object(func(key string) (uint32, bool) {
		switch key {
		case "id":
			return 1 << 0, p.str(&r.ID)
		case "state":
			return 1 << 1, p.str(&r.State)
		case "reason":
			return 1 << 2, p.str(&r.Reason)
		case "to":
			return 1 << 3, p.str(&r.To)
		case "template":
			return 1 << 4, p.str(&r.Template)
		case "priority":
			return 1 << 5, p.str(&r.Priority)
		case "campaign":
			return 1 << 6, p.str(&r.Campaign)
		case "tenant":
			return 1 << 7, p.str(&r.Tenant)
		case "channels":
			return 1 << 8, p.strings(&r.Channels)
		case "channel":
			return 1 << 9, p.str(&r.Channel)
		case "channel_idx":
			return 1 << 10, p.int(&r.ChannelIdx)
		case "attempts":
			return 1 << 11, p.int(&r.Attempts)
		case "provider_message_id":
			return 1 << 12, p.str(&r.ProviderMessageID)
		case "send_at":
			return 1 << 13, p.str(&r.SendAt)
		case "created_at":
			return 1 << 14, p.str(&r.CreatedAt)
		case "updated_at":
			return 1 << 15, p.str(&r.UpdatedAt)
		case "history":
			return 1 << 16, p.history(&r.History)
		case "metadata":
			return 1 << 17, p.strMap(&r.Metadata)
		case "claim":
			return 1 << 18, p.claim(&r.Claim)
		case "resume":
			return 1 << 19, p.bool(&r.Resume)
		case "early":
			return 1 << 20, p.strMap(&r.Early)
		case "early_ch":
			return 1 << 21, p.strMap(&r.EarlyChannels)
		case "op":
			return 1 << 22, p.str(&r.Op)
		case "op_old":
			return 1 << 23, p.str(&r.OpOld)
		case "dlq":
			return 1 << 24, p.str(&r.DeadLetter)
		}
		return 0, true
	})
	if !ok {
		return nil, false
	}
	return r, p.i == len(p.s)
}

// recParser reads the JSON subset parseRecord accepts.
type recParser struct {
	s string
	i int
}

// byte consumes c if it is next.
func (p *recParser) byte(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// key reads an object key and its colon.
func (p *recParser) key() (string, bool) {
	var k string
	if !p.str(&k) || !p.byte(':') {
		return "", false
	}
	return k, true
}

// str reads a string. Strings without escapes are slices of the input.
func (p *recParser) str(dst *string) bool {
	if !p.byte('"') {
		return false
	}
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			v := p.s[start:p.i]
			p.i++
			if !utf8.ValidString(v) { // encoding/json would replace the bad bytes
				return false
			}
			*dst = v
			return true
		case c == '\\':
			return p.strEscaped(dst, start)
		case c < 0x20:
			return false
		}
		p.i++
	}
	return false
}

// strEscaped finishes a string with escapes, from start (just after the opening quote).
// Surrogate escapes (\ud83d...) are left to encoding/json, which pairs or replaces them.
func (p *recParser) strEscaped(dst *string, start int) bool {
	b := make([]byte, 0, p.i-start+16)
	b = append(b, p.s[start:p.i]...)
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			if !utf8.Valid(b) {
				return false
			}
			*dst = string(b)
			return true
		case c < 0x20:
			return false
		case c != '\\':
			b = append(b, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.s) {
			return false
		}
		e := p.s[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			if p.i+4 > len(p.s) {
				return false
			}
			r, err := strconv.ParseUint(p.s[p.i:p.i+4], 16, 32)
			if err != nil || utf16.IsSurrogate(rune(r)) {
				return false
			}
			b = utf8.AppendRune(b, rune(r))
			p.i += 4
		default:
			return false
		}
	}
	return false
}

// int reads a JSON integer that fits an int with room to spare.
func (p *recParser) int(dst *int) bool {
	var n int64
	if !p.int64(&n) {
		return false
	}
	*dst = int(n)
	return true
}

func (p *recParser) int64(dst *int64) bool {
	start := p.i
	p.byte('-')
	digits := p.i
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	nd := p.i - digits
	// No leading zero (invalid JSON), at most 18 digits (no overflow), and no fraction or
	// exponent (encoding/json refuses those for an int field with its own error).
	if nd == 0 || nd > 18 || (nd > 1 && p.s[digits] == '0') {
		return false
	}
	if p.i < len(p.s) && (p.s[p.i] == '.' || p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		return false
	}
	n, err := strconv.ParseInt(p.s[start:p.i], 10, 64)
	if err != nil {
		return false
	}
	*dst = n
	return true
}

func (p *recParser) bool(dst *bool) bool {
	switch {
	case strings.HasPrefix(p.s[p.i:], "true"):
		p.i += 4
		*dst = true
	case strings.HasPrefix(p.s[p.i:], "false"):
		p.i += 5
		*dst = false
	default:
		return false
	}
	return true
}

// empty consumes the "{}" or "[]" that UnmarshalJSON reads as no value (cjson writes an empty
// Lua table as an object).
func (p *recParser) empty() bool {
	if strings.HasPrefix(p.s[p.i:], "{}") || strings.HasPrefix(p.s[p.i:], "[]") {
		p.i += 2
		return true
	}
	return false
}

// strings reads a non-empty array of strings.
func (p *recParser) strings(dst *[]string) bool { return parseArray(p, dst, 4, p.str) }

// parseArray reads a JSON array of items (or the empty "{}"/"[]") into dst.
func parseArray[T any](p *recParser, dst *[]T, capacity int, item func(*T) bool) bool {
	if p.empty() {
		return true
	}
	if !p.byte('[') {
		return false
	}
	out := make([]T, 0, capacity)
	for {
		var v T
		if !item(&v) {
			return false
		}
		out = append(out, v)
		if p.byte(',') {
			continue
		}
		if !p.byte(']') {
			return false
		}
		*dst = out
		return true
	}
}

// strMap reads a non-empty object of strings.
func (p *recParser) strMap(dst *map[string]string) bool {
	if p.empty() {
		return true
	}
	if !p.byte('{') {
		return false
	}
	out := make(map[string]string)
	for {
		k, ok := p.key()
		var v string
		if !ok || !p.str(&v) {
			return false
		}
		out[k] = v // a repeated key: the last one wins, as in encoding/json
		if p.byte(',') {
			continue
		}
		if !p.byte('}') {
			return false
		}
		*dst = out
		return true
	}
}

// claim reads a Claim object.
func (p *recParser) claim(dst **Claim) bool {
	c := &Claim{}
	ok := p.object(func(k string) (uint32, bool) {
		switch k {
		case "owner":
			return 1, p.str(&c.Owner)
		case "until":
			return 2, p.int64(&c.Until)
		case "channel":
			return 4, p.str(&c.Channel)
		}
		return 0, true
	})
	if ok {
		*dst = c
	}
	return ok
}

// history reads a non-empty array of Attempt objects.
func (p *recParser) history(dst *[]Attempt) bool { return parseArray(p, dst, 2, p.attempt) }

func (p *recParser) attempt(a *Attempt) bool {
	return p.object(func(k string) (uint32, bool) {
		switch k {
		case "channel":
			return 1 << 0, p.str(&a.Channel)
		case "provider_message_id":
			return 1 << 1, p.str(&a.ProviderMessageID)
		case "state":
			return 1 << 2, p.str(&a.State)
		case "code":
			return 1 << 3, p.str(&a.Code)
		case "reason":
			return 1 << 4, p.str(&a.Reason)
		case "at":
			return 1 << 5, p.str(&a.At)
		case "status_at":
			return 1 << 6, p.str(&a.StatusAt)
		}
		return 0, true
	})
}

// object reads {"key":value,...}: field reads the value of key and says which of the
// object's keys it is (a bit; 0 for an unknown key). An unknown or repeated key, a bad value
// or malformed JSON fails.
func (p *recParser) object(field func(key string) (uint32, bool)) bool {
	if !p.byte('{') {
		return false
	}
	if p.byte('}') {
		return true
	}
	var seen uint32
	for {
		key, ok := p.key()
		if !ok {
			return false
		}
		bit, ok := field(key)
		if bit == 0 || seen&bit != 0 || !ok {
			return false
		}
		seen |= bit
		if p.byte(',') {
			continue
		}
		return p.byte('}')
	}
}

// marshalRecord is json.Marshal(r), byte for byte (TestMarshalRecordMatchesEncodingJSON),
// without reflection: Begin and Settle send a first record with every call.
func marshalRecord(r *Record) []byte {
	b := make([]byte, 0, 512)
	b = append(b, `{"id":`...)
	b = jsonw.StringHTML(b, r.ID)
	b = append(b, `,"state":`...)
	b = jsonw.StringHTML(b, r.State)
	b = jsonw.FieldHTML(b, "reason", r.Reason)
	b = jsonw.FieldHTML(b, "to", r.To)
	b = jsonw.FieldHTML(b, "template", r.Template)
	b = jsonw.FieldHTML(b, "priority", r.Priority)
	b = jsonw.FieldHTML(b, "campaign", r.Campaign)
	b = jsonw.FieldHTML(b, "tenant", r.Tenant)
	if len(r.Channels) > 0 {
		b = append(b, `,"channels":[`...)
		for i, c := range r.Channels {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonw.StringHTML(b, c)
		}
		b = append(b, ']')
	}
	b = jsonw.FieldHTML(b, "channel", r.Channel)
	b = append(b, `,"channel_idx":`...)
	b = strconv.AppendInt(b, int64(r.ChannelIdx), 10)
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(r.Attempts), 10)
	b = jsonw.FieldHTML(b, "provider_message_id", r.ProviderMessageID)
	b = jsonw.FieldHTML(b, "send_at", r.SendAt)
	b = jsonw.FieldHTML(b, "created_at", r.CreatedAt)
	b = jsonw.FieldHTML(b, "updated_at", r.UpdatedAt)
	if len(r.History) > 0 {
		b = append(b, `,"history":[`...)
		for i := range r.History {
			a := &r.History[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"channel":`...)
			b = jsonw.StringHTML(b, a.Channel)
			b = jsonw.FieldHTML(b, "provider_message_id", a.ProviderMessageID)
			b = append(b, `,"state":`...)
			b = jsonw.StringHTML(b, a.State)
			b = jsonw.FieldHTML(b, "code", a.Code)
			b = jsonw.FieldHTML(b, "reason", a.Reason)
			b = append(b, `,"at":`...)
			b = jsonw.StringHTML(b, a.At)
			b = jsonw.FieldHTML(b, "status_at", a.StatusAt)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = jsonw.MapHTML(b, "metadata", r.Metadata)
	if c := r.Claim; c != nil {
		b = append(b, `,"claim":{"owner":`...)
		b = jsonw.StringHTML(b, c.Owner)
		b = append(b, `,"until":`...)
		b = strconv.AppendInt(b, c.Until, 10)
		b = jsonw.FieldHTML(b, "channel", c.Channel)
		b = append(b, '}')
	}
	if r.Resume {
		b = append(b, `,"resume":true`...)
	}
	b = jsonw.MapHTML(b, "early", r.Early)
	b = jsonw.MapHTML(b, "early_ch", r.EarlyChannels)
	b = jsonw.FieldHTML(b, "op", r.Op)
	b = jsonw.FieldHTML(b, "op_old", r.OpOld)
	b = jsonw.FieldHTML(b, "dlq", r.DeadLetter)
	return append(b, '}')
}
