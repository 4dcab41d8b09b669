package health

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/herald-notify/herald/internal/telemetry"
)

// RefreshEvery is how often a [Watcher] re-reads every sender from Redis, so that a Status
// message it missed (core NATS keeps none) costs at most this long.
const RefreshEvery = 30 * time.Second

// readTimeout bounds one Redis read of a Watcher outside a caller's context.
const readTimeout = 5 * time.Second

// maxReasonLen bounds a refusal's reason as stored and published.
const maxReasonLen = 200

// UsableRecorder records whether a sender is usable (the herald_sender_usable gauge).
type UsableRecorder interface {
	SenderUsable(sender string, usable bool)
}

var _ UsableRecorder = (*telemetry.Metrics)(nil)

// Option configures a [Watcher].
type Option func(*Watcher)

// WithMetrics sets the gauge the Watcher keeps for each sender (nil: none).
func WithMetrics(m UsableRecorder) Option { return func(w *Watcher) { w.metrics = m } }

// WithRefresh replaces RefreshEvery (tests).
func WithRefresh(d time.Duration) Option {
	return func(w *Watcher) {
		if d > 0 {
			w.refresh = d
		}
	}
}

// Watcher keeps every sender's Status in memory for a worker: loaded from Redis at start,
// updated by each Status published on herald.events.sender.<id> (the message makes it read
// that sender from Redis, the truth, and uses the message itself only when Redis cannot be
// read), re-read every RefreshEvery and when a timed restriction or refusal ends. It stops
// when the context given to [Watch] ends. Safe for concurrent use.
type Watcher struct {
	store   *Store
	nc      *nats.Conn
	log     *slog.Logger
	metrics UsableRecorder
	refresh time.Duration
	now     func() time.Time
	ids     []string
	known   map[string]bool
	// mu serialises updates (each reads Redis, then swaps snap), so a later read is never
	// overwritten by an earlier one. Readers never take it.
	mu   sync.Mutex
	snap atomic.Pointer[map[string]Status]
	// wake tells the loop that a sender now comes back at a new time.
	wake chan struct{}
	done chan struct{}
}

// Watch starts a Watcher of the senders ids: it subscribes to every sender's Status on nc,
// loads each id's Status from store and keeps them until ctx ends. An error (a bad id, NATS
// or Redis unreachable at start) leaves nothing running.
func Watch(ctx context.Context, nc *nats.Conn, store *Store, ids []string, log *slog.Logger, opts ...Option) (*Watcher, error) {
	switch {
	case nc == nil:
		return nil, fmt.Errorf("%w: nc: nil", ErrInvalid)
	case store == nil:
		return nil, fmt.Errorf("%w: store: nil", ErrInvalid)
	}
	if log == nil {
		log = slog.Default()
	}
	w := &Watcher{store: store, nc: nc, log: log, refresh: RefreshEvery, now: time.Now,
		known: map[string]bool{}, wake: make(chan struct{}, 1), done: make(chan struct{})}
	for _, o := range opts {
		o(w)
	}
	for i, id := range ids {
		if err := ValidID(id); err != nil {
			return nil, fmt.Errorf("ids[%d]: %w", i, err)
		}
		if !w.known[id] {
			w.known[id] = true
			w.ids = append(w.ids, id)
		}
	}
	empty := map[string]Status{}
	w.snap.Store(&empty)
	// Subscribe first: a change between the load and the subscription would be missed.
	sub, err := nc.Subscribe(SubjectAll, func(m *nats.Msg) { w.onMessage(ctx, m) })
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", SubjectAll, err)
	}
	fctx, cancel := context.WithTimeout(ctx, readTimeout) // Flush wants a deadline
	err = nc.FlushWithContext(fctx)
	cancel()
	if err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("subscribe %s: %w", SubjectAll, err)
	}
	if err := w.reload(ctx, w.ids); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	go w.loop(ctx, sub)
	return w, nil
}

// Usable reports whether jobs may go to the sender id, and if not why. A sender the Watcher
// was not given, or has no news of, is usable. It is a map lookup: call it per job.
func (w *Watcher) Usable(id string) (bool, string) {
	st, ok := (*w.snap.Load())[id]
	if !ok || st.Usable {
		return true, ""
	}
	if !st.Until.IsZero() && !w.now().Before(st.Until) {
		return true, "" // the restriction or refusal ended; the loop re-reads it soon
	}
	return false, st.Reason
}

// Status returns the sender's Status as last read; false: not watched.
func (w *Watcher) Status(id string) (Status, bool) {
	st, ok := (*w.snap.Load())[id]
	return st, ok
}

