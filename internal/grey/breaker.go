package grey

import (
	"context"
	"sync"
	"time"
)

// BreakerState is the state of a Client's circuit breaker.
type BreakerState int

// Breaker states.
const (
	// BreakerClosed: sends go to the instance.
	BreakerClosed BreakerState = iota
	// BreakerOpen: the instance cannot send; Send fails at once with a Channel error.
	BreakerOpen
	// BreakerHalfOpen: one trial send may go through; its outcome closes or reopens.
	BreakerHalfOpen
)

func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half-open"
	}
	return "unknown"
}

// BreakerConfig tunes a Client's circuit breaker. Zero fields take the defaults.
type BreakerConfig struct {
	// Failures is the number of consecutive failed calls (5xx, timeouts, unreachable) that
	// opens the breaker; default 5.
	Failures int
	// Cooldown is how long the breaker stays open before it lets one trial send through;
	// default 30 s.
	Cooldown time.Duration
}

// Breaker defaults.
const (
	DefaultFailures = 5
	DefaultCooldown = 30 * time.Second
)

// Instance states reported by getStateInstance and stateInstanceChanged.
const (
	StateAuthorized    = "authorized"
	StateNotAuthorized = "notAuthorized"
	StateBlocked       = "blocked"
	StateSleepMode     = "sleepMode"
	StateStarting      = "starting"
	StateYellowCard    = "yellowCard"
)

// badState reports whether an instance in state st cannot deliver, so its breaker opens.
func badState(st string) bool {
	switch st {
	case StateNotAuthorized, StateBlocked, StateYellowCard, StateSleepMode:
		return true
	}
	return false
}

// breaker is a per-instance circuit breaker. Why it opened matters for closing: a breaker
// opened by a bad instance state closes as soon as the instance reports authorized (the cause
// is gone); one opened by failures or a sender error only goes half-open on that word, and a
// trial send decides.
type breaker struct {
	failures int
	cooldown time.Duration
	now      func() time.Time
	onChange func(from, to BreakerState)
	onBlock  func(ctx context.Context)
	log      logger

	mu       sync.Mutex
	state    BreakerState
	byState  bool // opened by a bad instance state, not by failures
	fails    int  // consecutive failures while closed
	openedAt time.Time
	trial    bool   // a half-open trial send is in flight
	reason   string // why it is open, for the breaker_open error
	instance string // the last instance state seen

	// hookMu serialises the hooks in the order of the transitions they report, without
	// holding mu while they run.
	hookMu sync.Mutex
}

// logger is the part of *slog.Logger the breaker uses.
type logger interface {
	Warn(msg string, args ...any)
	Info(msg string, args ...any)
}

// transition is what a locked update decided; fire runs its hooks after mu is released.
type transition struct {
	from, to BreakerState
	blocked  bool
}

// fire reports t to the hooks. It is called with b.hookMu held and b.mu released.
func (b *breaker) fire(ctx context.Context, t transition) {
	if t.from != t.to {
		b.log.Info("grey: breaker state changed", "from", t.from.String(), "to", t.to.String())
		if b.onChange != nil {
			b.onChange(t.from, t.to)
		}
	}
	if t.blocked && b.onBlock != nil {
		b.onBlock(ctx)
	}
}

// unlockAndFire releases mu and runs the hooks for t, in transition order.
func (b *breaker) unlockAndFire(ctx context.Context, t transition) {
	if t.from == t.to && !t.blocked {
		b.mu.Unlock()
		return
	}
	b.hookMu.Lock()
	b.mu.Unlock()
	defer b.hookMu.Unlock()
	b.fire(ctx, t)
}

// setLocked moves to st; callers hold mu.
func (b *breaker) setLocked(st BreakerState) {
	b.state = st
	b.trial = false
	switch st {
	case BreakerOpen:
		b.openedAt = b.now()
	case BreakerClosed:
		b.fails, b.byState, b.reason = 0, false, ""
	}
}

// coolLocked moves an open breaker whose cooldown has passed to half-open.
func (b *breaker) coolLocked() {
	if b.state == BreakerOpen && !b.now().Before(b.openedAt.Add(b.cooldown)) {
		b.setLocked(BreakerHalfOpen)
	}
}

// State returns the current state, after applying a passed cooldown.
func (b *breaker) State() BreakerState {
	b.mu.Lock()
	from := b.state
	b.coolLocked()
	to := b.state
	b.unlockAndFire(context.Background(), transition{from: from, to: to})
	return to
}

// allow reports whether a send may go out now and, when not, why. A half-open breaker lets
// one trial through at a time.
func (b *breaker) allow() (ok bool, reason string) {
	b.mu.Lock()
	from := b.state
	b.coolLocked()
	switch b.state {
	case BreakerClosed:
		ok = true
	case BreakerHalfOpen:
		if !b.trial {
			b.trial, ok = true, true
		} else {
			reason = "a trial send is in flight after " + b.reason
		}
	default:
		reason = b.reason
	}
	b.unlockAndFire(context.Background(), transition{from: from, to: b.state})
	return ok, reason
}

// outcome is how a call went, as far as the instance's health is concerned.
type outcome int

const (
	healthy outcome = iota // the instance answered sanely (a send accepted, a bad number refused)
	neutral                // says nothing about the instance (429, the caller gave up)
	failure                // counts towards Failures (5xx, timeout, unreachable)
	fatal                  // opens at once (unauthorized, quota, instance not authorized)
)

// record feeds the outcome of a call. state is the instance state the answer revealed ("" if
// none); reason says why a fatal outcome opens.
func (b *breaker) record(ctx context.Context, o outcome, state, reason string) {
	if state != "" {
		b.observe(ctx, state)
		if badState(state) {
			return
		}
	}
	b.mu.Lock()
	from := b.state
	trial := b.trial
	b.trial = false
	switch o {
	case healthy:
		b.fails = 0
		if b.state == BreakerHalfOpen && trial {
			b.setLocked(BreakerClosed)
		}
	case failure:
		b.fails++
		if (b.state == BreakerClosed && b.fails >= b.failures) || (b.state == BreakerHalfOpen && trial) {
			b.openLocked(false, reason)
		}
	case fatal:
		if b.state != BreakerOpen {
			b.openLocked(false, reason)
		}
	}
	b.unlockAndFire(ctx, transition{from: from, to: b.state})
}

func (b *breaker) openLocked(byState bool, reason string) {
	b.setLocked(BreakerOpen)
	b.byState, b.reason = byState, reason
}

// observe feeds an instance state from a probe, a webhook or an error answer.
func (b *breaker) observe(ctx context.Context, st string) {
	b.mu.Lock()
	from := b.state
	prev := b.instance
	b.instance = st
	switch {
	case badState(st):
		// A bad state reopens even an open breaker, so the cooldown starts again and the
		// reason names the current state.
		b.openLocked(true, "instance is "+st)
	case st == StateAuthorized:
		switch {
		case b.state == BreakerOpen && !b.byState:
			b.setLocked(BreakerHalfOpen)
		case b.state != BreakerClosed:
			b.setLocked(BreakerClosed)
		}
	}
	t := transition{from: from, to: b.state, blocked: st == StateBlocked && prev != StateBlocked}
	if prev != st {
		b.log.Info("grey: instance state", "from", prev, "to", st)
	}
	b.unlockAndFire(ctx, t)
}
