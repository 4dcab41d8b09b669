// Package consent keeps Herald's opt-out lists. The truth is the JetStream key-value bucket
// herald-consent: the latest event per number, so a flood of STOP and START messages cannot
// grow it. Every change to the list of numbers that receive nothing is also published on
// herald.events.optout (the HERALD_OPTOUT stream, a bounded log for business systems), and
// the Redis sets the workers check are a cache of the bucket, rebuilt from it when Redis lost
// them.
//
// Events are ordered by their own time (the provider's timestamp of the customer's message,
// the operator's clock): Meta and GREEN-API redeliver webhooks, so an older START may arrive
// after a newer STOP, and it must change nothing, in the bucket as in Redis.
//
// Two lists exist per scope: the numbers that receive nothing (STOP words, operators), and
// the numbers that stopped marketing messages (Meta's user_preferences webhook). Consent is
// given to a business, so the scope is a tenant: a STOP to shop does not silence bank. The
// scope "" is the deployment-wide list, which only an operator changes and which silences
// every tenant.
package consent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/streams"
)

// Actions of an opt-out event.
const (
	Stop  = "stop"
	Start = "start"
)

// CategoryMarketing is the category of a marketing preference: a Stop suppresses marketing
// template messages only. The empty category is every message.
const CategoryMarketing = "marketing"

// DefaultStopWords and DefaultStartWords are used when HERALD_STOP_WORDS and
// HERALD_START_WORDS are not set. A message opts out only when it is one of these words
// (case and surrounding punctuation ignored), so "не останавливайте доставку" stops nothing.
var (
	DefaultStopWords  = []string{"STOP", "СТОП", "ОТПИСАТЬСЯ", "ОТПИСКА", "UNSUBSCRIBE", "STOPALL", "CANCEL"}
	DefaultStartWords = []string{"START", "СТАРТ", "ПОДПИСАТЬСЯ", "UNSTOP", "SUBSCRIBE"}
)

// Words recognises STOP and START messages.
type Words struct {
	stop, start map[string]bool
}

// NewWords returns a matcher; nil lists take the defaults.
func NewWords(stop, start []string) *Words {
	if len(stop) == 0 {
		stop = DefaultStopWords
	}
	if len(start) == 0 {
		start = DefaultStartWords
	}
	w := &Words{stop: map[string]bool{}, start: map[string]bool{}}
	for _, s := range stop {
		w.stop[normalize(s)] = true
	}
	for _, s := range start {
		w.start[normalize(s)] = true
	}
	return w
}

// Match returns Stop, Start or "" for an inbound message text.
func (w *Words) Match(text string) string {
	n := normalize(text)
	switch {
	case n == "":
		return ""
	case w.stop[n]:
		return Stop
	case w.start[n]:
		return Start
	}
	return ""
}

func normalize(s string) string {
	s = strings.TrimFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsPunct(r) || unicode.IsSymbol(r) })
	return strings.ToUpper(strings.ReplaceAll(s, "Ё", "Е"))
}

// Event is one consent change, as stored in herald-consent and published on
// herald.events.optout.
type Event struct {
	// Phone is the recipient in E.164.
	Phone string `json:"phone"`
	// Action is Stop or Start.
	Action string `json:"action"`
	// Category is "" (every message) or CategoryMarketing.
	Category string `json:"category,omitempty"`
	// Scope is whose list it is: a tenant, or "" for the deployment-wide list (operators
	// only; it silences every tenant).
	Scope string `json:"scope,omitempty"`
	// Source says who decided: "inbound:white", "inbound:grey", "operator:<tenant>",
	// "user_preferences:white".
	Source string `json:"source"`
	// Ref identifies the cause (the inbound message id); it makes a repeated webhook one event.
	Ref string `json:"ref,omitempty"`
	// At is when the decision was made: the provider's timestamp when there is one. It
	// orders events: one older than the latest recorded for its number changes nothing.
	At time.Time `json:"at"`
}

// Outcome is what Record did with an event.
type Outcome int

// Outcomes of Record.
const (
	// Applied: the event is the number's latest; the list follows it.
	Applied Outcome = iota
	// Duplicate: the same event was recorded before (a repeated webhook).
	Duplicate
	// Stale: a newer event for the number was recorded before; nothing changed.
	Stale
)

func (o Outcome) String() string {
	switch o {
	case Applied:
		return "applied"
	case Duplicate:
		return "duplicate"
	case Stale:
		return "stale"
	}
	return "unknown"
}