// Done is closed when the Watcher has stopped (its context ended).
func (w *Watcher) Done() <-chan struct{} { return w.done }

// Mark records that the provider refused the sender's account (code: 368, 131031, 131048,
// 100/33, ...; reason: its words, with no phone number or token): id is unusable on every
// worker for d. This Watcher sees it at once; the others through its Status message. A
// longer refusal already recorded is kept.
func (w *Watcher) Mark(ctx context.Context, id, code, reason string, d time.Duration) error {
	if err := ValidID(id); err != nil {
		return err
	}
	if strings.TrimSpace(code) == "" {
		return fmt.Errorf("%w: code: empty, want the provider's error code", ErrInvalid)
	}
	if d <= 0 {
		return fmt.Errorf("%w: d: %v, want a positive duration", ErrInvalid, d)
	}
	if len(reason) > maxReasonLen {
		reason = strings.ToValidUTF8(reason[:maxReasonLen], "") + "…"
	}
	r := &Reporter{Store: w.store, Pub: w.nc, Log: w.log, Now: w.now}
	ev := Event{Event: code, Detail: reason, At: w.now().UTC()}
	st, err := r.change(ctx, id, "", func() error { return w.store.Refuse(ctx, id, ev, d) })
	if st.Sender == id && (err == nil || !st.Usable) {
		w.mu.Lock()
		w.apply(map[string]Status{id: st})
		w.mu.Unlock()
	}
	return err
}

// onMessage handles a Status message: the sender is read again from Redis.
func (w *Watcher) onMessage(ctx context.Context, m *nats.Msg) {
	id := strings.TrimPrefix(m.Subject, SubjectPrefix)
	if !w.known[id] {
		return
	}
	if err := w.reload(ctx, []string{id}); err != nil {
		var st Status
		if json.Unmarshal(m.Data, &st) != nil || st.Sender != id {
			w.log.Warn("sender status not read", "sender", id, "err", err)
			return
		}
		w.log.Warn("sender status taken from its message: Redis not read", "sender", id, "err", err)
		w.mu.Lock()
		w.apply(map[string]Status{id: st})
		w.mu.Unlock()
	}
}

// reload reads ids from Redis and applies their Status.
func (w *Watcher) reload(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	w.mu.Lock()
	defer w.mu.Unlock()
	evs, err := w.store.Latest(ctx, ids)
	if err != nil {
		return err
	}
	now := w.now()
	sts := make(map[string]Status, len(ids))
	for _, id := range ids {
		sts[id] = Judge(id, "", evs[id], now)
	}
	w.apply(sts)
	return nil
}

// apply swaps in a snapshot with sts; the caller holds mu.
func (w *Watcher) apply(sts map[string]Status) {
	old := *w.snap.Load()
	next := maps.Clone(old)
	timed := false
	for id, st := range sts {
		prev, had := old[id]
		next[id] = st
		if !had || prev.Usable != st.Usable {
			if w.metrics != nil {
				w.metrics.SenderUsable(id, st.Usable)
			}
		}
		if had && (prev.Usable != st.Usable || prev.Health != st.Health) {
			w.log.Debug("sender status", "sender", id, "usable", st.Usable, "health", st.Health, "reason", st.Reason)
		}
		timed = timed || !st.Until.IsZero()
	}
	w.snap.Store(&next)
	if timed {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// nextUntil is the earliest time an unusable sender comes back by itself (zero: none).
func (w *Watcher) nextUntil() time.Time {
	var next time.Time
	for _, st := range *w.snap.Load() {
		if !st.Usable && !st.Until.IsZero() && (next.IsZero() || st.Until.Before(next)) {
			next = st.Until
		}
	}
	return next
}

// loop re-reads every sender each refresh and when a timed restriction ends, until ctx ends.
func (w *Watcher) loop(ctx context.Context, sub *nats.Subscription) {
	defer close(w.done)
	defer func() { _ = sub.Unsubscribe() }()
	tick := time.NewTicker(w.refresh)
	defer tick.Stop()
	var tried time.Time // the expiry last re-read for: a failed read waits for the tick
	for {
		var expiry <-chan time.Time
		var timer *time.Timer
		next := w.nextUntil()
		if next.After(tried) {
			timer = time.NewTimer(max(next.Sub(w.now()), 0) + time.Millisecond)
			expiry = timer.C
		}
		woken := false
		select {
		case <-ctx.Done():
		case <-w.wake:
			woken = true
		case <-tick.C:
		case <-expiry:
			tried = next
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
		if woken {
			continue // only the next expiry moved
		}
		if err := w.reload(ctx, w.ids); err != nil && ctx.Err() == nil {
			w.log.Warn("sender health not re-read", "err", err)
		}
	}
}
