package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/herald-notify/herald/worker"
)

// memStore is a worker.Store in memory, for one process: the same rules as Herald's Redis
// store, under a mutex instead of Lua scripts. A claim gives a job to one delivery at a time;
// a job once sent or final is never claimed again (a redelivery is a duplicate); a claim that
// ran out during a send leaves the job in doubt (sent, attempt unknown) rather than sending
// it twice. Records are handed out as copies, so the worker never shares them with the store.
type memStore struct {
	notify  func()
	mu      sync.Mutex
	recs    map[string]*worker.Record // by job ref (worker.JobRef)
	windows map[string]bool           // recipients whose 24-hour window is open
	optOuts map[string]bool           // recipients who opted out
}

var _ worker.Store = (*memStore)(nil)

func newMemStore(notify func()) *memStore {
	return &memStore{notify: notify, recs: map[string]*worker.Record{}, windows: map[string]bool{}, optOuts: map[string]bool{}}
}

func (s *memStore) openWindow(to string) { s.mu.Lock(); s.windows[to] = true; s.mu.Unlock() }
func (s *memStore) optOut(to string)     { s.mu.Lock(); s.optOuts[to] = true; s.mu.Unlock() }

// state is the job's record state ("" when there is none).
func (s *memStore) state(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.recs[worker.JobRef("", id)]; ok {
		return r.State
	}
	return ""
}

// rank orders the states a record moves forward through; final states are apart.
var rank = map[string]int{worker.StateQueued: 0, worker.StateScheduled: 1, worker.StateSent: 2, worker.StateDelivered: 3, worker.StateRead: 4}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func clone(r *worker.Record) *worker.Record {
	c := *r
	c.History = slices.Clone(r.History)
	c.Channels = slices.Clone(r.Channels)
	if r.Claim != nil {
		cl := *r.Claim
		c.Claim = &cl
	}
	return &c
}

// save stores rec and tells the waiting program something changed.
func (s *memStore) save(rec *worker.Record) *worker.Record {
	s.recs[rec.Ref()] = rec
	s.notify()
	return clone(rec)
}

// Begin claims j for owner, unless it was handled before, another delivery holds it, its
// last holder died mid-send or its recipient opted out.
func (s *memStore) Begin(ctx context.Context, j *worker.Job, owner string, lease time.Duration, channels []string) (worker.Admission, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, found := s.load(j, channels)
	return s.admit(rec, found, j, owner, lease), nil
}

// BeginReplay is Begin for a job replayed from the DLQ: a failed or rejected job whose every
// attempt is known not to have reached the customer starts its cascade again.
func (s *memStore) BeginReplay(ctx context.Context, j *worker.Job, owner string, lease time.Duration, channels []string) (worker.Admission, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, found := s.load(j, channels)
	if rec.State == worker.StateFailed || rec.State == worker.StateRejected {
		reached := slices.ContainsFunc(rec.History, func(a worker.Attempt) bool {
			return a.State == worker.StateSent || a.State == worker.StateDelivered || a.State == worker.StateRead || a.State == "unknown"
		})
		if !reached {
			rec.State, rec.ChannelIdx, rec.Attempts, rec.Reason, rec.DeadLetter = worker.StateQueued, 0, 0, "replayed from the DLQ", ""
		}
	}
	return s.admit(rec, found, j, owner, lease), nil
}

// BeginCheck is Begin for a fallback check: it claims the job only if the record has a
// fallback to carry out, or, for a deadline, if the attempt at c.Idx is still the current
// one, only sent, and has a next channel.
func (s *memStore) BeginCheck(ctx context.Context, j *worker.Job, owner string, lease time.Duration, channels []string, c worker.Check) (worker.Admission, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, found := s.load(j, channels)
	if !found {
		// A check for a job the store no longer knows: sending from the first channel again
		// could repeat a message that went out.
		return worker.Admission{Verdict: worker.VerdictDone, Record: clone(rec), WindowOpen: s.windows[j.To]}, nil
	}
	if !rec.Resume {
		live := rec.Claim != nil && rec.Claim.Until > time.Now().UnixMilli()
		if !c.Deadline || rec.State != worker.StateSent || rec.ChannelIdx != c.Idx || len(rec.Channels) <= c.Idx+1 || live {
			return worker.Admission{Verdict: worker.VerdictDone, Record: clone(rec), WindowOpen: s.windows[j.To]}, nil
		}
		now := stamp(time.Now())
		rec.History = append(rec.History, worker.Attempt{Channel: rec.Channel, State: worker.StateFailed, Code: "deadline", Reason: c.Reason, At: now})
		rec.Resume = true
		rec.ChannelIdx = c.Idx + 1
		rec.Channel = rec.Channels[c.Idx+1]
		rec.Attempts = 0
		rec.Reason = c.Reason
	}
	return s.admit(rec, found, j, owner, lease), nil
}

// load returns a copy of the job's record, or its first record when it has none.
func (s *memStore) load(j *worker.Job, channels []string) (*worker.Record, bool) {
	if r, ok := s.recs[j.Ref()]; ok {
		return clone(r), true
	}
	return worker.NewRecord(j, worker.StateQueued, channels, time.Now()), false
}

