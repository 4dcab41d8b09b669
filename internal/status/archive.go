package status

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/herald-notify/herald/internal/job"
)

// History out of Redis. A finished record (Finished) is written to the history bucket
// (streams.HistoryKV, a JetStream KV bucket whose entries live HERALD_STATUS_TTL), and only
// then does retire.lua shorten its stay in Redis to HERALD_HOT_TTL and leave a tombstone
// (herald:d:{<ref>}, its final state as one digit, under 90 bytes) for HERALD_STATUS_TTL. So:
//
//   - Redis holds the records of the notifications still moving, and of finished ones for
//     HOT_TTL; past it, Get and GetMany read the bucket, so every reader (the API, the
//     console, the campaign views, herald status) finds the record where it is;
//   - the scripts that create records (begin, settle, create) refuse a job whose tombstone is
//     there, so a republished id stays a duplicate for the whole STATUS_TTL;
//   - a late status report applies to the bucket's copy (compare-and-set on its revision)
//     and never brings the 1 KB record back into Redis; the provider message id → job ref
//     index is in the bucket too (m.<message id>), for reports that name only the message;
//   - a record whose write to the bucket fails keeps its full TTL in Redis: it costs memory,
//     never the record.

// tombstoneStates are the states a tombstone records, by their code: one digit, which Redis
// stores as a shared integer, 16 bytes less per id than the state's name.
var tombstoneStates = []string{"", Sent, Delivered, Read, Failed, Expired, Suppressed, Rejected, Canceled}

// tombstone is the value of a tombstone recording state.
func tombstone(state string) string {
	for i, s := range tombstoneStates {
		if s == state && i > 0 {
			return strconv.Itoa(i)
		}
	}
	return "0"
}

// tombstoneState is the state a tombstone's value records ("" for an unknown code).
func tombstoneState(v string) string {
	i, err := strconv.Atoi(v)
	if err != nil || i < 0 || i >= len(tombstoneStates) {
		return ""
	}
	return tombstoneStates[i]
}

// doneKey is the tombstone of a finished job ref whose record moved to the history. Braces
// keep it on the record's Redis Cluster slot: the scripts name both.
func doneKey(ref string) string { return "herald:d:{" + ref + "}" }

// Finished tells whether a record needs nothing more from a worker: no claim, no fallback
// to carry out, no early report waiting for its send, and a state that only a provider's
// report can still change (delivered → read, a late failed): a terminal state, delivered
// or read, or sent on the last channel of its cascade (no delivery deadline can move it
// on). A sent attempt whose outcome is unknown is not finished: it waits for its report or
// its deadline with the record in Redis.
func Finished(r *Record) bool {
	if r == nil || r.Claim != nil || r.Resume || len(r.Early) > 0 {
		return false
	}
	switch r.State {
	case Delivered, Read:
		return true
	case Sent:
		if n := len(r.History); n > 0 && r.History[n-1].State == "unknown" {
			return false
		}
		return r.ChannelIdx >= len(r.Channels)-1
	}
	return Terminal(r.State)
}

// Archive is the history bucket: finished records by tenant and id, and the provider
// message ids of their attempts.
type Archive struct {
	kv  jetstream.KeyValue
	log *slog.Logger
	// queue hands finished records to the archivers, so that a worker's outcome or a
	// webhook does not wait for two JetStream writes; ctx ends them.
	queue chan retirement
	ctx   context.Context
	wg    sync.WaitGroup
}

// retirement is a finished record waiting to be archived and retired.
type retirement struct {
	s   *Store
	raw string
	rec *Record
}

// archivers and archiveQueue size the background archiving: a few writers keep up with
// thousands of records a second (each is two KV puts), and a full queue makes the caller
// archive its record itself, which slows it rather than dropping anything.
const (
	archivers    = 4
	archiveQueue = 4096
)