// ErrInvalid is returned for an event with a bad phone number, action, category or scope.
var ErrInvalid = errors.New("consent: invalid event")

// Store records consent and answers whether a number is suppressed.
type Store struct {
	js  jetstream.JetStream
	kv  jetstream.KeyValue
	rdb redis.UniversalClient
}

// Open returns the store on the herald-consent bucket (streams.Ensure creates it).
func Open(ctx context.Context, js jetstream.JetStream, rdb redis.UniversalClient) (*Store, error) {
	kv, err := js.KeyValue(ctx, streams.ConsentKV)
	if err != nil {
		return nil, fmt.Errorf("consent: bucket %s: %w", streams.ConsentKV, err)
	}
	return &Store{js: js, kv: kv, rdb: rdb}, nil
}

// MarketingKey is the Redis set of the numbers that stopped marketing messages in scope
// ("" for the deployment): the claim suppresses a marketing template job to one of them.
func MarketingKey(scope string) string { return status.MarketingKey(scope) }

// syncedKey marks a Redis whose suppression sets were rebuilt from the bucket (see Rebuild).
const syncedKey = "herald:consent:synced"

// timesKey is the hash of the time of the latest event applied to each number of a set:
// Redis orders events as the bucket does, so the two never disagree.
func timesKey(set string) string { return set + ":at" }

func setKey(ev Event) string {
	switch {
	case ev.Category == CategoryMarketing:
		return MarketingKey(ev.Scope)
	case ev.Scope != "":
		return status.SuppressedKey(ev.Scope)
	}
	return status.KeySuppressed
}

// kvKey is the event's key in herald-consent: one per number and list.
func kvKey(ev Event) string {
	d := strings.TrimPrefix(ev.Phone, "+")
	switch {
	case ev.Category == CategoryMarketing:
		return "marketing." + scopeToken(ev.Scope) + "." + d
	case ev.Scope != "":
		return "tenant." + ev.Scope + "." + d
	}
	return d // the deployment-wide list, keyed as before tenants
}

func scopeToken(scope string) string {
	if scope == "" {
		return "_"
	}
	return scope
}

// validScope: "" (the deployment) or a tenant name.
func validScope(s string) bool { return s == "" || job.ValidTenant(s) }

func (ev *Event) validate() error {
	if ev.Action != Stop && ev.Action != Start {
		return fmt.Errorf("%w: action %q is neither stop nor start", ErrInvalid, ev.Action)
	}
	d := strings.TrimPrefix(ev.Phone, "+")
	if !strings.HasPrefix(ev.Phone, "+") || len(d) < 7 || len(d) > 15 || strings.Trim(d, "0123456789") != "" {
		return fmt.Errorf("%w: phone must be E.164", ErrInvalid)
	}
	if !validScope(ev.Scope) {
		return fmt.Errorf("%w: scope must be empty (the deployment) or a tenant name (a-z, 0-9, -)", ErrInvalid)
	}
	switch ev.Category {
	case "", CategoryMarketing:
	default:
		return fmt.Errorf("%w: category %q is neither empty nor %q", ErrInvalid, ev.Category, CategoryMarketing)
	}
	return nil
}

func (ev Event) same(o Event) bool {
	return ev.Action == o.Action && ev.Source == o.Source && ev.Ref == o.Ref && ev.At.Equal(o.At)
}

// maxCAS bounds the read-compare-write rounds of one Record against concurrent writers of
// the same number.
const maxCAS = 10

// Record stores ev unless an event at least as new is stored for its number, then publishes
// it on herald.events.optout (every-message list only) and applies it to Redis. An event
// older than the number's latest is Stale and changes nothing; the same event again is a
// Duplicate, whose log entry and Redis update are made again (both are idempotent), so a
// webhook retried after a failure completes what the first delivery left undone. An error
// means "retry": nothing older than the truth was written anywhere.
func (s *Store) Record(ctx context.Context, ev Event) (Outcome, error) {
	if err := ev.validate(); err != nil {
		return 0, err
	}
	if ev.At.IsZero() {
		ev.At = time.Now().UTC()
	}
	outcome, err := s.put(ctx, ev)
	if err != nil || outcome == Stale {
		return outcome, err
	}
	if ev.Category == "" {
		data, _ := json.Marshal(ev)
		msg := &nats.Msg{Subject: streams.SubjectOptOut, Data: data, Header: nats.Header{}}
		if ev.Ref != "" {
			msg.Header.Set(streams.HeaderMsgID, "optout:"+scopeToken(ev.Scope)+":"+ev.Action+":"+ev.Ref)
		}
		if _, err := s.js.PublishMsg(ctx, msg); err != nil {
			return outcome, fmt.Errorf("consent: publish opt-out event: %w", err)
		}
	}
	if _, err := applyScript.Run(ctx, s.rdb, []string{setKey(ev), timesKey(setKey(ev))},
		ev.Phone, ev.Action, ev.At.UnixMilli()).Result(); err != nil {
		return outcome, fmt.Errorf("consent: update the suppression set: %w", err)
	}
	return outcome, nil
}

