package worker

import (
	"context"
	"log/slog"
	"time"

	"github.com/herald-notify/herald/internal/provider"
)

// senderStop is how long a worker leaves a sender alone after an account-level error.
const senderStop = time.Minute

// stopSender takes a sender the provider refused as a whole (368 temporarily blocked, 131031
// account locked, 131048 spam limit, 100/33 number deleted, 190 token expired...) out of
// the pools for senderStop: its jobs move to the pool's other senders, or fall back at once
// when none is left, instead of failing one by one. Operators are alerted (an error log, the
// herald_fallbacks{reason="sender"} metric, and the sender's event on
// herald.events.sender.<id> through Health). It is tried again after senderStop.
func (w *Worker) stopSender(ctx context.Context, r *route, pe *provider.Error, log *slog.Logger) {
	if !w.markDown(r.Limit.Sender, senderStop) {
		return
	}
	log.Error("ALERT: provider refused the sender; it leaves the pool for a minute, its jobs move to the others or fall back",
		"sender", r.ID, "channel", r.Channel, "code", pe.Code, "reason", pe.Reason)
	if w.cfg.AnnounceStop != nil {
		w.cfg.AnnounceStop(ctx, SenderStop{Channel: r.Channel, Sender: r.Limit.Sender, ID: r.ID, For: senderStop, Code: pe.Code, Origin: w.owner})
	}
	if h := w.cfg.Health; h != nil {
		if err := h.Mark(ctx, r.ID, pe.Code, pe.Reason, senderStop); err != nil {
			log.Warn("sender refusal not shared with the fleet", "sender", r.ID, "err", err)
		}
	}
}

// markDown stops calling the sender of key for d, unless a longer stop runs already; true
// when it was not stopped before (so that one stop is alerted and announced once).
func (w *Worker) markDown(key string, d time.Duration) bool {
	now := time.Now()
	until := now.Add(d)
	for {
		prev, loaded := w.senderDown.LoadOrStore(key, until)
		if !loaded {
			return true
		}
		p := prev.(time.Time)
		if !p.Before(until) {
			return false // a stop at least as long runs already
		}
		if w.senderDown.CompareAndSwap(key, prev, until) {
			return !now.Before(p)
		}
	}
}

// SenderStop is a sender stopped by one worker after an account-level error, announced to
// the fleet (see Config.AnnounceStop).
type SenderStop struct {
	Channel string `json:"channel"`
	// Sender names the account by its key in the shared limits (white:<phone number id>,
	// grey:<instance>): a worker that has no sender of that key ignores the stop.
	Sender string `json:"sender,omitempty"`
	// ID is the sender's fleet id, for logs.
	ID     string        `json:"id,omitempty"`
	For    time.Duration `json:"for_ns"` // from the moment it is received: no clock is shared
	Code   string        `json:"code"`
	Origin string        `json:"origin"` // the announcing worker, which ignores its own stop
}

// StopSender applies a stop another worker announced: this worker sends through s.Sender no
// more for s.For, and its jobs move to the pool's other senders or fall back at once.
func (w *Worker) StopSender(s SenderStop) {
	if s.Origin == w.owner || s.For <= 0 || !w.knowsKey(s.Sender) {
		return
	}
	if w.markDown(s.Sender, min(s.For, 10*senderStop)) {
		w.log.Warn("sender stopped by another worker after an account error; its jobs move or fall back",
			"sender", s.ID, "channel", s.Channel, "code", s.Code, "for", s.For)
	}
}

// knowsKey tells whether one of this worker's routes sends as key.
func (w *Worker) knowsKey(key string) bool {
	for _, r := range w.pools.byID {
		if r.Limit.Sender == key {
			return true
		}
	}
	return false
}