// NewArchive returns the history in kv (the streams.HistoryKV bucket) and starts its
// archivers, which stop when ctx ends (records queued then keep their full TTL in Redis;
// after it each caller archives its own). log (nil: the default logger) reports records
// whose archiving failed and which therefore stay in Redis.
func NewArchive(ctx context.Context, kv jetstream.KeyValue, log *slog.Logger) *Archive {
	if log == nil {
		log = slog.Default()
	}
	a := &Archive{kv: kv, log: log, queue: make(chan retirement, archiveQueue), ctx: ctx}
	a.wg.Add(archivers)
	for range archivers {
		go func() {
			defer a.wg.Done()
			a.run()
		}()
	}
	return a
}

// Wait returns once the archivers have stopped (after the context given to NewArchive
// ended), so that the Redis client they use can be closed.
func (a *Archive) Wait() { a.wg.Wait() }

// run archives queued records until the archive's context ends.
func (a *Archive) run() {
	for {
		select {
		case <-a.ctx.Done():
			return
		case r := <-a.queue:
			ctx, cancel := context.WithTimeout(a.ctx, 30*time.Second)
			r.s.retireNow(ctx, r.raw, r.rec)
			cancel()
		}
	}
}

// ArchiveKey is the bucket key of a job ref ("<tenant>/<id>"): n.<tenant>.<id>, the id
// key-safe (KeySafe). Tenant names are key-safe already.
func ArchiveKey(ref string) string {
	tenant, id, _ := strings.Cut(ref, "/")
	return "n." + tenant + "." + KeySafe(id)
}

// archiveMessageKey is the bucket key of the index entry of a provider message id.
func archiveMessageKey(msgID string) string { return "m." + KeySafe(msgID) }

// KeySafe writes s as one token of a KV key: letters, digits, '-' and '_' as they are,
// every other byte as =XX (its hex). Job ids allow '.' and ':', a KV key neither ':' nor an
// empty token, and provider message ids may hold anything; '=' is always escaped, so two
// values never share a key.
func KeySafe(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := range len(s) {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			b.WriteByte(c)
		default:
			b.WriteByte('=')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// get returns the stored value of key and its revision, or ErrNotFound.
func (a *Archive) get(ctx context.Context, key string) (string, uint64, error) {
	e, err := a.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", 0, ErrNotFound
	}
	if err != nil {
		return "", 0, fmt.Errorf("history get: %w", err)
	}
	return string(e.Value()), e.Revision(), nil
}

// put stores a record's JSON and the message index entries of its attempts.
func (a *Archive) put(ctx context.Context, ref, raw string, rec *Record) error {
	if _, err := a.kv.PutString(ctx, ArchiveKey(ref), raw); err != nil {
		return fmt.Errorf("history put: %w", err)
	}
	for _, id := range messageIDs(rec) {
		if _, err := a.kv.PutString(ctx, archiveMessageKey(id), ref); err != nil {
			return fmt.Errorf("history put message index: %w", err)
		}
	}
	return nil
}

// messageIDs are the provider message ids of a record's attempts, each once.
func messageIDs(rec *Record) []string {
	var ids []string
	for _, a := range rec.History {
		if a.ProviderMessageID != "" && (len(ids) == 0 || ids[len(ids)-1] != a.ProviderMessageID) {
			ids = append(ids, a.ProviderMessageID)
		}
	}
	return ids
}

// retire hands a record the store just saved, when it is finished, to the archivers (or,
// their queue full or stopped, archives it at once).
func (s *Store) retire(ctx context.Context, raw string, rec *Record) {
	if s.arch == nil || !Finished(rec) {
		return
	}
	if s.arch.ctx.Err() == nil {
		select {
		case s.arch.queue <- retirement{s: s, raw: raw, rec: rec}:
			return
		default:
		}
	}
	s.retireNow(ctx, raw, rec)
}

// retireNow archives a finished record, then shortens its stay in Redis (retire.lua). A
// record changed meanwhile is archived again as it is now (a few rounds at most: each round
// means another writer, who retires it too). It never fails the caller: a record it could
// not archive keeps its full TTL in Redis and is logged.
func (s *Store) retireNow(ctx context.Context, raw string, rec *Record) {
	ref := rec.Ref()
	for range 3 {
		if !Finished(rec) {
			return
		}
		if err := s.arch.put(ctx, ref, raw, rec); err != nil {
			s.arch.log.Warn("finished record not archived: it stays in Redis for HERALD_STATUS_TTL", "ref", ref, "err", err)
			return
		}
		a := retireArgs{Record: RecordKey(ref), Done: doneKey(ref), Archived: raw, HotMS: s.hot.Milliseconds(),
			TTLMS: s.ttl.Milliseconds(), State: tombstone(rec.State)}
		res, err := run(ctx, s.sc, &a).StringSlice()
		if err != nil {
			s.arch.log.Warn("archived record not retired from Redis", "ref", ref, "err", err)
			return
		}
		if res[0] != "moved" || len(res) < 2 {
			if ids := messageIDs(rec); res[0] == "ok" && len(ids) > 0 {
				// The message index follows the record out, in one round trip.
				_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
					for _, id := range ids {
						p.PExpire(ctx, messageKey(id), s.hot)
					}
					return nil
				})
			}
			return
		}
		raw = res[1]
		if rec, err = unmarshalRecord(raw); err != nil {
			return
		}
	}
}