// put writes ev to the bucket unless the number's stored event is newer (compare and swap
// on the key's revision, so two writers cannot both win).
func (s *Store) put(ctx context.Context, ev Event) (Outcome, error) {
	key := kvKey(ev)
	data, _ := json.Marshal(ev)
	for range maxCAS {
		var rev uint64
		entry, err := s.kv.Get(ctx, key)
		switch {
		case err == nil:
			var prev Event
			if json.Unmarshal(entry.Value(), &prev) == nil {
				if ev.At.Before(prev.At) {
					return Stale, nil
				}
				if ev.same(prev) {
					return Duplicate, nil
				}
			}
			rev = entry.Revision()
			_, err = s.kv.Update(ctx, key, data, rev)
		case errors.Is(err, jetstream.ErrKeyNotFound):
			_, err = s.kv.Create(ctx, key, data)
		default:
			return 0, fmt.Errorf("consent: read %s: %w", streams.ConsentKV, err)
		}
		if err == nil {
			return Applied, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return 0, fmt.Errorf("consent: write %s: %w", streams.ConsentKV, err)
		}
		// Another writer got there first: compare with what it wrote.
	}
	return 0, fmt.Errorf("consent: %s: the number's event changed %d times while recording", streams.ConsentKV, maxCAS)
}

// applyScript applies one event to a Redis set unless the set's times hash holds a newer one
// for the number. KEYS: set, times hash. ARGV: phone, action, event time (Unix ms).
var applyScript = redis.NewScript(`
local prev = redis.call('HGET', KEYS[2], ARGV[1])
if prev and tonumber(prev) > tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
if ARGV[2] == 'stop' then
  redis.call('SADD', KEYS[1], ARGV[1])
else
  redis.call('SREM', KEYS[1], ARGV[1])
end
return 1
`)

// Suppressed tells whether phone receives nothing from tenant: it is on tenant's list or on
// the deployment-wide one ("" asks about the deployment-wide list alone).
func (s *Store) Suppressed(ctx context.Context, tenant, phone string) (bool, error) {
	return s.member(ctx, status.KeySuppressed, tenant, status.SuppressedKey, phone)
}

// MarketingSuppressed tells whether phone stopped tenant's marketing messages (or every
// tenant's: the deployment-wide marketing list).
func (s *Store) MarketingSuppressed(ctx context.Context, tenant, phone string) (bool, error) {
	return s.member(ctx, MarketingKey(""), tenant, MarketingKey, phone)
}

func (s *Store) member(ctx context.Context, global, tenant string, key func(string) string, phone string) (bool, error) {
	pipe := s.rdb.Pipeline()
	g := pipe.SIsMember(ctx, global, phone)
	var t *redis.BoolCmd
	if tenant != "" {
		t = pipe.SIsMember(ctx, key(tenant), phone)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return false, err
	}
	return g.Val() || (t != nil && t.Val()), nil
}

// Latest returns the latest event that decides whether phone receives tenant's messages:
// the newer of tenant's own and the deployment-wide one (nil when neither exists).
func (s *Store) Latest(ctx context.Context, tenant, phone string) (*Event, error) {
	var latest *Event
	for _, scope := range []string{"", tenant} {
		entry, err := s.kv.Get(ctx, kvKey(Event{Phone: phone, Scope: scope}))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("consent: read %s: %w", streams.ConsentKV, err)
		}
		var ev Event
		if json.Unmarshal(entry.Value(), &ev) != nil {
			continue
		}
		if latest == nil || ev.At.After(latest.At) {
			latest = &ev
		}
	}
	return latest, nil
}

