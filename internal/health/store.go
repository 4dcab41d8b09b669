// Package health decides which senders of the fleet are usable and tells every process.
//
// The API records what providers report about a sender (Meta's phone_number_quality_update
// and account_update webhooks, a grey instance's state) in a [Store] in Redis; a worker that
// finds an account refused marks the sender unusable for a while ([Watcher.Mark]). [Judge]
// turns a sender's latest events into a [Status], the one place that says whether a sender
// may be used. Each change is published on [Subject] (core NATS) and a [Watcher] in every
// worker keeps every sender's Status in memory, from those messages and from Redis every
// [RefreshEvery] (a missed message heals), so [Watcher.Usable] costs a map lookup.
package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-notify/herald/internal/webhook"
)

// Kinds of event a [Store] keeps per sender: the latest of each.
const (
	// KindQuality is Meta's phone_number_quality_update (FLAGGED, UNFLAGGED, DOWNGRADE,
	// UPGRADE, ...; its messaging tier).
	KindQuality = webhook.FieldPhoneNumberQuality
	// KindFlag is the latest FLAGGED or UNFLAGGED quality update alone: a later DOWNGRADE or
	// UPGRADE replaces the KindQuality event but says nothing of the quality rating, so
	// [Store.Record] keeps the flag apart.
	KindFlag = "quality_flag"
	// KindAccount is Meta's account_update (restriction, ban, violation, and news that
	// changes nothing of the account's standing).
	KindAccount = webhook.FieldAccountUpdate
	// KindStanding is the latest account_update that sets the account's standing alone
	// (ACCOUNT_RESTRICTION, DISABLED_UPDATE, ACCOUNT_VIOLATION, ACCOUNT_DELETED): a later
	// update of another kind replaces the KindAccount event but lifts no restriction, so
	// [Store.Record] keeps the standing apart.
	KindStanding = "account_standing"
	// KindGreyState is a grey instance's stateInstance, as its webhooks report it.
	KindGreyState = "grey_state"
	// KindRefused is a worker's finding that the provider refuses the account (a Cloud API
	// 368, 131031, 131048 or 100/33), for a while: see [Watcher.Mark].
	KindRefused = "refused"
)

// Meta's event names that [Judge] reads.
const (
	EventFlagged            = "FLAGGED"
	EventUnflagged          = "UNFLAGGED"
	EventDowngrade          = "DOWNGRADE"
	EventAccountRestriction = "ACCOUNT_RESTRICTION"
	EventAccountViolation   = "ACCOUNT_VIOLATION"
	EventDisabledUpdate     = "DISABLED_UPDATE"
	EventAccountDeleted     = "ACCOUNT_DELETED"
	// BanReinstate and BanScheduled are ban_info.waba_ban_state values of DISABLED_UPDATE
	// (the third, DISABLE, is a ban).
	BanReinstate = "REINSTATE"
	BanScheduled = "SCHEDULE_FOR_DISABLE"
)

// ErrInvalid is returned (wrapped, naming the field) for an argument that cannot be stored
// or published: an empty or malformed sender id, a non-positive duration.
var ErrInvalid = errors.New("health: invalid argument")

// Event is the latest news of one kind about a sender.
type Event struct {
	// Event is Meta's event (FLAGGED, ACCOUNT_RESTRICTION, ...), the grey state
	// (authorized, blocked, ...) or, for KindRefused, the provider's error code.
	Event string `json:"event"`
	// Limit is the messaging tier a quality update names (TIER_1K, ...).
	Limit string `json:"limit,omitempty"`
	// Detail words the rest (restrictions and their expiry, the old tier, the ban state, why
	// the account was refused).
	Detail string `json:"detail,omitempty"`
	// Ban is ban_info.waba_ban_state of a DISABLED_UPDATE (DISABLE, REINSTATE,
	// SCHEDULE_FOR_DISABLE).
	Ban string `json:"ban,omitempty"`
	// Until is when the event stops counting: a restriction's expiry, a refusal's end. Zero:
	// until a later event.
	Until time.Time `json:"until,omitzero"`
	// At is when the provider (or the worker) says it happened.
	At time.Time `json:"at"`
}

// Store keeps the latest health event of each kind per sender in Redis, shared by every
// process: a hash per sender, herald:sender:{<id>}:health, holding each kind's event (JSON)
// and its time; a refusal is a key of its own, herald:sender:{<id>}:refused, that expires
// with it.
type Store struct{ rdb redis.UniversalClient }

// NewStore returns the store on rdb (not closed by it).
func NewStore(rdb redis.UniversalClient) *Store { return &Store{rdb: rdb} }