// archived returns the history's record of ref, for a script that found only its tombstone
// (done, its value): the bucket's copy, else (the bucket unreachable, or the copy lost) a
// record of the id, tenant and state alone, which is all a duplicate needs.
func (s *Store) archived(ctx context.Context, ref, done string) *Record {
	if s.arch != nil {
		if raw, _, err := s.arch.get(ctx, ArchiveKey(ref)); err == nil {
			if rec, err := unmarshalRecord(raw); err == nil {
				return rec
			}
		}
	}
	tenant, id, _ := strings.Cut(ref, "/")
	return &Record{ID: id, Tenant: job.TenantOr(tenant), State: tombstoneState(done)}
}

// applyArchived applies a report to the history's copy of ref's record (status.lua with
// the copy in archived: nothing is written to Redis), writes the result back on the
// revision it read, and counts the state change in the campaign and the tombstone; a
// concurrent change to the copy makes it read and apply again.
func (s *Store) applyArchived(ctx context.Context, ref string, a statusArgs) (old string, rec *Record, changed bool, err error) {
	key := ArchiveKey(ref)
	for range 5 {
		raw, rev, err := s.arch.get(ctx, key)
		if err != nil {
			return "", nil, false, err
		}
		a.Archived = raw
		res, err := run(ctx, s.sc, &a).StringSlice()
		if err != nil {
			return "", nil, false, fmt.Errorf("status apply: %w", err)
		}
		old, rec, changed, err := statusReply(res)
		if err != nil || !changed {
			return old, rec, changed, err
		}
		if _, err := s.arch.kv.Update(ctx, key, []byte(res[1]), rev); err != nil {
			if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
				continue // another report changed the copy since it was read
			}
			return "", nil, false, fmt.Errorf("history update: %w", err)
		}
		if old != rec.State {
			pipe := s.rdb.Pipeline()
			if rec.Campaign != "" {
				ck := CampaignKey(rec.Tenant, rec.Campaign)
				pipe.HIncrBy(ctx, ck, "s:"+old, -1)
				pipe.HIncrBy(ctx, ck, "s:"+rec.State, 1)
			}
			pipe.SetArgs(ctx, doneKey(ref), tombstone(rec.State), redis.SetArgs{Mode: "XX", KeepTTL: true})
			if _, err := pipe.Exec(ctx); err != nil {
				return old, rec, changed, fmt.Errorf("status apply: counters: %w", err)
			}
		}
		return old, rec, changed, nil
	}
	return "", nil, false, fmt.Errorf("status apply %s: the history copy kept changing", ref)
}