// Rebuild makes Redis agree with the bucket after Redis lost its data (or was replaced):
// every number's latest event is applied, with the same ordering as Record, so an event
// recorded meanwhile is never undone. It first copies the events of an earlier version's
// unbounded HERALD_OPTOUT into the bucket (once), then bounds that stream. It returns how
// many numbers receive nothing; -1 when Redis had its data and was left alone.
func (s *Store) Rebuild(ctx context.Context, log *slog.Logger) (int, error) {
	if err := s.migrate(ctx, log); err != nil {
		return 0, err
	}
	// The marker goes with Redis's data: present, the sets are whole (Record keeps them);
	// absent, Redis is new or lost its data, and the sets are rebuilt.
	n, err := s.rdb.Exists(ctx, syncedKey, timesKey(status.KeySuppressed)).Result()
	if err != nil {
		return 0, fmt.Errorf("consent: check the suppression set: %w", err)
	}
	if n > 0 {
		return -1, nil
	}
	start := time.Now()
	w, err := s.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return 0, fmt.Errorf("consent: read %s: %w", streams.ConsentKV, err)
	}
	defer func() { _ = w.Stop() }()
	pipe := s.rdb.Pipeline()
	stops, events, queued := 0, 0, 0
	flush := func() error {
		if queued == 0 {
			return nil
		}
		queued = 0
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("consent: write the suppression sets: %w", err)
		}
		return nil
	}
	for entry := range w.Updates() {
		if entry == nil {
			break // every current value has been delivered
		}
		if entry.Key() == streams.ConsentMigrated {
			continue
		}
		var ev Event
		if json.Unmarshal(entry.Value(), &ev) != nil || ev.validate() != nil {
			log.Warn("consent: unreadable consent entry skipped", "key_len", len(entry.Key()))
			continue
		}
		events++
		if ev.Category == "" && ev.Action == Stop {
			stops++
		}
		set := setKey(ev)
		// EVAL, not EVALSHA: a pipeline learns of a missing script only when it is too late.
		applyScript.Eval(ctx, pipe, []string{set, timesKey(set)}, ev.Phone, ev.Action, ev.At.UnixMilli())
		if queued++; queued == 1000 {
			if err := flush(); err != nil {
				return 0, err
			}
		}
	}
	if err := flush(); err != nil {
		return 0, err
	}
	if err := s.rdb.Set(ctx, syncedKey, time.Now().UTC().Format(time.RFC3339), 0).Err(); err != nil {
		return 0, fmt.Errorf("consent: mark the suppression sets rebuilt: %w", err)
	}
	log.Info("consent: suppression sets rebuilt from the consent bucket", "suppressed", stops, "numbers", events,
		"took", time.Since(start).Round(time.Millisecond))
	return stops, nil
}

// migrate copies, once, every event of HERALD_OPTOUT into the bucket: before the bucket,
// that stream was the truth, and it is bounded (its old events deleted) only after.
func (s *Store) migrate(ctx context.Context, log *slog.Logger) error {
	if _, err := s.kv.Get(ctx, streams.ConsentMigrated); err == nil {
		return nil
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("consent: read %s: %w", streams.ConsentKV, err)
	}
	stream, err := s.js.Stream(ctx, streams.OptOutStream)
	if err != nil {
		return fmt.Errorf("consent: opt-out stream: %w", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("consent: opt-out stream: %w", err)
	}
	copied := 0
	if last := info.State.LastSeq; info.State.Msgs > 0 {
		cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{streams.SubjectOptOut}})
		if err != nil {
			return fmt.Errorf("consent: read the opt-out stream: %w", err)
		}
		for {
			batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
			if err != nil {
				return fmt.Errorf("consent: read the opt-out stream: %w", err)
			}
			var seq uint64
			got := 0
			for m := range batch.Messages() {
				got++
				if md, _ := m.Metadata(); md != nil {
					seq = md.Sequence.Stream
				}
				var ev Event
				if json.Unmarshal(m.Data(), &ev) != nil || ev.validate() != nil {
					log.Warn("consent: unreadable opt-out event skipped")
					continue
				}
				// In stream order, and ordered by time: an event recorded meanwhile by a
				// newer process is not undone.
				if _, err := s.put(ctx, ev); err != nil {
					return err
				}
				copied++
			}
			if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
				return fmt.Errorf("consent: read the opt-out stream: %w", err)
			}
			if seq >= last || got == 0 {
				break
			}
		}
	}
	if _, err := s.kv.Put(ctx, streams.ConsentMigrated, []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
		return fmt.Errorf("consent: mark %s migrated: %w", streams.ConsentKV, err)
	}
	if err := streams.BoundOptOutLog(ctx, s.js); err != nil {
		return err
	}
	if copied > 0 {
		log.Info("consent: opt-out events copied into the consent bucket; the opt-out stream is now a bounded log",
			"events", copied, "bucket", streams.ConsentKV)
	}
	return nil
}