func senderPrefix(sender string) string { return "herald:sender:{" + sender + "}:" }
func healthKey(sender string) string    { return senderPrefix(sender) + "health" }
func refusedKey(sender string) string   { return senderPrefix(sender) + "refused" }

// recordScript keeps the newer of the stored and the given event, atomically.
var recordScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1] .. ':at')
if cur and tonumber(cur) > tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], ARGV[1] .. ':at', ARGV[3])
return 1`)

// refuseScript keeps the refusal that lasts longer: ARGV 1 the event, 2 its TTL in ms.
var refuseScript = redis.NewScript(`
if redis.call('PTTL', KEYS[1]) > tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`)

// Record keeps ev as the sender's latest of kind, unless a later one is kept already
// (webhooks arrive in any order). A FLAGGED or UNFLAGGED quality update is kept as KindFlag
// too, and an account update that sets the standing as KindStanding.
func (s *Store) Record(ctx context.Context, sender, kind string, ev Event) error {
	if err := ValidID(sender); err != nil {
		return err
	}
	if kind == "" {
		return fmt.Errorf("%w: kind: empty", ErrInvalid)
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("sender health: %w", err)
	}
	kinds := []string{kind}
	if kind == KindQuality && (ev.Event == EventFlagged || ev.Event == EventUnflagged) {
		kinds = append(kinds, KindFlag)
	}
	if kind == KindAccount && setsStanding(ev.Event) {
		kinds = append(kinds, KindStanding)
	}
	for _, k := range kinds {
		if err := recordScript.Run(ctx, s.rdb, []string{healthKey(sender)}, k, data, ev.At.UnixMilli()).Err(); err != nil {
			return fmt.Errorf("sender health of %s: %w", sender, err)
		}
	}
	return nil
}

// Refuse records that the provider refuses the sender's account for d (a longer refusal
// already kept stays): ev.Until is set to At+d.
func (s *Store) Refuse(ctx context.Context, sender string, ev Event, d time.Duration) error {
	if err := ValidID(sender); err != nil {
		return err
	}
	if d <= 0 {
		return fmt.Errorf("%w: d: %v, want a positive duration", ErrInvalid, d)
	}
	ev.Until = ev.At.Add(d)
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("sender refusal: %w", err)
	}
	ms := max(d.Milliseconds(), 1)
	if err := refuseScript.Run(ctx, s.rdb, []string{refusedKey(sender)}, data, ms).Err(); err != nil {
		return fmt.Errorf("sender refusal of %s: %w", sender, err)
	}
	return nil
}

// storedKinds are the hash fields Latest reads (KindRefused has its own key).
var storedKinds = []string{KindQuality, KindFlag, KindAccount, KindStanding, KindGreyState}

// setsStanding reports whether an account_update event says what the account may do.
func setsStanding(event string) bool {
	switch event {
	case EventAccountRestriction, EventDisabledUpdate, EventAccountViolation, EventAccountDeleted:
		return true
	}
	return false
}

// Latest returns each sender's latest events by kind; a sender with none is absent.
func (s *Store) Latest(ctx context.Context, senders []string) (map[string]map[string]Event, error) {
	hashes := make([]*redis.MapStringStringCmd, len(senders))
	refused := make([]*redis.StringCmd, len(senders))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range senders {
			hashes[i] = p.HGetAll(ctx, healthKey(id))
			refused[i] = p.Get(ctx, refusedKey(id))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("sender health: %w", err)
	}
	out := map[string]map[string]Event{}
	add := func(id, kind, raw string) {
		var ev Event
		if raw == "" || json.Unmarshal([]byte(raw), &ev) != nil {
			return // a field some other version wrote, or none
		}
		if out[id] == nil {
			out[id] = map[string]Event{}
		}
		out[id][kind] = ev
	}
	for i, id := range senders {
		for _, kind := range storedKinds {
			add(id, kind, hashes[i].Val()[kind])
		}
		add(id, KindRefused, refused[i].Val())
	}
	return out, nil
}

// ValidID checks a sender id before it goes into a Redis key or a NATS subject: the fleet's
// ids are [a-z0-9-]{1,63}, and the single-sender deployment's are of the same letters.
func ValidID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: sender: empty", ErrInvalid)
	}
	if len(id) > 63 {
		return fmt.Errorf("%w: sender %.63q…: longer than 63 characters", ErrInvalid, id)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%w: sender %q: %q is not a letter, digit, - or _", ErrInvalid, id, c)
		}
	}
	return nil
}