func (s *memStore) admit(rec *worker.Record, found bool, j *worker.Job, owner string, lease time.Duration) worker.Admission {
	now := time.Now()
	adm := func(v worker.Verdict, r *worker.Record) worker.Admission {
		return worker.Admission{Verdict: v, Record: r, WindowOpen: s.windows[j.To]}
	}
	if worker.IsTerminal(rec.State) {
		return adm(worker.VerdictDone, rec)
	}
	if n := len(rec.History); rec.State == worker.StateSent && !rec.Resume && rec.Claim == nil && n > 0 && rec.History[n-1].State == "unknown" {
		return adm(worker.VerdictAmbiguous, rec) // still in doubt: say so again
	}
	if rank[rec.State] >= rank[worker.StateSent] && !rec.Resume {
		return adm(worker.VerdictDone, rec)
	}
	if c := rec.Claim; c != nil && c.Owner != owner {
		if left := time.UnixMilli(c.Until).Sub(now); left > 0 {
			a := adm(worker.VerdictBusy, rec)
			a.Wait = left
			return a
		}
		// The holder's lease ran out before it recorded an outcome: it died during the
		// provider call, which may have reached the customer. Never resent on this channel.
		rec.History = append(rec.History, worker.Attempt{Channel: c.Channel, State: "unknown",
			Reason: "worker stopped during the provider call; not resent to avoid a duplicate", At: stamp(now)})
		rec.Claim, rec.Resume, rec.State, rec.Reason, rec.UpdatedAt = nil, false, worker.StateSent, "outcome unknown", stamp(now)
		return adm(worker.VerdictAmbiguous, s.save(rec))
	}
	if s.optOuts[j.To] {
		rec.State, rec.Reason, rec.Claim, rec.UpdatedAt = worker.StateSuppressed, "recipient opted out", nil, stamp(now)
		return adm(worker.VerdictSuppressed, s.save(rec))
	}
	rec.Claim = &worker.Claim{Owner: owner, Until: now.Add(lease).UnixMilli(), Channel: rec.Channel}
	if !found && rec.CreatedAt == "" {
		rec.CreatedAt = stamp(now)
	}
	return adm(worker.VerdictClaimed, s.save(rec))
}

// Attempt records the outcome of a send attempt. The same outcome of the same delivery
// recorded twice (a retry after a lost reply) changes nothing and answers as the first time.
func (s *memStore) Attempt(ctx context.Context, ref, owner string, o worker.Outcome) (string, *worker.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[ref]
	if !ok {
		return "", nil, worker.ErrRecordNotFound
	}
	rec := clone(r)
	op := fmt.Sprintf("%s|%s|%d|%d", owner, o.Mode, o.ChannelIdx, o.Attempts)
	if rec.Op == op {
		return rec.OpOld, rec, nil
	}
	old := rec.State
	now := stamp(time.Now())
	rec.Op, rec.OpOld = op, old
	a := worker.Attempt{Channel: o.Channel, ProviderMessageID: o.ProviderMessageID, Code: o.Code, Reason: o.Reason, At: now}
	rec.Channel, rec.ChannelIdx, rec.Attempts, rec.UpdatedAt = o.Channel, o.ChannelIdx, o.Attempts, now
	switch o.Mode {
	case worker.ModeSent:
		a.State = worker.StateSent
		rec.State, rec.ProviderMessageID, rec.Claim, rec.Resume, rec.Reason = worker.StateSent, o.ProviderMessageID, nil, false, ""
	case worker.ModeRetry:
		a.State = "retry"
		rec.Claim, rec.Reason = nil, o.Reason
	case worker.ModeFallback:
		// The job moves on: the record and the claim name the call that may be in doubt next.
		a.State = worker.StateFailed
		rec.Reason, rec.Channel = o.Reason, o.NextChannel
		if rec.Claim != nil {
			rec.Claim.Channel = o.NextChannel
		}
	case worker.ModeFailed:
		a.State = worker.StateFailed
		rec.State, rec.Reason, rec.DeadLetter, rec.Claim, rec.Resume = worker.StateFailed, o.Reason, o.DeadLetter, nil, false
	default:
		return "", nil, fmt.Errorf("memstore: unknown outcome mode %q", o.Mode)
	}
	rec.History = append(rec.History, a)
	return old, s.save(rec), nil
}

// Settle moves a job that will not be sent to a final state (expired, rejected, canceled),
// creating its record if need be; with state "" it only releases owner's claim.
func (s *memStore) Settle(ctx context.Context, j *worker.Job, owner, state, reason string, channels []string) (string, *worker.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, found := s.load(j, channels)
	old := rec.State
	now := time.Now()
	mine := rec.Claim != nil && rec.Claim.Owner == owner
	if state == "" || worker.IsTerminal(rec.State) || rank[rec.State] >= rank[worker.StateSent] {
		// Nothing to settle (or already settled): only let go of this delivery's claim.
		if mine && found {
			rec.Claim = nil
			return old, s.save(rec), nil
		}
		return old, rec, nil
	}
	if rec.Claim != nil && !mine && rec.Claim.Until > now.UnixMilli() {
		return old, rec, worker.ErrBusy // another delivery is sending it right now
	}
	rec.State = state
	if reason != "" {
		rec.Reason = reason
	}
	// Another delivery's expired claim stays: it marks a death mid-send, which the next claim
	// turns into "unknown" rather than a second send.
	if rec.Claim == nil || mine {
		rec.Claim = nil
	}
	rec.UpdatedAt = stamp(now)
	return old, s.save(rec), nil
}

// Ping answers at once: the store is this process.
func (s *memStore) Ping(ctx context.Context) error { return nil }

// Window tells whether the recipient's 24-hour customer-service window is open.
func (s *memStore) Window(ctx context.Context, business, to string) (bool, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.windows[to] {
		return true, time.Now().Add(24 * time.Hour), nil
	}
	return false, time.Time{}, nil
}
